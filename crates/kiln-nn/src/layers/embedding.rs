//! The lookup table of embeddings.

use super::new_param;
use crate::{Module, ModuleBase};
use kiln_core::nn::functional as F;
use kiln_core::{no_grad, Tensor};

/// A table of `num_embeddings` vectors of size `embedding_dim`, like `torch.nn.Embedding`:
/// `weight` `[num_embeddings, embedding_dim]` drawn from N(0, 1), with the `padding_idx` row
/// zeroed and excluded from gradients.
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
    /// The row that pads (zero initially, never updated by gradients); negative counts from
    /// the end.
    pub padding_idx: Option<i64>,
}

impl Embedding {
    /// An embedding table with N(0, 1) entries.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Embedding {
        Embedding::with_padding_idx(num_embeddings, embedding_dim, None)
    }

    /// An embedding table whose `padding_idx` row is zero and receives no gradient.
    pub fn with_padding_idx(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: Option<i64>,
    ) -> Embedding {
        let weight = new_param(&[num_embeddings, embedding_dim]);
        crate::init::normal_(&weight, 0.0, 1.0);
        let padding_idx = padding_idx.map(|p| {
            let n = num_embeddings as i64;
            if p < -n || p >= n {
                panic!(
                    "Embedding: padding_idx {p} is out of range for {num_embeddings} embeddings"
                );
            }
            if p < 0 {
                p + n
            } else {
                p
            }
        });
        if let Some(p) = padding_idx {
            no_grad(|| {
                weight.narrow(0, p as usize, 1).zero_();
            });
        }
        Embedding {
            weight,
            padding_idx,
        }
    }

    /// An embedding using `weight` (`[num_embeddings, embedding_dim]`) as its table, trainable
    /// unless `freeze`, like `Embedding.from_pretrained`.
    pub fn from_pretrained(weight: &Tensor, freeze: bool) -> Embedding {
        if weight.rank() != 2 {
            panic!(
                "Embedding::from_pretrained: weight must be 2-D, got shape {:?}",
                weight.shape()
            );
        }
        let w = no_grad(|| weight.copy()).detach();
        Embedding {
            weight: w.requires_grad_(!freeze),
            padding_idx: None,
        }
    }

    /// Number of rows.
    pub fn num_embeddings(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Size of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.shape()[1]
    }
}

impl ModuleBase for Embedding {
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
    fn extra_repr(&self) -> String {
        let w = self.weight.shape();
        match self.padding_idx {
            Some(p) => format!("{}, {}, padding_idx={p}", w[0], w[1]),
            None => format!("{}, {}", w[0], w[1]),
        }
    }
}

impl Module for Embedding {
    /// Integer indices of any shape → `[*indices.shape, embedding_dim]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, F::embedding(x, &self.weight, self.padding_idx))
    }
}
