//! Knowledge distillation from a fused ensemble into one model
//! (`--distill A --distill B ...`).
//!
//! CTR-GCN's best numbers come from four models, one per input stream,
//! whose scores are summed ([`crate::model::Ensemble`]). A device that can
//! afford one network can still profit from the others at training time:
//! the ensemble scores every augmented training window, and the student
//! learns its softened class distribution besides the label (Hinton,
//! Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015):
//!
//! `loss = CE(student, label) + lambda * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`
//!
//! where `z_t` is the ensemble's weighted mean of logits (CTR-GCN's weights
//! 0.6 / 0.4 by stream, normalized to sum 1 so that `T` keeps its usual
//! meaning) and `T^2` keeps the gradient scale of the soft term independent
//! of `T`. The teachers score exactly the student's input window
//! (augmented, masked) through their own streams — the same
//! [`window::to_input`] path serving uses — so they must share the
//! student's classes, layout, temporal contract and normalization
//! ([`ensemble::check_servable`]). They run in inference mode on the CPU
//! plan; the export is the student alone.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::model::{ensemble, Ensemble, ModelCard, ModelDir};
use crate::window::{self, Prepared};
use crate::{Error, Result};

/// Default softmax temperature of the soft targets.
pub const DEFAULT_TEMPERATURE: f64 = 4.0;
/// Default weight of the soft term beside the cross-entropy.
pub const DEFAULT_WEIGHT: f64 = 1.0;

/// Teachers and the weighting of their soft targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Model directories of the teachers; their logits are fused.
    pub teachers: Vec<PathBuf>,
    /// Fusion weights, one per teacher (default: CTR-GCN's by stream).
    pub fusion_weights: Option<Vec<f64>>,
    /// Softmax temperature `T`.
    pub temperature: f64,
    /// Weight `lambda` of the soft term.
    pub weight: f64,
}

impl DistillConfig {
    /// Checks the numbers: at least one teacher, `T > 0`, `lambda >= 0`.
    pub fn validate(&self) -> Result<()> {
        if self.teachers.is_empty() {
            return Err(Error::config("distill", "needs at least one teacher"));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::config(
                "distill temperature",
                format!("must be positive, got {}", self.temperature),
            ));
        }
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(Error::config(
                "distill weight",
                format!("must be non-negative, got {}", self.weight),
            ));
        }
        Ok(())
    }
}

/// The loaded teacher ensemble.
pub struct Teacher {
    ensemble: Ensemble,
    /// Sum of the fusion weights: the fused logits are divided by it.
    total: f64,
    cfg: DistillConfig,
}

impl Teacher {
    /// Loads the teachers for inference and checks that they can score the
    /// windows of a student with `student` as its card.
    pub fn load(cfg: &DistillConfig, student: &ModelCard, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let dirs = cfg
            .teachers
            .iter()
            .map(ModelDir::open)
            .collect::<Result<Vec<_>>>()?;
        let mut cards: Vec<&ModelCard> = vec![student];
        cards.extend(dirs.iter().map(|d| d.card()));
        ensemble::check_servable(&cards)?;
        let members = dirs
            .iter()
            .map(|d| d.load_inference(device, Some(DType::F32)))
            .collect::<Result<Vec<_>>>()?;
        let ensemble = Ensemble::new(members, cfg.fusion_weights.clone())?;
        let total: f64 = ensemble.weights().iter().sum();
        if total <= 0.0 {
            return Err(Error::config(
                "distill",
                "the fusion weights must sum to more than zero",
            ));
        }
        Ok(Self {
            ensemble,
            total,
            cfg: cfg.clone(),
        })
    }

    /// The fused teacher logits `(N, K)` for the student's batch: the
    /// weighted mean of the teachers' logits.
    pub fn logits(&self, batch: &[&Prepared], device: &Device) -> Result<Tensor> {
        let sum = self
            .ensemble
            .logits(|card| window::to_input(batch, card, device))?;
        Ok(sum.affine(1.0 / self.total, 0.0)?)
    }

    /// The soft term, `lambda * T^2 * KL`, for the student's logits.
    pub fn loss(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        let kl = soft_target_kl(student, teacher, self.cfg.temperature)?;
        let t2 = self.cfg.temperature * self.cfg.temperature;
        Ok((kl * (self.cfg.weight * t2))?)
    }

