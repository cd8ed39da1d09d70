//! GAP's multi-part contrastive loss (Xiang et al., ICCV 2023), as the
//! authors' code computes it (`KLLoss.py`, `tools.create_logits`,
//! `tools.gen_label`).
//!
//! For one pair (skeleton features `x`, text embeddings `t` of each
//! sample's class, both `(N, D)`):
//!
//! - cosine similarities times a learnable scale, used as is (initialised
//!   to ln(1/0.07) = 2.659, not exponentiated): `L = s * x̂ t̂ᵀ`, `(N, N)`;
//! - the target of row `i` is `softmax_j(10 * [y_i == y_j])`: nearly
//!   uniform over the samples of the batch that share `i`'s class (every
//!   such sample is a positive, itself included);
//! - `KLDivLoss(mean)` times the batch size, i.e.
//!   `1/N Σ_i Σ_j p_ij (ln p_ij − log_softmax_j(L)_ij)`, taken for `L`
//!   (skeleton → text) and for `Lᵀ` (text → skeleton) and averaged.
//!
//! The GAP objective is the mean of this over its five pairs (global +
//! four parts), added to the cross-entropy with weight 0.8.

use candle_core::{DType, Tensor, D};

use crate::{Error, Result};

/// Sharpness of GAP's soft target: `softmax(10 * same_label)`.
pub const TARGET_SHARPNESS: f64 = 10.0;

/// Initial value of each pair's logit scale, ln(1 / 0.07).
pub const LOGIT_SCALE_INIT: f64 = 2.659_260_036_932_778;

/// Weight of the part loss in the total: `CE + 0.8 * mean(pair losses)`.
pub const LOSS_WEIGHT: f64 = 0.8;

/// GAP's soft target for `labels`: row `i` is
/// `softmax_j(10 * [labels[i] == labels[j]])`, `(N, N)` f32.
pub fn soft_target(labels: &[u32], device: &candle_core::Device) -> Result<Tensor> {
    let n = labels.len();
    let e = TARGET_SHARPNESS.exp();
    let mut p = Vec::with_capacity(n * n);
    for &yi in labels {
        let same = labels.iter().filter(|&&y| y == yi).count() as f64;
        let z = same * e + (n as f64 - same);
        p.extend(
            labels
                .iter()
                .map(|&y| (if y == yi { e } else { 1.0 } / z) as f32),
        );
    }
    Ok(Tensor::from_vec(p, (n, n), device)?)
}

/// Rows divided by their L2 norm: `(N, D) -> (N, D)`.
fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?; // (N, 1)
    Ok(x.broadcast_div(&norm)?)
}

/// `1/N Σ_ij p_ij (ln p_ij − log_softmax(logits)_ij)` (PyTorch's
/// `KLDivLoss(reduction='mean')` over `N x N` elements, times `N`).
fn kl_rows(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let (n, _) = logits.dims2()?;
    let logq = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let kl = (target * (target.log()? - logq)?)?.sum_all()?;
    Ok((kl / n as f64)?)
}

/// The loss of one pair: `x`, `t` `(N, D)`, `scale` a scalar tensor,
/// `target` from [`soft_target`]. Symmetric: the mean of the skeleton →
/// text and text → skeleton terms.
pub fn pair_loss(x: &Tensor, t: &Tensor, scale: &Tensor, target: &Tensor) -> Result<Tensor> {
    let (n, d) = x.dims2()?;
    if t.dims() != [n, d] {
        return Err(Error::shape(
            "GAP text embeddings",
            format!("({n}, {d})"),
            t.dims(),
        ));
    }
    let x = l2_normalize(&x.to_dtype(DType::F32)?)?;
    let t = l2_normalize(&t.to_dtype(DType::F32)?)?;
    let logits = x.matmul(&t.t()?)?.broadcast_mul(scale)?; // (N, N)
    let a = kl_rows(&logits, target)?;
    let b = kl_rows(&logits.t()?, target)?;
    Ok(((a + b)? / 2.0)?)
}

