//! Loads a graph file saved by `kiln_graph::artifact::save` and runs it on random inputs of
//! its signature — this program contains no code of the model that produced it.
//! Run: `cargo run --release -p kiln-graph --example run_graph -- model.kgraph`

use kiln_core::Tensor;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: run_graph FILE");
        std::process::exit(2);
    };
    let graph = match kiln_graph::artifact::load(&path) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", graph.graph());
    let args: Vec<Tensor> = graph
        .signature()
        .iter()
        .map(|(shape, dtype)| Tensor::randn(shape.as_slice(), *dtype))
        .collect();
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
