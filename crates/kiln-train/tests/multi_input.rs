//! Models of several inputs through the `Trainer`: a `MultiInput` model, a
//! `MultiInputDataset`, eager and compiled training, and a clear error when a batch does not
//! carry the inputs the model takes.

use kiln_core::{manual_seed, Tensor};
use kiln_data::{digits, DataLoader, MultiInputDataset};
use kiln_nn::layers::Linear;
use kiln_nn::optim::Adam;
use kiln_nn::{Module, ModuleBase, MultiInput};
use kiln_train::{ProgressMode, TrainError, Trainer};

/// Reads the top and bottom halves of a digit as two inputs (the image and its "metadata" of
/// a real two-input model): each half through its own layer, summed, then a head.
#[derive(kiln_nn::Module)]
struct TwoHalves {
    top: Linear,
    bottom: Linear,
    head: Linear,
}

impl TwoHalves {
    fn new() -> TwoHalves {
        TwoHalves {
            top: Linear::new(32, 128),
            bottom: Linear::new(32, 128),
            head: Linear::new(128, 10),
        }
    }
}

impl MultiInput for TwoHalves {
    fn forward_inputs(&self, inputs: &[Tensor]) -> Tensor {
        let [top, bottom] = inputs else {
            panic!("TwoHalves takes (top, bottom)");
        };
        let hidden = (&self.top.forward(top) + &self.bottom.forward(bottom)).relu();
        self.head.forward(&hidden)
    }
    fn num_inputs(&self) -> Option<usize> {
        Some(2)
    }
}

/// The bundled digits as two inputs of 32 pixels each, scaled to [0, 1].
fn halves(d: &digits::Digits) -> MultiInputDataset {
    let x = d.features().div_scalar(16.0);
    MultiInputDataset::new(
        vec![
            x.narrow(1, 0, 32).contiguous(),
            x.narrow(1, 32, 32).contiguous(),
        ],
        d.labels().clone(),
    )
}

fn train_two_halves(compiled: bool) -> f64 {
    manual_seed(0);
    let (train, test) = digits::default_split();
    let train_loader = DataLoader::new(halves(&train), 32).shuffle(true).seed(0);
    let test_loader = DataLoader::new(halves(&test), 256);
    let model = TwoHalves::new();
    let mut opt = Adam::new(model.parameters(), 3e-3);
    let mut trainer = Trainer::new()
        .progress(ProgressMode::Silent)
        .compile(compiled);
    let history = trainer
        .fit(&model, &mut opt, &train_loader, Some(&test_loader), 20)
        .expect("a two-input model trains");
    assert_eq!(history.get("val_accuracy").len(), 20);
    let predictions = trainer.predict(&model, &test_loader);
    assert_eq!(predictions.shape(), [test.len(), 10]);
    trainer.evaluate(&model, &test_loader)["accuracy"]
}

#[test]
fn a_two_input_model_trains_with_the_trainer() {
    let accuracy = train_two_halves(false);
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
}

#[test]
fn a_two_input_model_trains_compiled() {
    let accuracy = train_two_halves(true);
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
}

#[test]
fn a_batch_without_the_models_inputs_is_a_config_error() {
    let (train, _) = digits::default_split();
    let single = DataLoader::new(train.dataset(), 32);
    let model = TwoHalves::new();
    let mut opt = Adam::new(model.parameters(), 1e-3);
    let err = Trainer::new()
        .progress(ProgressMode::Silent)
        .fit(&model, &mut opt, &single, None, 1)
        .unwrap_err();
    let TrainError::Config(message) = err else {
        panic!("expected a config error, got {err}");
    };
    assert!(
        message.contains("TwoHalves takes 2 input tensor(s), but the data's batches have 1"),
        "{message}"
    );
}

#[test]
#[should_panic(expected = "Linear::forward takes one input tensor, got 2")]
fn a_single_input_module_refuses_two_inputs() {
    let x = Tensor::zeros([1, 4], kiln_core::DType::F32);
    Linear::new(4, 2).forward_inputs(&[x.clone(), x]);
}
