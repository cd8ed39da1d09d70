//! SGD with (Nesterov) momentum and per-parameter weight decay, and the
//! learning-rate schedules of the CTR-GCN family (linear warm-up, then step
//! or cosine decay).
//!
//! candle-nn's `AdamW` decays every variable, batch-norm scale and shift
//! included, and has no SGD with momentum; this optimizer follows PyTorch's
//! `torch.optim.SGD` update exactly and lets the caller choose which
//! parameters are decayed (by default not biases and BN parameters, which
//! are the one-dimensional ones).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::Result;

/// One trained parameter.
#[derive(Debug)]
pub struct Param {
    /// Its name in the weight map.
    pub name: String,
    /// The variable.
    pub var: Var,
    /// Whether weight decay applies to it.
    pub decay: bool,
    /// Momentum buffer (created on the first step).
    pub momentum: Option<Tensor>,
}

/// `torch.optim.SGD(momentum, nesterov, weight_decay)` with decay limited to
/// the parameters marked `decay`.
#[derive(Debug)]
pub struct Sgd {
    /// The parameters, in a fixed (name) order.
    pub params: Vec<Param>,
    /// Learning rate of the next step.
    pub lr: f64,
    /// Momentum factor (0.9).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay on decayed parameters.
    pub weight_decay: f64,
}

impl Sgd {
    /// One step from `grads`, with every gradient scaled by `grad_scale`
    /// first (gradient clipping). Parameters without a gradient are left
    /// alone.
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        for p in self.params.iter_mut() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let mut g = if grad_scale != 1.0 {
                (g * grad_scale)?
            } else {
                g.clone()
            };
            if p.decay && self.weight_decay != 0.0 {
                g = (g + (p.var.as_tensor() * self.weight_decay)?)?;
            }
            let d = if self.momentum != 0.0 {
                let buf = match &p.momentum {
                    Some(b) => ((b * self.momentum)? + &g)?,
                    None => g.clone(),
                };
                let d = if self.nesterov {
                    (&g + (&buf * self.momentum)?)?
                } else {
                    buf.clone()
                };
                p.momentum = Some(buf);
                d
            } else {
                g
            };
            p.var.set(&(p.var.as_tensor() - (d * self.lr)?)?)?;
        }
        Ok(())
    }
}

/// The global L2 norm of the gradients of `params`.
pub fn grad_norm(params: &[Param], grads: &GradStore) -> Result<f64> {
    let mut sum = 0.0f64;
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    Ok(sum.sqrt())
}

/// How the learning rate decays after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Decay {
    /// Multiply by `gamma` at each listed epoch (CTR-GCN: 0.1 at 50 on
    /// NW-UCLA).
    Step {
        /// Epochs (0-based, counted from the start) at which lr drops.
        at: Vec<usize>,
        /// Factor per drop.
        gamma: f64,
    },
    /// Cosine from the base rate to `min_lr` at the end of training.
    Cosine {
        /// Final learning rate.
        min_lr: f64,
    },
}

/// Learning-rate schedule: linear warm-up over `warmup_epochs` (as
/// CTR-GCN's `adjust_learning_rate`: `lr * (epoch + 1) / warmup`), then
/// [`Decay`]. Evaluated per step with fractional epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Base learning rate.
    pub base_lr: f64,
    /// Warm-up epochs.
    pub warmup_epochs: usize,
    /// Total epochs.
    pub epochs: usize,
    /// Decay after warm-up.
    pub decay: Decay,
}

impl Schedule {
    /// The learning rate at (fractional) epoch `e` in `[0, epochs)`.
    pub fn lr(&self, e: f64) -> f64 {
        if (e as usize) < self.warmup_epochs {
            return self.base_lr * (e.floor() + 1.0) / self.warmup_epochs as f64;
        }
        match &self.decay {
            Decay::Step { at, gamma } => {
                let drops = at.iter().filter(|&&a| e >= a as f64).count() as i32;
                self.base_lr * gamma.powi(drops)
            }
            Decay::Cosine { min_lr } => {
                let span = (self.epochs - self.warmup_epochs).max(1) as f64;
                let p = ((e - self.warmup_epochs as f64) / span).clamp(0.0, 1.0);
                min_lr + 0.5 * (self.base_lr - min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_step() {
        let s = Schedule {
            base_lr: 0.1,
            warmup_epochs: 5,
            epochs: 65,
            decay: Decay::Step {
                at: vec![50],
                gamma: 0.1,
            },
        };
        assert!((s.lr(0.0) - 0.02).abs() < 1e-12);
        assert!((s.lr(4.5) - 0.1).abs() < 1e-12);
        assert!((s.lr(49.9) - 0.1).abs() < 1e-12);
        assert!((s.lr(50.0) - 0.01).abs() < 1e-12);
    }
}
