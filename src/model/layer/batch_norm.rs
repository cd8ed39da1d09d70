//! Batch normalization over dimension 1 of a tensor of any rank ≥ 2.
//!
//! Training uses candle-nn's implementation (batch statistics, running
//! averages). Inference applies the folded per-channel affine map
//! `x * scale + shift` in the input's dtype, which also works in f16 (the
//! candle-nn module fails there on mixed dtypes).

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Default epsilon, as in PyTorch.
pub const BN_EPS: f64 = 1e-5;

/// `BatchNorm{1,2}d` with PyTorch's parameter names (`weight`, `bias`,
/// `running_mean`, `running_var`).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    inner: candle_nn::BatchNorm,
    num_features: usize,
}

impl BatchNorm {
    /// A batch norm over `c` channels with gamma initialised to 1.
    pub fn new(c: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_gamma(c, 1.0, vb)
    }

    /// A batch norm whose gamma is initialised to `gamma` when the weights
    /// are created fresh (CTR-GCN initialises some to 1e-6). Loaded weights
    /// ignore the initialiser.
    pub fn with_gamma(c: usize, gamma: f64, vb: VarBuilder) -> Result<Self> {
        let running_mean = vb.get_with_hints(c, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(c, "running_var", Init::Const(1.0))?;
        let weight = vb.get_with_hints(c, "weight", Init::Const(gamma))?;
        let bias = vb.get_with_hints(c, "bias", Init::Const(0.0))?;
        let inner = candle_nn::BatchNorm::new(c, running_mean, running_var, weight, bias, BN_EPS)?;
        Ok(Self {
            inner,
            num_features: c,
        })
    }

    /// Number of channels.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The inference-time affine map as `(scale, shift)`, each `(C,)` f32:
    /// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
    pub fn scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let mean = self.inner.running_mean().to_dtype(DType::F32)?;
        let var = self.inner.running_var().to_dtype(DType::F32)?;
        let (gamma, beta) = match self.inner.weight_and_bias() {
            Some((w, b)) => (w.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?),
            None => (mean.ones_like()?, mean.zeros_like()?),
        };
        let scale = (gamma / (var + self.inner.eps())?.sqrt()?)?;
        let shift = (beta - (mean * &scale)?)?;
        Ok((scale, shift))
    }

    /// `x: (N, C, ...)`. In training mode uses batch statistics and updates
    /// the running averages; otherwise applies the folded affine map.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self.inner.forward_train(x);
        }
        let (scale, shift) = self.scale_shift()?;
        apply_channel_affine(x, &scale, &shift)
    }
}

/// `x * scale + shift` with `scale`, `shift` of shape `(C,)` broadcast over
/// dimension 1 of `x: (N, C, ...)`, computed in `x`'s dtype.
pub fn apply_channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    let mut shape = vec![1usize; x.rank()];
    shape[1] = c;
    let scale = scale.to_dtype(x.dtype())?.reshape(shape.as_slice())?;
    let shift = shift.to_dtype(x.dtype())?.reshape(shape.as_slice())?;
    x.broadcast_mul(&scale)?.broadcast_add(&shift)
}
