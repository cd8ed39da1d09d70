//! Activations not provided by candle as modules.

use candle_core::{Result, Tensor};

/// Swish / SiLU: `x * sigmoid(x)`.
pub fn swish(x: &Tensor) -> Result<Tensor> {
    x * candle_nn::ops::sigmoid(x)?
}

/// Hardswish as in PyTorch: `x * relu6(x + 3) / 6`.
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    let r6 = ((x + 3.0)?.clamp(0f32, 6f32)? / 6.0)?;
    x * r6
}
