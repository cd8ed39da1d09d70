//! Objectives: cross-entropy with label smoothing (Szegedy et al., CVPR
//! 2016), as `torch.nn.CrossEntropyLoss(label_smoothing=eps)`.

use candle_core::{DType, Tensor, D};

use crate::{Error, Result};

/// Mean over the batch of `(1 - eps) * nll + eps * mean_k(-log p_k)` for
/// `logits: (N, K)` and `labels: (N,)` u32.
pub fn cross_entropy_smoothed(logits: &Tensor, labels: &Tensor, eps: f64) -> Result<Tensor> {
    let (_n, k) = logits.dims2()?;
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?; // (N, K)
    let nll = logp
        .gather(&labels.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?
        .mean_all()?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let smooth = (logp.sum(1)?.neg()? / k as f64)?.mean_all()?;
    Ok(((nll * (1.0 - eps))? + (smooth * eps)?)?)
}

/// A scalar loss tensor as `f64`, refused with [`Error::NonFinite`] naming
/// `what` (for example "training loss at epoch 3 step 12") when it is NaN
/// or infinite, so a diverging run stops instead of writing garbage.
pub fn finite_scalar(loss: &Tensor, what: impl FnOnce() -> String) -> Result<f64> {
    let l = loss.to_scalar::<f32>()? as f64;
    if l.is_finite() {
        Ok(l)
    } else {
        Err(Error::NonFinite {
            what: what(),
            count: 1,
            total: 1,
        })
    }
}
