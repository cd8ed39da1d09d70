//! SCD-Net's objective: four InfoNCE terms between the query encoder's
//! projections and the momentum key encoder's (Wu et al., AAAI 2024):
//! temporal query against instance key, spatial query against instance
//! key, instance query against temporal key, instance query against
//! spatial key — each with the negatives of the queue of its key's kind
//! and temperature 0.2.
//!
//! One term, with unit vectors `q`, `k` `(B, D)` and queue `Q` `(K, D)`:
//! logits `[q·k, q·Q_1, ..., q·Q_K] / tau` per row, cross-entropy with the
//! positive at index 0, averaged over the batch (MoCo's loss).

use candle_core::{Tensor, D};

use super::super::loss::cross_entropy_smoothed;
use crate::Result;

/// SCD-Net's temperature.
pub const TEMPERATURE: f64 = 0.2;

/// `v: (B, D)` scaled to unit rows.
pub fn l2_normalize(v: &Tensor) -> Result<Tensor> {
    let n = v
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?; // (B, 1)
    Ok(v.broadcast_div(&n)?)
}

/// InfoNCE of unit queries `q: (B, D)` against their keys `k: (B, D)`
/// and the negatives `queue: (K, D)`, temperature `tau`; a scalar.
pub fn info_nce(q: &Tensor, k: &Tensor, queue: &Tensor, tau: f64) -> Result<Tensor> {
    // q, k: (B, D); queue: (K, D)
    let b = q.dim(0)?;
    let pos = (q * k)?.sum_keepdim(D::Minus1)?; // (B, 1)
    let neg = q.matmul(&queue.t()?)?; // (B, K)
    let logits = (Tensor::cat(&[&pos, &neg], 1)? / tau)?; // (B, 1 + K)
    let labels = Tensor::zeros(b, candle_core::DType::U32, q.device())?;
    cross_entropy_smoothed(&logits, &labels, 0.0)
}

/// One side's three unit projections: temporal, spatial, instance, each
/// `(B, 128)`.
#[derive(Debug, Clone)]
pub struct Projections {
    /// Temporal branch.
    pub temporal: Tensor,
    /// Spatial branch.
    pub spatial: Tensor,
    /// Both branches' concatenation (the instance anchor).
    pub instance: Tensor,
}

/// The three queues of negatives, as tensors `(K, D)`.
pub struct QueueTensors<'a> {
    /// Temporal keys.
    pub temporal: &'a Tensor,
    /// Spatial keys.
    pub spatial: &'a Tensor,
    /// Instance keys.
    pub instance: &'a Tensor,
}

/// The four terms' names, in the order of [`scd_terms`]: query kind,
/// then key kind.
pub const TERM_NAMES: [&str; 4] = [
    "temporal-instance",
    "spatial-instance",
    "instance-temporal",
    "instance-spatial",
];

/// SCD-Net's four terms, scalars each: (q_t, k_i), (q_s, k_i), (q_i, k_t),
/// (q_i, k_s), each against the queue of its key's kind.
pub fn scd_terms(
    q: &Projections,
    k: &Projections,
    queues: &QueueTensors,
    tau: f64,
) -> Result<[Tensor; 4]> {
    Ok([
        info_nce(&q.temporal, &k.instance, queues.instance, tau)?,
        info_nce(&q.spatial, &k.instance, queues.instance, tau)?,
        info_nce(&q.instance, &k.temporal, queues.temporal, tau)?,
        info_nce(&q.instance, &k.spatial, queues.spatial, tau)?,
    ])
}

/// The sum of [`scd_terms`]: SCD-Net's objective.
pub fn scd_loss(
    q: &Projections,
    k: &Projections,
    queues: &QueueTensors,
    tau: f64,
) -> Result<Tensor> {
    sum_terms(&scd_terms(q, k, queues, tau)?)
}

/// `t[0] + t[1] + t[2] + t[3]`.
pub fn sum_terms(t: &[Tensor; 4]) -> Result<Tensor> {
    Ok((((&t[0] + &t[1])? + &t[2])? + &t[3])?)
}

/// What one term scores when the query cannot tell its key from the `k`
/// negatives (all logits equal): `ln(1 + k)`. A term that climbs back to
/// it has collapsed.
pub fn chance_level(k: usize) -> f64 {
    (1.0 + k as f64).ln()
}
