//! The eager API in one screen: create tensors, broadcast, matmul, backward, print a gradient.
use kiln::prelude::*;

fn main() {
    manual_seed(0);
    let x = Tensor::randn([3, 4], DType::F32).requires_grad_(true);
    let w = Tensor::randn([4, 2], DType::F32).requires_grad_(true);
    let b = Tensor::from_vec(vec![0.5f32, -0.5], [2]);
    let y = (&x.matmul(&w) + &b).relu() * 2.0; // [3, 2] + [2] broadcasts
    let loss = y.square().mean_all();
    loss.backward();
    println!("y = {y}");
    println!("loss = {loss}");
    println!("dloss/dw = {}", w.grad().unwrap());
}
