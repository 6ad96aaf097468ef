//! Containers: `Sequential` (a chain of layers) and `ModuleList` (an indexed list of
//! submodules), with PyTorch's child names `"0"`, `"1"`, ….

use crate::{Module, ModuleBase};
use kiln_core::Tensor;
use std::ops::{Deref, DerefMut};

impl Module for Box<dyn Module> {
    fn forward(&self, x: &Tensor) -> Tensor {
        (**self).forward(x)
    }
}

/// Layers applied one after another, like `torch.nn.Sequential`; the children are named
/// `"0"`, `"1"`, … so state dict keys read `0.weight`, `2.bias`, ….
///
/// ```
/// use kiln_nn::layers::{Linear, ReLU, Sequential};
/// use kiln_nn::ModuleBase;
/// let mlp = Sequential::new()
///     .append(Linear::new(4, 8))
///     .append(ReLU::new())
///     .append(Linear::new(8, 2));
/// let names: Vec<String> = mlp.state_dict().keys().map(String::from).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends a layer and returns the chain (builder style, like PyTorch's
    /// `Sequential.append`).
    pub fn append(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Module + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Appends an already boxed layer.
    pub fn push_boxed(&mut self, layer: Box<dyn Module>) {
        self.layers.push(layer);
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The `i`-th layer.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.layers.get(i).map(|l| &**l)
    }

    /// The layers in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Module> {
        self.layers.iter().map(|l| &**l)
    }
}

impl From<Vec<Box<dyn Module>>> for Sequential {
    fn from(layers: Vec<Box<dyn Module>>) -> Sequential {
        Sequential { layers }
    }
}

impl ModuleBase for Sequential {
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), (**l).as_dyn()))
            .collect()
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}

impl std::fmt::Debug for Sequential {
    /// The module tree ([`ModuleBase::tree`]), as PyTorch prints a model.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tree())
    }
}

impl Module for Sequential {
    /// Applies each layer to the previous one's output.
    fn forward(&self, x: &Tensor) -> Tensor {
        crate::summary::observed(self, {
            // A loop, not a fold: a closure would end the caller location at this line.
            let mut h = x.clone();
            for layer in &self.layers {
                h = layer.forward(&h);
            }
            h
        })
    }
}

/// An indexed list of submodules, like `torch.nn.ModuleList`: registers each element as a
/// child named by its index, and derefs to a slice for iteration and indexing. Holds any one
/// module type (`ModuleList<Linear>`) or, by default, boxed [`Module`]s.
pub struct ModuleList<M: ModuleBase = Box<dyn Module>> {
    items: Vec<M>,
}

impl<M: ModuleBase> ModuleList<M> {
    /// An empty list.
    pub fn new() -> ModuleList<M> {
        ModuleList { items: Vec::new() }
    }

    /// Appends a module.
    pub fn push(&mut self, m: M) {
        self.items.push(m);
    }

    /// The modules as a vector.
    pub fn into_inner(self) -> Vec<M> {
        self.items
    }
}

impl<M: ModuleBase> Default for ModuleList<M> {
    fn default() -> Self {
        ModuleList::new()
    }
}

impl<M: ModuleBase> From<Vec<M>> for ModuleList<M> {
    fn from(items: Vec<M>) -> ModuleList<M> {
        ModuleList { items }
    }
}

impl<M: ModuleBase> FromIterator<M> for ModuleList<M> {
    fn from_iter<I: IntoIterator<Item = M>>(iter: I) -> ModuleList<M> {
        ModuleList {
            items: iter.into_iter().collect(),
        }
    }
}

impl<M: ModuleBase> Deref for ModuleList<M> {
    type Target = [M];
    fn deref(&self) -> &[M] {
        &self.items
    }
}

impl<M: ModuleBase> DerefMut for ModuleList<M> {
    fn deref_mut(&mut self) -> &mut [M] {
        &mut self.items
    }
}

impl<'a, M: ModuleBase> IntoIterator for &'a ModuleList<M> {
    type Item = &'a M;
    type IntoIter = std::slice::Iter<'a, M>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<M: ModuleBase> ModuleBase for ModuleList<M> {
    fn children(&self) -> Vec<(String, &dyn ModuleBase)> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m.as_dyn()))
            .collect()
    }
    fn as_dyn(&self) -> &dyn ModuleBase {
        self
    }
}
