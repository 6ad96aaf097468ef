//! The README's example: one training step run eagerly, then the same step compiled into a
//! graph and run five times. `cargo run --release -p kiln --example quickstart`
use kiln::prelude::*;

fn main() {
    let model = Linear::new(4, 3);
    let mut opt = Adam::new(model.parameters(), 1e-2);
    let x = Tensor::randn([32, 4], DType::F32);
    let y = Tensor::randint(0, 3, [32]);
    let mut train_step = |x: &Tensor, y: &Tensor| {
        opt.zero_grad();
        let loss = F::cross_entropy(&model.forward(x), y);
        loss.backward();
        opt.step();
        loss
    };
    println!("eager loss {}", train_step(&x, &y)); // op by op: print or debug anything
    let mut step = compile(|b: &[Tensor]| vec![train_step(&b[0], &b[1])]); // traced once
    for _ in 0..5 {
        println!("compiled loss {}", step.call(&[x.clone(), y.clone()])[0]);
    }
}
