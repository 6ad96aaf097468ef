//! Graph mode on a train step: compile forward + backward + SGD update of a small MLP, print
//! the traced graph (text IR) and the compile report, and check the compiled steps against
//! eager ones. Run: `cargo run --release -p kiln --example compile_mlp`
//! (`KILN_LOG=compile` also prints the report on the first call).

use kiln::prelude::*;

fn model() -> Sequential {
    Sequential::new()
        .append(Linear::new(4, 8))
        .append(ReLU::new())
        .append(Linear::new(8, 3))
}

fn main() {
    manual_seed(0);
    let net = model();
    let xs = Tensor::randn([16, 4], DType::F32);
    let ys = Tensor::randint(0, 3, [16]);
    let mut opt = Sgd::new(net.parameters(), 0.1);

    // The same code as an eager step, wrapped in `compile`.
    let mut step = compile(|batch: &[Tensor]| {
        opt.zero_grad();
        let loss = F::cross_entropy(&net.forward(&batch[0]), &batch[1]);
        loss.backward();
        opt.step();
        vec![loss]
    });
    for i in 0..5 {
        let loss = step.call(&[xs.clone(), ys.clone()]);
        println!("step {i}: loss {:.4}", loss[0].item::<f32>());
    }
    println!("{}", step.graph(&[xs.clone(), ys.clone()]));
    println!("{}", step.reports()[0]);
}
