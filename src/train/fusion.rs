//! Score fusion: one model per input stream (joint, bone, joint-motion,
//! bone-motion), each scoring the same test clips, and a weighted sum of
//! their class scores per clip decides.
//!
//! This is how CTR-GCN reports its headline numbers (its `ensemble.py`):
//! the raw class scores (logits) of the four models summed with weights
//! 0.6, 0.6, 0.4, 0.4; two models are summed with equal weights. Several
//! models of one stream (seeds) share that stream's weight. Every
//! model keeps its own card, so each computes its own stream through the
//! one input path ([`crate::window::to_input`]); fusion only needs them to
//! agree on the classes and to score the same clips. The weights and checks
//! are shared with serving ([`crate::model::ensemble`]).

use candle_core::Device;

use super::metrics::{Accumulator, Evaluation};
use super::trainer::{forward_clips, EVAL_WINDOW_STRIDE};
pub use crate::model::ensemble::{
    check_compatible, check_weights, default_weight, default_weights,
};
use crate::model::{Encoder, Ensemble, ModelCard};
use crate::source::Clip;
use crate::window::input::{clip_windows_input, log_mean_probs, PoseSeq};
use crate::{Error, Result};

/// Class scores of every clip: `scores[clip][class]`, in clip order; each
/// clip scored from `views` ([`forward_clips`]; none is one plain view).
pub fn scores(
    encoder: &dyn Encoder,
    card: &ModelCard,
    clips: &[Clip],
    views: &[f32],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(clips.len());
    for chunk in clips.chunks(batch_size.max(1)) {
        out.extend(forward_clips(encoder, card, chunk, views, device)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Scores of an ensemble's clips from one pass over its members: each
/// member's own scores and the fused scores, `[clip][class]` each.
pub struct EnsembleScores {
    /// `members[m][clip][class]`: member `m` alone, as [`scores`] gives it.
    pub members: Vec<Vec<Vec<f32>>>,
    /// The fused scores, as serving fuses ([`ensemble_scores`]).
    pub fused: Vec<Vec<f32>>,
}

/// Fused class scores of every clip scored as serving scores it: for each
/// window and test-time view the ensemble's weighted sum of its members'
/// logits, then the log of the mean class probability over the clip's
/// windows and views (`(clips, classes)` as rows). With views this differs
/// from [`fuse`] of per-model [`scores`], which average each model's views
/// before the weighted sum. Each member's own scores come from the same
/// forward passes.
pub fn ensemble_scores(
    ensemble: &Ensemble,
    clips: &[Clip],
    views: &[f32],
    device: &Device,
) -> Result<EnsembleScores> {
    let members = ensemble.members();
    let mut out = EnsembleScores {
        members: vec![Vec::with_capacity(clips.len()); members.len()],
        fused: Vec::with_capacity(clips.len()),
    };
    for clip in clips {
        let seq = PoseSeq::from_clip(clip)?;
        let logits = ensemble.member_logits(|card| {
            clip_windows_input(seq, card, EVAL_WINDOW_STRIDE, views, device)
        })?; // per member (W * views, K)
        for (l, own) in logits.iter().zip(&mut out.members) {
            own.extend(log_mean_probs(l)?.to_vec2::<f32>()?);
        }
        out.fused
            .extend(log_mean_probs(&ensemble.weighted_sum(&logits)?)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// `sum_m weights[m] * scores[m][clip][class]`. All models must score the
/// same number of clips and classes.
pub fn fuse(scores: &[Vec<Vec<f32>>], weights: &[f64]) -> Result<Vec<Vec<f32>>> {
    let first = scores
        .first()
        .ok_or_else(|| Error::config("fusion", "needs at least one model's scores"))?;
    check_weights(weights, scores.len())?;
    let k = first.first().map_or(0, Vec::len);
    for (m, s) in scores.iter().enumerate() {
        if s.len() != first.len() || s.iter().any(|row| row.len() != k) {
            return Err(Error::config(
                "fusion",
                format!(
                    "model {m} scored {} clips, model 0 {} clips of {k} classes",
                    s.len(),
                    first.len()
                ),
            ));
        }
    }
    Ok((0..first.len())
        .map(|i| {
            (0..k)
                .map(|c| {
                    scores
                        .iter()
                        .zip(weights)
                        .map(|(s, &w)| w * s[i][c] as f64)
                        .sum::<f64>() as f32
                })
                .collect()
        })
        .collect())
}

/// Top-1 / top-5 / per-class / confusion of `scores` against `labels`
/// (one per clip, in the same order).
pub fn evaluate_scores(scores: &[Vec<f32>], labels: &[usize], num_class: usize) -> Evaluation {
    let mut acc = Accumulator::new(num_class);
    for (row, &label) in scores.iter().zip(labels) {
        acc.add(row, label);
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_sum_by_hand() {
        // Two models, two clips, three classes. Model 0 prefers class 0 on
        // clip 0; model 1 prefers class 2 more strongly; with weights 0.6 and
        // 0.4 the sum is [0.6*2 + 0.4*0, 0.6*1 + 0.4*1, 0.6*0 + 0.4*4]
        // = [1.2, 1.0, 1.6]: class 2 wins.
        let a = vec![vec![2.0, 1.0, 0.0], vec![0.0, 3.0, 0.0]];
        let b = vec![vec![0.0, 1.0, 4.0], vec![1.0, 0.0, 0.0]];
        let f = fuse(&[a, b], &[0.6, 0.4]).unwrap();
        let want = [[1.2, 1.0, 1.6], [0.4, 1.8, 0.0]];
        for (row, w) in f.iter().zip(want) {
            for (x, y) in row.iter().zip(w) {
                assert!((x - y).abs() < 1e-6, "{row:?} vs {w:?}");
            }
        }
        let e = evaluate_scores(&f, &[2, 0], 3);
        // clip 0: predicted 2 (right); clip 1: predicted 1, label 0 (wrong)
        assert_eq!(e.top1, 0.5);
        assert_eq!(e.confusion[0][1], 1);
        assert_eq!(e.confusion[2][2], 1);
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let a = vec![vec![1.0, 2.0]];
        let b = vec![vec![1.0, 2.0, 3.0]];
        assert!(fuse(&[a.clone(), b], &[1.0, 1.0]).is_err());
        assert!(fuse(&[a.clone(), a.clone()], &[1.0]).is_err());
        assert!(fuse(std::slice::from_ref(&a), &[f64::NAN]).is_err());
        assert!(fuse(&[], &[]).is_err());
        assert!(fuse(&[a.clone(), vec![]], &[1.0, 1.0]).is_err());
    }
}
