//! A model prints as PyTorch's `print(model)` does: the module tree with each layer's settings.

use kiln_nn::layers::{
    BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Embedding, Flatten, LayerNorm, Linear, MaxPool2d,
    ReLU, Sequential,
};
use kiln_nn::{Module, ModuleBase, Tensor};

#[derive(kiln_nn::Module)]
struct Net {
    features: Sequential,
    head: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.head.forward(&self.features.forward(x))
    }
}

#[test]
fn a_model_prints_its_tree_like_pytorch() {
    let net = Net {
        features: Sequential::new()
            .append(Conv2d::with_config(
                1,
                32,
                3,
                Conv2dConfig::default().padding(1),
            ))
            .append(ReLU::new())
            .append(MaxPool2d::new(2))
            .append(Dropout::new(0.25))
            .append(Flatten::new()),
        head: Linear::with_bias(32 * 4 * 4, 10, false),
    };
    let expected = "\
Net(
  (features): Sequential(
    (0): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, bias=true)
    (1): ReLU()
    (2): MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1))
    (3): Dropout(p=0.25)
    (4): Flatten()
  )
  (head): Linear(in_features=512, out_features=10, bias=false)
)";
    assert_eq!(net.tree(), expected);
    assert_eq!(format!("{:?}", net.features), net.features.tree());
}

#[test]
fn norms_and_embeddings_print_their_settings() {
    let m = Sequential::new()
        .append(Embedding::new(100, 16))
        .append(LayerNorm::new(16))
        .append(BatchNorm2d::new(8));
    assert_eq!(
        m.tree(),
        "Sequential(
  (0): Embedding(100, 16)
  (1): LayerNorm([16], eps=1e-5, elementwise_affine=true)
  (2): BatchNorm2d(8, eps=1e-5, momentum=0.1, affine=true, track_running_stats=true)
)"
    );
}
