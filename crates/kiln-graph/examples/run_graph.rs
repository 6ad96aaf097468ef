//! Loads a graph file saved by `kiln_graph::artifact::save` (or `save_dynamic`) and runs it on
//! random inputs of its signature — this program contains no code of the model that produced
//! it. A graph with a symbolic batch runs at `BATCH` (default 1).
//! Run: `cargo run --release -p kiln-graph --example run_graph -- model.kgraph [BATCH]`

use kiln_core::Tensor;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: run_graph FILE [BATCH]");
        std::process::exit(2);
    };
    let batch: usize = match std::env::args().nth(2).map(|b| b.parse()) {
        None => 1,
        Some(Ok(b)) => b,
        Some(Err(_)) => {
            eprintln!("run_graph: BATCH must be a whole number");
            std::process::exit(2);
        }
    };
    let graph = match kiln_graph::artifact::load(&path) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", graph.graph());
    let mut args = Vec::new();
    for (dims, dtype) in graph.arg_dims() {
        let labels: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        println!("argument {}: {dtype}[{}]", args.len(), labels.join(", "));
        let Some(shape) = dims
            .iter()
            .map(|d| d.at(batch))
            .collect::<Option<Vec<usize>>>()
        else {
            eprintln!("error: the graph cannot run at batch {batch}");
            std::process::exit(1);
        };
        args.push(Tensor::randn(shape.as_slice(), *dtype));
    }
    match graph.run(&args) {
        Ok(outs) => {
            for (i, o) in outs.iter().enumerate() {
                println!("output {i}: {o}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
