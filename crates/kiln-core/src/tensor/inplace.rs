//! In-place updates. They write into the existing storage (visible through every view) and bump
//! its version, so a tensor saved for backward that gets modified is reported, not silently
//! differentiated wrong.

use super::Tensor;
use crate::autograd::{is_grad_enabled, no_grad};

impl Tensor {
    #[track_caller]
    fn check_inplace(&self, op: &str) {
        if is_grad_enabled() && self.requires_grad() {
            panic!(
                "{op}: in-place update of a tensor that requires grad (shape {:?}); run it under no_grad \
                 (as optimizers do) or use the out-of-place form",
                self.shape()
            );
        }
    }

    /// In-place ops record no graph: an operand that requires grad would silently lose its
    /// gradient, so refuse it outside no_grad.
    #[track_caller]
    fn check_operand(op: &str, other: &Tensor) {
        if is_grad_enabled() && other.requires_grad() {
            panic!(
                "{op}: in-place ops are not differentiable, but the operand (shape {:?}) requires \
                 grad; run it under no_grad, detach() the operand, or use the out-of-place form",
                other.shape()
            );
        }
    }

    /// Writes `src` (broadcast and cast to `self`) into `self`'s elements.
    #[track_caller]
    pub fn copy_(&self, src: &Tensor) -> &Tensor {
        self.check_inplace("copy_");
        Tensor::check_operand("copy_", src);
        if crate::shape::broadcast_shapes(src.shape(), self.shape()).as_deref()
            != Some(self.shape())
        {
            panic!(
                "copy_: source shape {:?} cannot be broadcast to {:?}",
                src.shape(),
                self.shape()
            );
        }
        self.write_from("copy_", src);
        self
    }

    /// Writes `src` (broadcastable to `self`) into `self`; while tracing, records the write.
    #[track_caller]
    fn write_from(&self, op: &str, src: &Tensor) {
        if crate::trace::is_tracing() {
            let v = no_grad(|| {
                let v = if src.dtype() != self.dtype() {
                    src.to_dtype(self.dtype())
                } else {
                    src.clone()
                };
                if v.shape() != self.shape() {
                    v.broadcast_to(self.shape())
                } else {
                    v
                }
            });
            crate::trace::assign(op, self, &v);
            return;
        }
        crate::trace::check_readable(self, op);
        crate::cpu::copy_into(self.operand(), src.operand());
    }

    #[track_caller]
    fn update(&self, op: &str, f: impl FnOnce(&Tensor) -> Tensor) -> &Tensor {
        self.check_inplace(op);
        let v = no_grad(|| f(self));
        if v.shape() != self.shape() {
            panic!(
                "{op}: result shape {:?} does not match the tensor's shape {:?}",
                v.shape(),
                self.shape()
            );
        }
        self.write_from(op, &v);
        self
    }

    /// `self += other` in place.
    #[track_caller]
    pub fn add_(&self, other: &Tensor) -> &Tensor {
        Tensor::check_operand("add_", other);
        self.update("add_", |s| s + other)
    }

    /// `self -= other` in place.
    #[track_caller]
    pub fn sub_(&self, other: &Tensor) -> &Tensor {
        Tensor::check_operand("sub_", other);
        self.update("sub_", |s| s - other)
    }

    /// `self *= other` in place.
    #[track_caller]
    pub fn mul_(&self, other: &Tensor) -> &Tensor {
        Tensor::check_operand("mul_", other);
        self.update("mul_", |s| s * other)
    }

    /// `self /= other` in place.
    #[track_caller]
    pub fn div_(&self, other: &Tensor) -> &Tensor {
        Tensor::check_operand("div_", other);
        self.update("div_", |s| s / other)
    }

    /// `self = self · mul + add` in place.
    #[track_caller]
    pub fn affine_(&self, mul: f64, add: f64) -> &Tensor {
        self.update("affine_", |s| s.affine(mul, add))
    }

    /// `self += v` in place.
    #[track_caller]
    pub fn add_scalar_(&self, v: f64) -> &Tensor {
        self.affine_(1.0, v)
    }

    /// `self *= v` in place.
    #[track_caller]
    pub fn mul_scalar_(&self, v: f64) -> &Tensor {
        self.affine_(v, 0.0)
    }

    /// `self += alpha · other` in place (like `torch.Tensor.add_(other, alpha=…)`).
    #[track_caller]
    pub fn add_scaled_(&self, other: &Tensor, alpha: f64) -> &Tensor {
        Tensor::check_operand("add_", other);
        self.update("add_", |s| s + &other.mul_scalar(alpha))
    }

    /// Clamps in place.
    #[track_caller]
    pub fn clamp_(&self, min: f64, max: f64) -> &Tensor {
        self.update("clamp_", |s| s.clamp(min, max))
    }

    /// Sets every element to `v`.
    #[track_caller]
    pub fn fill_(&self, v: f64) -> &Tensor {
        self.check_inplace("fill_");
        self.write_from("fill_", &Tensor::scalar(v, self.dtype()));
        self
    }

    /// Sets every element to zero.
    #[track_caller]
    pub fn zero_(&self) -> &Tensor {
        self.fill_(0.0)
    }
}
