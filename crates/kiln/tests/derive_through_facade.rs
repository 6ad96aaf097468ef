//! `#[derive(Module)]` works for users who depend only on the `kiln` facade.
use kiln::prelude::*;

#[derive(kiln::nn::Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.fc1.forward(x).relu())
    }
}

#[test]
fn derived_module_through_facade() {
    let m = Mlp {
        fc1: Linear::new(4, 8),
        fc2: Linear::new(8, 2),
    };
    let names: Vec<String> = m.state_dict().keys().map(str::to_string).collect();
    assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    assert_eq!(
        m.forward(&Tensor::ones([3, 4], DType::F32)).shape(),
        &[3, 2]
    );
    let loss = F::cross_entropy(
        &m.forward(&Tensor::ones([3, 4], DType::F32)),
        &Tensor::from_vec(vec![0i64, 1, 0], [3]),
    );
    loss.backward();
    assert!(m.fc1.weight.grad().is_some());
}
