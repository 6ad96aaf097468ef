//! `summary` lists each layer's output shape and parameter count, as Keras' `model.summary()`
//! does, and a derived model prints its tree through `Debug`.

use kiln_core::{DType, Tensor};
use kiln_nn::layers::{
    BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential,
};
use kiln_nn::{summary, Module, ModuleBase};

fn digits_cnn() -> Sequential {
    Sequential::new()
        .append(Conv2d::with_config(
            1,
            8,
            3,
            Conv2dConfig::default().padding(1),
        ))
        .append(BatchNorm2d::new(8))
        .append(ReLU::new())
        .append(MaxPool2d::new(2))
        .append(Flatten::new())
        .append(Dropout::new(0.25))
        .append(Linear::new(8 * 4 * 4, 10))
}

#[test]
fn the_summary_table_has_every_layers_output_shape_and_parameters() {
    let model = digits_cnn();
    let s = summary(&model, &[Tensor::zeros([32, 1, 8, 8], DType::F32)]);
    // Conv 1→8, 3×3: 8·9 + 8 = 80; batch norm: 8 + 8 (+ 8 + 8 + 1 buffer elements);
    // linear 128→10: 1280 + 10.
    let expected = "\
Layer (type)       Output shape   Param #
=========================================
Sequential         [32, 10]         1,386
  0 (Conv2d)       [32, 8, 8, 8]       80
  1 (BatchNorm2d)  [32, 8, 8, 8]       16
  2 (ReLU)         [32, 8, 8, 8]        0
  3 (MaxPool2d)    [32, 8, 4, 4]        0
  4 (Flatten)      [32, 128]            0
  5 (Dropout)      [32, 128]            0
  6 (Linear)       [32, 10]         1,290
=========================================
Total params: 1,386
Trainable params: 1,386
Non-trainable params: 0
Buffers: 17
Parameter and buffer size: 0.01 MiB";
    assert_eq!(s.to_string(), expected);
}

#[test]
fn summary_runs_in_eval_mode_and_restores_each_modules_mode() {
    let model = digits_cnn();
    model.train();
    let bn_stats_before = model.named_buffers()[0].1.to_vec::<f32>();
    summary(&model, &[Tensor::ones([4, 1, 8, 8], DType::F32)]);
    // Eval mode: batch norm read its running statistics and did not update them.
    assert_eq!(model.named_buffers()[0].1.to_vec::<f32>(), bn_stats_before);
    assert!(model.is_training());
}

#[test]
fn zero_sized_layers_get_their_own_shapes_in_order() {
    let model = Sequential::new()
        .append(ReLU::new())
        .append(Flatten::new())
        .append(ReLU::new());
    let s = summary(&model, &[Tensor::zeros([2, 3, 4], DType::F32)]);
    let shapes: Vec<_> = s.rows.iter().map(|r| r.output_shape.clone()).collect();
    assert_eq!(
        shapes,
        [
            Some(vec![2, 12]),
            Some(vec![2, 3, 4]),
            Some(vec![2, 12]),
            Some(vec![2, 12])
        ]
    );
}

#[derive(kiln_nn::Module)]
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
fn a_derived_model_prints_its_tree_with_debug() {
    let mlp = Mlp {
        fc1: Linear::new(4, 8),
        fc2: Linear::new(8, 2),
    };
    assert_eq!(
        format!("{mlp:?}"),
        "Mlp(\n  (fc1): Linear(in_features=4, out_features=8, bias=true)\n  \
         (fc2): Linear(in_features=8, out_features=2, bias=true)\n)"
    );
    let s = summary(&mlp, &[Tensor::zeros([3, 4], DType::F32)]);
    assert_eq!(s.rows[0].output_shape, Some(vec![3, 2]));
    assert_eq!(s.rows[1].output_shape, Some(vec![3, 8]));
    assert_eq!(s.trainable, 4 * 8 + 8 + 8 * 2 + 2);
}