/// GAP's part loss: the mean of [`pair_loss`] over the pairs
/// `(feats[i], texts[i])` with scale `scales[i]` (`scales: (P,)`).
pub fn multipart_loss(
    feats: &[Tensor],
    texts: &[Tensor],
    scales: &Tensor,
    labels: &[u32],
) -> Result<Tensor> {
    if feats.len() != texts.len() || feats.is_empty() || scales.dims() != [feats.len()] {
        return Err(Error::shape(
            "GAP pairs",
            format!("{} features, texts and scales", feats.len()),
            &[texts.len(), scales.elem_count()],
        ));
    }
    let target = soft_target(labels, feats[0].device())?;
    let mut sum: Option<Tensor> = None;
    for (i, (x, t)) in feats.iter().zip(texts).enumerate() {
        let l = pair_loss(x, t, &scales.get(i)?, &target)?;
        sum = Some(match sum {
            Some(s) => (s + l)?,
            None => l,
        });
    }
    let sum = sum.ok_or_else(|| Error::config("gap", "no pairs"))?;
    Ok((sum / feats.len() as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// f32 rounding of a handful of exp/log operations.
    const CLOSE: f64 = 1e-5;

    fn t(v: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (v.len(), 2), &Device::Cpu).unwrap()
    }

    /// Two samples of two classes, orthonormal features equal to their
    /// texts, scale 1: `L = I`. Each row's target is
    /// `p = (e^10, 1) / (e^10 + 1)` = (0.99995460, 4.5398e-5), and
    /// `log_softmax(1, 0) = (1, 0) - ln(e + 1) = (-0.3132617, -1.3132617)`.
    /// `KL = 0.9999546 (-4.540e-5 + 0.3132617)
    ///     + 4.5398e-5 (-10.0000454 + 1.3132617) = 0.3128076`
    /// per row; both rows and both directions are alike, so the loss is
    /// 0.3128076.
    #[test]
    fn two_samples_two_classes_by_hand() {
        let x = t(&[[1.0, 0.0], [0.0, 1.0]]);
        let target = soft_target(&[0, 1], &Device::Cpu).unwrap();
        let scale = Tensor::new(1f32, &Device::Cpu).unwrap();
        let l = pair_loss(&x, &x, &scale, &target).unwrap();
        let l = l.to_scalar::<f32>().unwrap() as f64;
        assert!((l - 0.312_807_6).abs() < CLOSE, "{l}");
    }

    /// Three samples, labels (0, 0, 1): samples 0 and 1 share a class, so
    /// each is a positive of the other. Features (3, 0), (2, 0), (0, 0.5)
    /// normalise to (1, 0), (1, 0), (0, 1) — the texts of their classes —
    /// and with scale 2, `L = [[2, 2, 0], [2, 2, 0], [0, 0, 2]]`.
    ///
    /// Rows 0 and 1: target `(e^10, e^10, 1) / (2 e^10 + 1)` =
    /// (0.49998865, 0.49998865, 2.26994e-5), ln = (-0.6931699, .., -10.6931699);
    /// `log_softmax(2, 2, 0) = (2, 2, 0) - ln(2 e^2 + 1)` with
    /// `ln(2 e^2 + 1) = 2.7586237`: (-0.7586237, -0.7586237, -2.7586237).
    /// `KL = 2 * 0.49998865 * 0.0654538 + 2.26994e-5 * (-7.9345462) = 0.0652722`.
    ///
    /// Row 2: target `(1, 1, e^10) / (e^10 + 2)` = (4.53958e-5, .., 0.99990921),
    /// ln = (-10.0000908, .., -9.0796e-5); `ln(2 + e^2) = 2.2395448`, so
    /// `log_softmax(0, 0, 2)` = (-2.2395448, -2.2395448, -0.2395448).
    /// `KL = 0.99990921 * 0.2394540 + 2 * 4.53958e-5 * (-7.7605460) = 0.2387276`.
    ///
    /// Mean over rows: (2 * 0.0652722 + 0.2387276) / 3 = 0.1230907. `L` is
    /// symmetric, so the text → skeleton term is the same: loss 0.1230907
    /// (PyTorch with GAP's `KLLoss` and `create_logits`: 0.12309068).
    #[test]
    fn same_class_samples_are_positives_by_hand() {
        let x = t(&[[3.0, 0.0], [2.0, 0.0], [0.0, 0.5]]);
        let text = t(&[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
        let labels = [0, 0, 1];
        let target = soft_target(&labels, &Device::Cpu).unwrap();
        let scale = Tensor::new(2f32, &Device::Cpu).unwrap();
        let l = pair_loss(&x, &text, &scale, &target).unwrap();
        let l = l.to_scalar::<f32>().unwrap() as f64;
        assert!((l - 0.123_090_7).abs() < CLOSE, "{l}");
        // The multi-part loss is the mean over pairs.
        let scales = Tensor::new(&[2f32, 1.0], &Device::Cpu).unwrap();
        let m = multipart_loss(
            &[x.clone(), x.clone()],
            &[text.clone(), text],
            &scales,
            &labels,
        )
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
        let at1 = pair_loss(
            &x,
            &t(&[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
            &Tensor::new(1f32, &Device::Cpu).unwrap(),
            &target,
        )
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
        assert!((m - (0.123_090_7 + at1) / 2.0).abs() < CLOSE, "{m}");
    }

    #[test]
    fn soft_target_rows_sum_to_one() {
        let p = soft_target(&[3, 1, 3, 3], &Device::Cpu).unwrap();
        let s: Vec<f32> = p.sum(1).unwrap().to_vec1().unwrap();
        assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-6));
    }
}
