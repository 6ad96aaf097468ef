//! What a kernel reads and writes: a storage seen through a layout, with its dtype.

use crate::dtype::DType;
use crate::layout::Layout;
use crate::storage::{CpuStorage, Storage};
use std::sync::Arc;

/// A borrowed strided view of a storage: the whole of what a kernel knows about an input or
/// an output. The layer above (tensors, the graph executor) lends these; kernels never see
/// gradients, tracing or any other bookkeeping of a value.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    storage: &'a Arc<Storage>,
    layout: &'a Layout,
    dtype: DType,
}

impl<'a> Operand<'a> {
    /// A view of `storage` through `layout`; `dtype` must be the storage's element type (the
    /// caller knows it without taking the storage's lock).
    #[inline(always)]
    pub fn new(storage: &'a Arc<Storage>, layout: &'a Layout, dtype: DType) -> Operand<'a> {
        Operand {
            storage,
            layout,
            dtype,
        }
    }

    /// The shared storage.
    #[inline(always)]
    pub fn storage(&self) -> &'a Arc<Storage> {
        self.storage
    }

    /// Shape, strides and offset into the storage.
    #[inline(always)]
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// The size of each dimension.
    #[inline(always)]
    pub fn shape(&self) -> &'a [usize] {
        &self.layout.shape
    }

    /// Number of dimensions.
    #[inline(always)]
    pub fn rank(&self) -> usize {
        self.layout.shape.len()
    }

    /// Number of elements.
    #[inline(always)]
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// Strides in elements.
    #[inline(always)]
    pub fn strides(&self) -> &'a [usize] {
        &self.layout.strides
    }

    /// Element type.
    #[inline(always)]
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// True when the elements are dense in row-major order.
    #[inline(always)]
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// True when both views read the same storage.
    #[inline(always)]
    pub fn shares_storage(&self, other: Operand<'_>) -> bool {
        Arc::ptr_eq(self.storage, other.storage)
    }
}

/// A storage and layout a kernel made for itself (a cast or dense copy of an input), lent
/// out as an [`Operand`].
#[derive(Clone, Debug)]
pub struct OwnedOperand {
    storage: Arc<Storage>,
    layout: Layout,
    dtype: DType,
}

impl OwnedOperand {
    /// A dense row-major buffer of `shape`.
    pub fn dense(data: CpuStorage, shape: &[usize]) -> OwnedOperand {
        let dtype = data.dtype();
        OwnedOperand {
            storage: Arc::new(Storage::cpu(data)),
            layout: Layout::contiguous(shape),
            dtype,
        }
    }

    /// `storage` seen through `layout`.
    pub fn new(storage: Arc<Storage>, layout: Layout, dtype: DType) -> OwnedOperand {
        OwnedOperand {
            storage,
            layout,
            dtype,
        }
    }

    /// Lends it as an operand.
    #[inline(always)]
    pub fn operand(&self) -> Operand<'_> {
        Operand::new(&self.storage, &self.layout, self.dtype)
    }
}

/// An operand as given, or a converted copy a kernel made of it.
#[derive(Debug)]
pub enum CowOperand<'a> {
    /// The caller's operand.
    Borrowed(Operand<'a>),
    /// A copy (a cast or a dense copy); boxed, so the common borrowed case stays four words
    /// (unboxed, a pair of these was a 270-byte `memmove` on every eager binary op).
    Owned(Box<OwnedOperand>),
}

impl CowOperand<'_> {
    /// Holds a copy.
    pub fn owned(o: OwnedOperand) -> CowOperand<'static> {
        CowOperand::Owned(Box::new(o))
    }

    /// Lends it as an operand.
    #[inline(always)]
    pub fn operand(&self) -> Operand<'_> {
        match self {
            CowOperand::Borrowed(o) => *o,
            CowOperand::Owned(o) => o.operand(),
        }
    }
}
