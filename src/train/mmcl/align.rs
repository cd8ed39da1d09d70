//! MMCL's Feature Alignment Module loss: a symmetric NT-Xent between the
//! skeleton model's global feature and the depth encoder's embedding, with
//! cross-modal and intra-modal negatives (as the authors' `FAM.py`, the
//! GRACE form of the loss).
//!
//! With `z1`, `z2` `(N, D)` L2-normalized per row, `τ` = 0.4 and
//! `e(a, b) = exp(a·b / τ)`, the loss of sample `i` in direction 1 → 2 is
//!
//! ```text
//! l_12(i) = -ln( e(z1_i, z2_i) / ( Σ_j e(z1_i, z1_j) - e(z1_i, z1_i) + Σ_j e(z1_i, z2_j) ) )
//! ```
//!
//! — the positive is the other modality's embedding of the same clip; the
//! negatives are every other clip of the batch in both modalities. The
//! loss is the mean over `i` of `(l_12(i) + l_21(i)) / 2`, weighted 0.1 in
//! the total.

use candle_core::{DType, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use crate::{Error, Result};

/// NT-Xent temperature (MMCL: 0.4).
pub const TEMPERATURE: f64 = 0.4;

/// Weight of the alignment loss in the total (MMCL: 0.1).
pub const ALIGN_WEIGHT: f64 = 0.1;

/// Rows divided by their L2 norm: `(N, D) -> (N, D)` (PyTorch's
/// `F.normalize`, eps 1e-12).
fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?; // (N, 1)
    Ok(x.broadcast_div(&norm)?)
}

/// One direction, per sample: `refl = e(z1, z1)`, `between = e(z1, z2)`,
/// both `(N, N)`; returns `(N,)`.
fn semi_loss(refl: &Tensor, between: &Tensor, eye: &Tensor) -> Result<Tensor> {
    let pos = (between * eye)?.sum(1)?; // (N,)
    let self_sim = (refl * eye)?.sum(1)?; // (N,)
    let denom = ((refl.sum(1)? + between.sum(1)?)? - self_sim)?; // (N,)
    Ok((pos / denom)?.log()?.neg()?)
}

/// The symmetric NT-Xent of `z1`, `z2` `(N, D)` at temperature `tau`,
/// a scalar tensor (mean over samples).
pub fn nt_xent(z1: &Tensor, z2: &Tensor, tau: f64) -> Result<Tensor> {
    let (n, d) = z1.dims2()?;
    if z2.dims() != [n, d] || n == 0 {
        return Err(Error::shape(
            "NT-Xent embeddings",
            format!("({n}, {d}) twice, N > 0"),
            z2.dims(),
        ));
    }
    let z1 = l2_normalize(&z1.to_dtype(DType::F32)?)?;
    let z2 = l2_normalize(&z2.to_dtype(DType::F32)?)?;
    let e = |a: &Tensor, b: &Tensor| -> Result<Tensor> { Ok((a.matmul(&b.t()?)? / tau)?.exp()?) };
    let s11 = e(&z1, &z1)?; // (N, N)
    let s22 = e(&z2, &z2)?;
    let s12 = e(&z1, &z2)?;
    let s21 = s12.t()?;
    let eye = Tensor::eye(n, DType::F32, z1.device())?;
    let l1 = semi_loss(&s11, &s12, &eye)?;
    let l2 = semi_loss(&s22, &s21, &eye)?;
    Ok(((l1 + l2)? * 0.5)?.mean_all()?)
}

/// The skeleton model's global feature: the last feature map averaged over
/// time and joints, then persons — the classifier's input, `(N*M, C, T,
/// V) -> (N, C)`.
pub fn global_feature(h: &Tensor, n: usize) -> Result<Tensor> {
    let (nm, c, _t, _v) = h.dims4()?;
    if n == 0 || nm % n != 0 {
        return Err(Error::shape(
            "skeleton feature map",
            format!("(N*M, C, T, V) with N = {n}"),
            h.dims(),
        ));
    }
    Ok(h.mean(3)?.mean(2)?.reshape((n, nm / n, c))?.mean(1)?) // (N, C)
}

/// The skeleton side's projection into the alignment space:
/// `Linear(C_last, 256)` (weights `skeleton_proj.*`). The authors align
/// CTR-GCN's 256-d feature directly; skelact's edge backbones are narrower.
#[derive(Debug, Clone)]
pub struct SkeletonProjector {
    proj: Linear,
}

impl SkeletonProjector {
    /// A projection from `c_feat` to `dim`.
    pub fn new(c_feat: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: candle_nn::linear(c_feat, dim, vb)?,
        })
    }

    /// `(N, C) -> (N, dim)`
    pub fn forward(&self, g: &Tensor) -> Result<Tensor> {
        Ok(self.proj.forward(g)?)
    }
}
