//! The `Tensor` handle: a cheap-to-clone reference to a strided view of shared storage, with
//! autograd metadata.

mod create;
mod display;
mod elementwise;
mod index;
mod inplace;
mod linalg;
mod operators;
mod read;
mod reduce;
mod view;

pub use index::IndexArg;

use crate::autograd::Node;
use crate::device::Device;
use crate::dtype::DType;
use crate::layout::Layout;
use crate::storage::Storage;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// An n-dimensional array on a device, with optional gradient tracking.
///
/// Cloning is cheap (an `Arc` bump) and shares data, like a Python reference to a
/// `torch.Tensor`.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorImpl>);

pub(crate) struct TensorImpl {
    pub(crate) storage: Arc<Storage>,
    pub(crate) layout: Layout,
    pub(crate) dtype: DType,
    pub(crate) requires_grad: AtomicBool,
    pub(crate) grad_fn: Option<Arc<Node>>,
    pub(crate) grad: Mutex<Option<Tensor>>,
}

impl crate::ops::infer::ValueType for Tensor {
    #[inline(always)]
    fn shape(&self) -> &[usize] {
        Tensor::shape(self)
    }
    #[inline(always)]
    fn dtype(&self) -> DType {
        Tensor::dtype(self)
    }
}

impl Tensor {
    /// The tensor as a kernel sees it: its storage through its layout, without autograd.
    #[inline(always)]
    pub fn operand(&self) -> kiln_kernels::Operand<'_> {
        kiln_kernels::Operand::new(&self.0.storage, &self.0.layout, self.0.dtype)
    }

    /// The tensor's storage and layout as an owned value (an `Arc` bump): what the graph
    /// runtime binds and hands out.
    pub fn to_owned_operand(&self) -> kiln_kernels::OwnedOperand {
        kiln_kernels::OwnedOperand::new(self.0.storage.clone(), self.0.layout.clone(), self.0.dtype)
    }

    /// A tensor over an owned operand's storage and layout (sharing its data), with no
    /// autograd history.
    #[track_caller]
    pub fn from_owned_operand(value: &kiln_kernels::OwnedOperand) -> Tensor {
        let o = value.operand();
        Tensor::from_parts(o.storage().clone(), o.layout().clone(), o.dtype(), None)
    }

    /// Wraps storage and a layout into a tensor with no autograd history.
    #[track_caller]
    pub fn from_storage(storage: Arc<Storage>, layout: Layout) -> Tensor {
        let dtype = storage.dtype();
        Tensor::from_parts(storage, layout, dtype, None)
    }

    #[inline]
    #[track_caller]
    pub(crate) fn from_parts(
        storage: Arc<Storage>,
        layout: Layout,
        dtype: DType,
        grad_fn: Option<Arc<Node>>,
    ) -> Tensor {
        let requires_grad = grad_fn.is_some();
        Tensor(Arc::new(TensorImpl {
            storage,
            layout,
            dtype,
            requires_grad: AtomicBool::new(requires_grad),
            grad_fn,
            grad: Mutex::new(None),
        }))
    }

    /// The size of each dimension.
    #[track_caller]
    pub fn shape(&self) -> &[usize] {
        &self.0.layout.shape
    }

    /// Alias of [`Tensor::shape`].
    #[track_caller]
    pub fn dims(&self) -> &[usize] {
        self.shape()
    }

    /// Size of dimension `dim` (negative counts from the end).
    #[track_caller]
    pub fn size(&self, dim: impl crate::shape::DimInt) -> usize {
        self.shape()[crate::shape::resolve_dim(dim, self.rank(), "size")]
    }

    /// Number of dimensions.
    #[track_caller]
    pub fn rank(&self) -> usize {
        self.0.layout.shape.len()
    }

    /// Alias of [`Tensor::rank`].
    #[track_caller]
    pub fn ndim(&self) -> usize {
        self.rank()
    }

    /// Number of elements.
    #[track_caller]
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// Element type.
    #[track_caller]
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The device holding the data.
    #[track_caller]
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }

    /// Strides in elements.
    #[track_caller]
    pub fn strides(&self) -> &[usize] {
        &self.0.layout.strides
    }

    /// The full layout (shape, strides, offset).
    #[track_caller]
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// The shared storage.
    #[track_caller]
    pub fn storage(&self) -> &Arc<Storage> {
        &self.0.storage
    }

    /// True when elements are dense in row-major order.
    #[track_caller]
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// True when two handles view the same storage.
    #[track_caller]
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// True when both handles are the same tensor object.
    #[track_caller]
    pub fn same(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// How many handles refer to this tensor object (it and its clones; views are other
    /// objects): tells whether a tensor handed out earlier is still held elsewhere.
    #[track_caller]
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// Moves the tensor to `device` (a no-op on the CPU, the only device today).
    #[track_caller]
    pub fn to(&self, device: Device) -> Tensor {
        match device {
            Device::Cpu => self.clone(),
        }
    }

    // ---- autograd surface ----

    /// Whether gradients flow to or through this tensor.
    #[track_caller]
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Marks a leaf tensor as requiring grad (returns `self` for chaining).
    ///
    /// Panics for non-float dtypes and for non-leaf tensors being switched off.
    #[track_caller]
    pub fn requires_grad_(&self, on: bool) -> Tensor {
        if on && !self.dtype().is_float() {
            panic!(
                "requires_grad_: only float tensors can require gradients, got {} with shape {:?}",
                self.dtype(),
                self.shape()
            );
        }
        if !on && self.0.grad_fn.is_some() {
            panic!("requires_grad_: cannot turn off gradients of a non-leaf tensor; use detach()");
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        self.clone()
    }

    /// True for tensors created by the user (not by a tracked op).
    #[track_caller]
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }

    /// The node that produced this tensor, if tracked.
    #[track_caller]
    pub fn grad_fn(&self) -> Option<&Arc<Node>> {
        self.0.grad_fn.as_ref()
    }

    /// The accumulated gradient of a leaf, after `backward`.
    #[track_caller]
    pub fn grad(&self) -> Option<Tensor> {
        let mut slot = self.0.grad.lock();
        if crate::trace::is_tracing() {
            crate::trace::touch_grad(self, &mut slot, true);
        }
        slot.clone()
    }

    /// Replaces the stored gradient.
    #[track_caller]
    pub fn set_grad(&self, grad: Option<Tensor>) {
        let mut slot = self.0.grad.lock();
        if crate::trace::is_tracing() {
            crate::trace::touch_grad(self, &mut slot, false);
        }
        *slot = grad;
    }

    /// Clears the stored gradient (PyTorch's `set_to_none=True`).
    #[track_caller]
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    #[track_caller]
    pub(crate) fn accumulate_grad(&self, g: Tensor) {
        let mut slot = self.0.grad.lock();
        if crate::trace::is_tracing() {
            crate::trace::touch_grad(self, &mut slot, true);
        }
        *slot = Some(match slot.take() {
            // A gradient buffer shared with another tensor (e.g. `a + b` hands the same
            // gradient to both) is copied, so in-place updates of one `.grad` (clipping,
            // optimizers) never leak into another.
            None if !g.requires_grad()
                && (Arc::strong_count(&g.0.storage) > 1 || !g.is_contiguous()) =>
            {
                crate::autograd::no_grad(|| g.copy())
            }
            None => g,
            // A gradient recorded under create_graph is summed differentiably.
            Some(prev) if g.requires_grad() => &prev + &g,
            Some(prev) => crate::autograd::no_grad(|| &prev + &g),
        });
    }

    /// A stand-in with this tensor's shape, strides and dtype but no data (an empty storage);
    /// autograd saves these for tensors whose values a VJP does not read.
    #[track_caller]
    pub(crate) fn shape_only(&self) -> Tensor {
        static EMPTY: std::sync::OnceLock<Arc<Storage>> = std::sync::OnceLock::new();
        let empty = EMPTY
            .get_or_init(|| Arc::new(Storage::cpu(crate::storage::CpuStorage::F32(Vec::new()))));
        Tensor::from_parts(empty.clone(), self.0.layout.clone(), self.0.dtype, None)
    }

    /// A tensor sharing storage with no autograd history.
    #[track_caller]
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(
            self.0.storage.clone(),
            self.0.layout.clone(),
            self.0.dtype,
            None,
        )
    }

    /// Storage version (incremented by every in-place write).
    #[track_caller]
    pub fn version(&self) -> u64 {
        self.0.storage.version()
    }
}