    /// The objective in words, for the card's notes.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .ensemble
            .members()
            .iter()
            .zip(self.ensemble.weights())
            .zip(&self.cfg.teachers)
            .map(|((m, w), p)| {
                let w = w / self.total;
                format!("{} ({}, weight {w:.3})", m.card.name, p.display())
            })
            .collect();
        format!(
            "Distilled (Hinton et al. 2015): + {} x T^2 x KL(teacher || student) at T = {}, the \
             teacher being the weighted mean of the logits of {}, scored on each augmented \
             training window; the teachers are not part of this model.",
            self.cfg.weight,
            self.cfg.temperature,
            names.join(", ")
        )
    }
}

/// `mean_n KL(softmax(teacher_n / T) || softmax(student_n / T))` for
/// `student, teacher: (N, K)`; the teacher is a constant (no gradient).
pub fn soft_target_kl(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor> {
    if student.dims() != teacher.dims() {
        return Err(Error::shape(
            "teacher logits",
            format!("{:?} (the student's)", student.dims()),
            teacher.dims(),
        ));
    }
    let inv_t = 1.0 / temperature;
    let log_q = candle_nn::ops::log_softmax(&(student.to_dtype(DType::F32)? * inv_t)?, D::Minus1)?; // (N, K)
    let log_p = candle_nn::ops::log_softmax(
        &(teacher.to_dtype(DType::F32)?.detach() * inv_t)?,
        D::Minus1,
    )?; // (N, K)
    let p = log_p.exp()?;
    let kl = (p * (log_p - log_q)?)?.sum(1)?; // (N,)
    Ok(kl.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_matches_hand_computation() -> Result<()> {
        // Student logits (0, ln 2) -> q = (1/3, 2/3); teacher logits
        // (ln 3, 0) -> p = (3/4, 1/4), both at T = 1.
        // KL = 3/4 ln(9/4) + 1/4 ln(3/8).
        let dev = Device::Cpu;
        let s = Tensor::new(&[[0f32, 2f32.ln()]], &dev)?;
        let t = Tensor::new(&[[3f32.ln(), 0f32]], &dev)?;
        let want = 0.75 * (9.0f64 / 4.0).ln() + 0.25 * (3.0f64 / 8.0).ln();
        let got = soft_target_kl(&s, &t, 1.0)?.to_scalar::<f32>()? as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // At T = 2 the logits halve: q = (1/(1+√2), √2/(1+√2)), p = (√3/(1+√3), 1/(1+√3)).
        let (r2, r3) = (2f64.sqrt(), 3f64.sqrt());
        let (q0, q1) = (1.0 / (1.0 + r2), r2 / (1.0 + r2));
        let (p0, p1) = (r3 / (1.0 + r3), 1.0 / (1.0 + r3));
        let want = p0 * (p0 / q0).ln() + p1 * (p1 / q1).ln();
        let got = soft_target_kl(&s, &t, 2.0)?.to_scalar::<f32>()? as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // Equal distributions: zero, whatever the logits' offset.
        let same = soft_target_kl(&s, &(s.clone() + 5.0)?, 3.0)?.to_scalar::<f32>()?;
        assert!(same.abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn gradient_reaches_only_the_student() -> Result<()> {
        // d KL / d z_s = (q - p) / T per sample, averaged over the batch.
        let dev = Device::Cpu;
        let s = candle_core::Var::new(&[[0f32, 2f32.ln()], [1.0, 1.0]], &dev)?;
        let t = candle_core::Var::new(&[[3f32.ln(), 0f32], [0.0, 0.0]], &dev)?;
        let kl = soft_target_kl(s.as_tensor(), t.as_tensor(), 1.0)?;
        let grads = kl.backward()?;
        assert!(grads.get(t.as_tensor()).is_none());
        let g = grads.get(s.as_tensor()).expect("student gradient");
        let g: Vec<Vec<f32>> = g.to_vec2()?;
        let want = [
            [(1.0 / 3.0 - 0.75) / 2.0, (2.0 / 3.0 - 0.25) / 2.0],
            [0.0, 0.0],
        ];
        for (row, w) in g.iter().zip(want) {
            for (a, b) in row.iter().zip(w) {
                assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn config_is_checked() {
        let ok = DistillConfig {
            teachers: vec![PathBuf::from("models/x")],
            fusion_weights: None,
            temperature: DEFAULT_TEMPERATURE,
            weight: DEFAULT_WEIGHT,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            DistillConfig {
                teachers: vec![],
                ..ok.clone()
            },
            DistillConfig {
                temperature: 0.0,
                ..ok.clone()
            },
            DistillConfig {
                weight: f64::NAN,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
