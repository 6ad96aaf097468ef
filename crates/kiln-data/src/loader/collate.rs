//! Collation: turning a list of samples into one batch.

use kiln_core::Tensor;

/// Combines the samples of one batch into the batch value, like PyTorch's `collate_fn`.
///
/// The default, [`StackCollate`], stacks tensors along a new leading dim. For anything else
/// implement this trait, or hand a closure to
/// [`DataLoader::collate_fn`](crate::DataLoader::collate_fn). Collation runs on the loader's
/// worker threads, hence `Send + Sync`.
pub trait Collate<I>: Send + Sync {
    /// The batch type.
    type Output;

    /// Builds one batch from its samples, in order (never called with an empty list).
    fn collate(&self, samples: Vec<I>) -> Self::Output;
}

/// The default collate: stacks same-shaped tensors into `[batch, ...]`.
///
/// - `(x, y)` samples become `(stack(xs), stack(ys))`: `[B, ...]` features and, for 0-d class
///   labels, `[B]` labels;
/// - `Tensor` samples become one stacked tensor;
/// - `Vec<Tensor>` samples (all of one length) become one stacked tensor per position;
/// - `(Vec<Tensor>, Tensor)` samples (several inputs and a target) become
///   `(one stacked tensor per input, stacked targets)`.
///
/// Panics if shapes differ within a batch (with `Tensor::stack`'s message).
#[derive(Clone, Copy, Debug, Default)]
pub struct StackCollate;

impl Collate<(Tensor, Tensor)> for StackCollate {
    type Output = (Tensor, Tensor);

    fn collate(&self, samples: Vec<(Tensor, Tensor)>) -> (Tensor, Tensor) {
        let (xs, ys): (Vec<Tensor>, Vec<Tensor>) = samples.into_iter().unzip();
        (Tensor::stack(&xs, 0), Tensor::stack(&ys, 0))
    }
}

impl Collate<(Vec<Tensor>, Tensor)> for StackCollate {
    type Output = (Vec<Tensor>, Tensor);

    /// Samples of several inputs and a target (a [`MultiInputDataset`](crate::MultiInputDataset)'s)
    /// become one stacked tensor per input and the stacked targets.
    fn collate(&self, samples: Vec<(Vec<Tensor>, Tensor)>) -> (Vec<Tensor>, Tensor) {
        let (xs, ys): (Vec<Vec<Tensor>>, Vec<Tensor>) = samples.into_iter().unzip();
        (self.collate(xs), Tensor::stack(&ys, 0))
    }
}

impl Collate<Tensor> for StackCollate {
    type Output = Tensor;

    fn collate(&self, samples: Vec<Tensor>) -> Tensor {
        Tensor::stack(&samples, 0)
    }
}

impl Collate<Vec<Tensor>> for StackCollate {
    type Output = Vec<Tensor>;

    fn collate(&self, samples: Vec<Vec<Tensor>>) -> Vec<Tensor> {
        let fields = samples[0].len();
        if let Some(bad) = samples.iter().find(|s| s.len() != fields) {
            panic!(
                "StackCollate: samples have {fields} and {} tensors; they must match",
                bad.len()
            );
        }
        (0..fields)
            .map(|k| {
                let column: Vec<&Tensor> = samples.iter().map(|s| &s[k]).collect();
                Tensor::stack(&column, 0)
            })
            .collect()
    }
}

/// A closure used as a [`Collate`]; see [`DataLoader::collate_fn`](crate::DataLoader::collate_fn).
#[derive(Clone, Copy, Debug)]
pub struct FnCollate<F>(pub F);

impl<I, O, F> Collate<I> for FnCollate<F>
where
    F: Fn(Vec<I>) -> O + Send + Sync,
{
    type Output = O;

    fn collate(&self, samples: Vec<I>) -> O {
        (self.0)(samples)
    }
}
