//! Training gives the same bits at any thread count: every kernel on a CNN's step (products,
//! convolution and its gradients, pooling, bias and weight sums, softmax, Adam) splits its
//! work so that no floating-point sum depends on how many threads ran it. (One test in its
//! own binary: it changes the process-wide thread count.)

use kiln_core::nn::functional as F;
use kiln_core::{manual_seed, set_num_threads, DType, Tensor};
use kiln_nn::layers::{
    Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential,
};
use kiln_nn::optim::{Adam, Optimizer};
use kiln_nn::{Module, ModuleBase};

/// The parameters' bits after three Adam steps of a small CNN on a fixed batch.
fn train_cnn(threads: usize) -> Vec<Vec<u32>> {
    set_num_threads(threads);
    manual_seed(7);
    // `kiln train`'s digits CNN: big enough that its convolutions run in parallel.
    let pad1 = || Conv2dConfig::default().padding(1);
    let net = Sequential::new()
        .append(Conv2d::with_config(1, 32, 3, pad1()))
        .append(ReLU::new())
        .append(Conv2d::with_config(32, 64, 3, pad1()))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Linear::new(64 * 4 * 4, 128))
        .append(ReLU::new())
        .append(Dropout::new(0.25))
        .append(Linear::new(128, 10));
    let x = Tensor::randn([32, 1, 8, 8], DType::F32);
    let y = Tensor::from_vec((0..32).map(|i| (i * 7) % 10).collect::<Vec<i64>>(), [32]);
    let mut opt = Adam::new(net.parameters(), 1e-2);
    for _ in 0..3 {
        opt.zero_grad();
        F::cross_entropy(&net.forward(&x), &y).backward();
        opt.step();
    }
    net.parameters()
        .iter()
        .map(|p| p.to_vec::<f32>().iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn a_cnn_trains_to_the_same_bits_with_one_two_or_three_threads() {
    let one = train_cnn(1);
    for threads in [2, 3] {
        let other = train_cnn(threads);
        for (i, (a, b)) in one.iter().zip(&other).enumerate() {
            let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert_eq!(
                differ, 0,
                "parameter {i}: {differ} values differ at {threads} threads"
            );
        }
    }
}
