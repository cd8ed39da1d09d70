//! Batch normalization over dimension 1 of a tensor of any rank ≥ 2.
//!
//! Training uses batch statistics and updates the running averages the way
//! PyTorch does (momentum 0.1, unbiased variance), through the fused op of
//! [`super::batch_norm_train`] on the CPU. Inference applies the folded
//! per-channel affine map `x * scale + shift` in the input's dtype, which
//! also works in f16 (candle-nn's module fails there on mixed dtypes).

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use super::batch_norm_train::batch_norm_train;

/// Default epsilon, as in PyTorch.
pub const BN_EPS: f64 = 1e-5;

/// Weight of the new batch statistic in the running averages, as in
/// PyTorch.
pub const BN_MOMENTUM: f64 = 0.1;

/// `BatchNorm{1,2}d` with PyTorch's parameter names (`weight`, `bias`,
/// `running_mean`, `running_var`).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    running_mean: Var,
    running_var: Var,
    weight: Tensor,
    bias: Tensor,
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
        // The statistics are held in f32 whatever the compute dtype (model
        // directories store them so, see `directory::stored_dtype`).
        let stats = vb.to_dtype(DType::F32);
        let running_mean = stats.get_with_hints(c, "running_mean", Init::Const(0.0))?;
        let running_var = stats.get_with_hints(c, "running_var", Init::Const(1.0))?;
        let weight = vb.get_with_hints(c, "weight", Init::Const(gamma))?;
        let bias = vb.get_with_hints(c, "bias", Init::Const(0.0))?;
        // A tensor that is already a variable (a `VarMap`'s) is shared, so
        // the running averages are saved with the other weights.
        Ok(Self {
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            weight,
            bias,
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
        let mean = self.running_mean.as_tensor().to_dtype(DType::F32)?;
        let var = self.running_var.as_tensor().to_dtype(DType::F32)?;
        let gamma = self.weight.to_dtype(DType::F32)?;
        let beta = self.bias.to_dtype(DType::F32)?;
        let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
        let shift = (beta - (mean * &scale)?)?;
        Ok((scale, shift))
    }

    /// `x: (N, C, ...)`. In training mode uses batch statistics and updates
    /// the running averages; otherwise applies the folded affine map.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let (y, stats) = batch_norm_train(x, &self.weight, &self.bias, BN_EPS)?;
            self.update_running(&stats, x.elem_count() / self.num_features.max(1))?;
            return Ok(y);
        }
        let (scale, shift) = self.scale_shift()?;
        apply_channel_affine(x, &scale, &shift)
    }
}

impl BatchNorm {
    /// `running = (1 − m)·running + m·batch`, with the batch variance made
    /// unbiased over the `count` values per channel.
    fn update_running(
        &self,
        stats: &super::batch_norm_train::BatchStats,
        count: usize,
    ) -> Result<()> {
        let c = self.num_features;
        let dev = self.running_mean.device();
        let unbias = if count > 1 {
            count as f64 / (count as f64 - 1.0)
        } else {
            1.0
        };
        let rm = self.running_mean.as_tensor();
        let rv = self.running_var.as_tensor();
        let mean = Tensor::from_slice(&stats.mean, c, dev)?.to_dtype(rm.dtype())?;
        let var = Tensor::from_slice(&stats.var, c, dev)?.to_dtype(rv.dtype())?;
        self.running_mean
            .set(&((rm * (1.0 - BN_MOMENTUM))? + (mean * BN_MOMENTUM)?)?)?;
        self.running_var
            .set(&((rv * (1.0 - BN_MOMENTUM))? + (var * (BN_MOMENTUM * unbias))?)?)
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
