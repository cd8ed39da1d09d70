//! SkeletonMAE's (and GraphMAE's) scaled cosine error: for each masked node
//! `(1 - cos(x, z))^beta` between the original feature `x` and the
//! reconstruction `z`, averaged over the masked nodes. With `beta > 1` the
//! loss down-weights nodes that are already well reconstructed (SkeletonMAE:
//! beta = 2).

use candle_core::{Tensor, D};

use crate::{Error, Result};

/// SkeletonMAE's beta.
pub const BETA: f64 = 2.0;

/// Norm floor of the cosine (as `F.normalize`'s eps).
const EPS: f64 = 1e-12;

/// `pred`, `target`: `(B, V, C)`; `mask`: `(B, V)` with 1 on masked nodes.
/// Returns the mean of `(1 - cos)^beta` over masked nodes (a scalar).
pub fn scaled_cosine_error(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    beta: f64,
) -> Result<Tensor> {
    // pred, target: (B, V, C); mask: (B, V)
    let unit = |x: &Tensor| -> Result<Tensor> {
        let n = x
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(EPS, f64::MAX)?; // (B, V, 1)
        Ok(x.broadcast_div(&n)?)
    };
    let cos = (unit(pred)? * unit(target)?)?.sum(D::Minus1)?; // (B, V)
    let one_minus = cos.affine(-1.0, 1.0)?.clamp(0.0, 2.0)?; // (B, V)
    let err = if beta == 2.0 {
        one_minus.sqr()?
    } else {
        one_minus.powf(beta)?
    };
    let count = mask.sum_all()?.to_scalar::<f32>()?;
    if count <= 0.0 {
        return Err(Error::config("mask", "no node is masked"));
    }
    Ok((err * mask)?.sum_all()?.affine(1.0 / count as f64, 0.0)?)
}
