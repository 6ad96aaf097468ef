//! Neural-network functionals (activations, losses, normalization, convolution, pooling,
//! attention, dropout) composed from the primitive ops.

pub mod functional;
