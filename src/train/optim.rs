//! Optimizers — SGD with (Nesterov) momentum and AdamW, both with
//! per-parameter weight decay — and the learning-rate schedules of the
//! CTR-GCN family (linear warm-up, then step or cosine decay).
//!
//! candle-nn's `AdamW` decays every variable, batch-norm scale and shift
//! included, and has no SGD with momentum. [`Sgd`] follows PyTorch's
//! `torch.optim.SGD` update exactly; [`AdamW`] follows `torch.optim.AdamW`
//! (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR
//! 2019: the decay shrinks the weights directly instead of entering the
//! gradient, with bias-corrected moments). Both decay only the parameters
//! marked [`Param::decay`] (by default not biases, BN parameters or
//! CTR-GCN's scalar `alpha`, which are the parameters of rank below 2; see
//! [`crate::train::trainer::params`]).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
            // Detached: arithmetic on the variable itself would record an
            // op, and the momentum buffer built from it would then hold the
            // previous step's buffer, and so on back to the first step (a
            // few MB per step kept alive for the whole run).
            let w = p.var.as_tensor().detach();
            let mut g = if grad_scale != 1.0 {
                (g.detach() * grad_scale)?
            } else {
                g.detach()
            };
            if p.decay && self.weight_decay != 0.0 {
                g = (g + (&w * self.weight_decay)?)?;
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
            p.var.set(&(w - (d * self.lr)?)?)?;
        }
        Ok(())
    }
}

/// `torch.optim.AdamW(betas, eps, weight_decay)` with decay limited to the
/// parameters marked `decay`. One step `t` (1-based) on a parameter `p`
/// with gradient `g`:
///
/// ```text
/// p <- p - lr * weight_decay * p            (decayed parameters only)
/// m <- beta1 * m + (1 - beta1) * g
/// v <- beta2 * v + (1 - beta2) * g^2
/// p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
/// ```
///
/// As in PyTorch, the decay is scaled by the scheduled learning rate (the
/// paper's schedule multiplier with the base rate folded in), and `eps` is
/// added after the bias-corrected square root.
#[derive(Debug)]
pub struct AdamW {
    /// The parameters, in a fixed (name) order; [`Param::momentum`] holds
    /// the first moment `m`.
    pub params: Vec<Param>,
    /// Second moments `v`, by parameter name (created on the first step).
    pub second: HashMap<String, Tensor>,
    /// Learning rate of the next step.
    pub lr: f64,
    /// Decay rates of the first and second moments (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator (1e-8).
    pub eps: f64,
    /// Decoupled weight decay on decayed parameters.
    pub weight_decay: f64,
    /// Steps taken so far (the bias corrections' `t` is `steps + 1` at the
    /// next step).
    pub steps: u64,
}

impl AdamW {
    /// An optimizer over `params` with PyTorch's defaults for `betas`
    /// (0.9, 0.999) and `eps` (1e-8).
    pub fn new(params: Vec<Param>, lr: f64, weight_decay: f64) -> Self {
        Self {
            params,
            second: HashMap::new(),
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            steps: 0,
        }
    }

    /// One step from `grads`, with every gradient scaled by `grad_scale`
    /// first (gradient clipping). Parameters without a gradient are left
    /// alone (their moments too), as PyTorch skips them.
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = self.betas;
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        for p in self.params.iter_mut() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            // Detached, as in [`Sgd::step`]: stored moments must not record
            // the ops that made them.
            let g = if grad_scale != 1.0 {
                (g.detach() * grad_scale)?
            } else {
                g.detach()
            };
            let mut w = p.var.as_tensor().detach();
            if p.decay && self.weight_decay != 0.0 {
                w = (&w * (1.0 - self.lr * self.weight_decay))?;
            }
            let m = match &p.momentum {
                Some(m) => ((m * b1)? + (&g * (1.0 - b1))?)?,
                None => (&g * (1.0 - b1))?,
            };
            let g2 = g.sqr()?;
            let v = match self.second.get(&p.name) {
                Some(v) => ((v * b2)? + (&g2 * (1.0 - b2))?)?,
                None => (&g2 * (1.0 - b2))?,
            };
            let denom = ((&v / bias2)?.sqrt()? + self.eps)?;
            let update = ((&m / bias1)? / denom)?;
            p.var.set(&(w - (update * self.lr)?)?)?;
            p.momentum = Some(m);
            self.second.insert(p.name.clone(), v);
        }
        Ok(())
    }
}

/// The optimizer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// [`Sgd`] (CTR-GCN's recipe: Nesterov momentum 0.9).
    #[default]
    Sgd,
    /// [`AdamW`].
    Adamw,
}

impl OptimizerKind {
    /// Parses `sgd` / `adamw`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adamw" => Ok(OptimizerKind::Adamw),
            other => Err(Error::config(
                "optimizer",
                format!("unknown optimizer `{other}` (sgd, adamw)"),
            )),
        }
    }

    /// The name [`OptimizerKind::by_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adamw => "adamw",
        }
    }
}

/// Either optimizer behind one interface, for the trainer.
#[derive(Debug)]
pub enum Optimizer {
    /// SGD with momentum.
    Sgd(Sgd),
    /// AdamW.
    AdamW(AdamW),
}

/// Name of the step counter in [`Optimizer::state`].
const STEPS_KEY: &str = "adamw.steps";

impl Optimizer {
    /// The parameters.
    pub fn params(&self) -> &[Param] {
        match self {
            Optimizer::Sgd(o) => &o.params,
            Optimizer::AdamW(o) => &o.params,
        }
    }

    /// Sets the learning rate of the next step.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Optimizer::Sgd(o) => o.lr = lr,
            Optimizer::AdamW(o) => o.lr = lr,
        }
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd(o) => o.lr,
            Optimizer::AdamW(o) => o.lr,
        }
    }

    /// One step; see [`Sgd::step`] and [`AdamW::step`].
    pub fn step(&mut self, grads: &GradStore, grad_scale: f64) -> Result<()> {
        match self {
            Optimizer::Sgd(o) => o.step(grads, grad_scale),
            Optimizer::AdamW(o) => o.step(grads, grad_scale),
        }
    }

    /// The optimizer's state as named tensors, for a checkpoint: SGD's
    /// momentum buffers under the parameter names; AdamW's moments under
    /// `exp_avg.NAME` and `exp_avg_sq.NAME`, and its step count.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        match self {
            Optimizer::Sgd(o) => {
                for p in &o.params {
                    if let Some(m) = &p.momentum {
                        out.insert(p.name.clone(), m.clone());
                    }
                }
            }
            Optimizer::AdamW(o) => {
                for p in &o.params {
                    if let Some(m) = &p.momentum {
                        out.insert(format!("exp_avg.{}", p.name), m.clone());
                    }
                    if let Some(v) = o.second.get(&p.name) {
                        out.insert(format!("exp_avg_sq.{}", p.name), v.clone());
                    }
                }
                // f64 holds every step count a run reaches exactly.
                out.insert(
                    STEPS_KEY.to_string(),
                    Tensor::new(&[o.steps as f64], &Device::Cpu)?,
                );
            }
        }
        Ok(out)
    }

    /// Restores what [`Optimizer::state`] saved.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        match self {
            Optimizer::Sgd(o) => {
                for p in o.params.iter_mut() {
                    p.momentum = state.get(&p.name).cloned();
                }
            }
            Optimizer::AdamW(o) => {
                for p in o.params.iter_mut() {
                    p.momentum = state.get(&format!("exp_avg.{}", p.name)).cloned();
                    if let Some(v) = state.get(&format!("exp_avg_sq.{}", p.name)) {
                        o.second.insert(p.name.clone(), v.clone());
                    }
                }
                if let Some(s) = state.get(STEPS_KEY) {
                    o.steps = s.to_vec1::<f64>()?.first().copied().unwrap_or(0.0) as u64;
                }
            }
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
    /// Cosine from the base rate to `min_lr` at the end of training, or,
    /// with `restarts`, SGDR (Loshchilov & Hutter, "SGDR: Stochastic
    /// Gradient Descent with Warm Restarts", ICLR 2017): each restart jumps
    /// back up to its own rate and decays by cosine to `min_lr` again by the
    /// next restart (or the end).
    Cosine {
        /// Final learning rate of every cycle.
        min_lr: f64,
        /// Warm restarts, in increasing epoch order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        restarts: Vec<Restart>,
    },
}

/// One warm restart of a cosine schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    /// Epoch (0-based, counted from the start) at which the cycle begins.
    pub at: usize,
    /// Learning rate the cycle starts from.
    pub lr: f64,
}

impl Restart {
    /// Parses `EPOCH:LR` (`16:0.05`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::config(
                "restart",
                format!("`{s}` is not EPOCH:LR (for example 16:0.05)"),
            )
        };
        let (at, lr) = s.split_once(':').ok_or_else(bad)?;
        let at = at.trim().parse::<usize>().map_err(|_| bad())?;
        let lr = lr.trim().parse::<f64>().map_err(|_| bad())?;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(bad());
        }
        Ok(Self { at, lr })
    }
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
            Decay::Cosine { min_lr, restarts } => {
                // The cycle holding `e`: its start, end and first rate.
                let current = restarts.iter().rposition(|r| e >= r.at as f64);
                let (start, lr0) = match current {
                    Some(i) => (restarts[i].at, restarts[i].lr),
                    None => (self.warmup_epochs, self.base_lr),
                };
                let end = current
                    .map_or(restarts.first(), |i| restarts.get(i + 1))
                    .map_or(self.epochs, |r| r.at);
                let span = end.saturating_sub(start).max(1) as f64;
                let p = ((e - start as f64) / span).clamp(0.0, 1.0);
                min_lr + 0.5 * (lr0 - min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }

    /// Fits the schedule to `epochs` instead of its planned `self.epochs`
    /// (a time budget cut the run short after `done` epochs): the run still
    /// ends at the bottom of a cycle. Step drops and restarts still to come
    /// move in proportion, never before `done`; those already passed stay.
    pub fn shrink(&mut self, epochs: usize, done: usize) {
        let planned = self.epochs.max(1);
        let scale = |a: &mut usize| {
            if *a > done {
                *a = (*a * epochs).div_ceil(planned).max(done);
            }
        };
        match &mut self.decay {
            Decay::Step { at, .. } => at.iter_mut().for_each(scale),
            Decay::Cosine { restarts, .. } => {
                restarts.iter_mut().for_each(|r| scale(&mut r.at));
                // A restart moved onto the end would start a cycle of zero
                // epochs; drop it.
                restarts.retain(|r| r.at < epochs);
            }
        }
        self.epochs = epochs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter with weight decay and a gradient from `loss = sum(w^2)`.
    fn step_twice(kind: OptimizerKind) -> Param {
        let var = Var::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], (2, 2), &Device::Cpu).unwrap();
        let param = || Param {
            name: "w".into(),
            var: var.clone(),
            decay: true,
            momentum: None,
        };
        let mut sgd = Sgd {
            params: vec![param()],
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-2,
        };
        let mut adamw = AdamW::new(vec![param()], 0.1, 1e-2);
        for _ in 0..2 {
            let grads = var
                .as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            match kind {
                OptimizerKind::Sgd => sgd.step(&grads, 1.0).unwrap(),
                OptimizerKind::Adamw => adamw.step(&grads, 0.5).unwrap(),
            }
        }
        match kind {
            OptimizerKind::Sgd => sgd.params.pop().unwrap(),
            OptimizerKind::Adamw => {
                assert!(adamw.second.values().all(|v| !v.track_op()));
                adamw.params.pop().unwrap()
            }
        }
    }

    /// Optimizer state that recorded ops would chain every step's buffers
    /// to the previous ones: memory grew by ~3 MB per CTR-GCN edge step
    /// (14 GB after 60 passes over NW-UCLA) before the inputs were detached.
    #[test]
    fn optimizer_state_records_no_graph() {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adamw] {
            let p = step_twice(kind);
            let m = p.momentum.expect("momentum after two steps");
            assert!(!m.track_op(), "{kind:?}: the momentum buffer records an op");
        }
    }

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

    /// SGDR: warm-up, a cosine cycle to `min_lr`, then a restart at its own
    /// rate that decays to `min_lr` by the end; hand-computed points.
    #[test]
    fn cosine_with_warm_restarts() {
        let mut s = Schedule {
            base_lr: 0.1,
            warmup_epochs: 1,
            epochs: 30,
            decay: Decay::Cosine {
                min_lr: 0.0,
                restarts: vec![Restart::parse("16:0.05").unwrap()],
            },
        };
        assert!((s.lr(0.5) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0) - 0.1).abs() < 1e-12);
        // Half-way through the first cycle [1, 16): 0.05.
        assert!((s.lr(8.5) - 0.05).abs() < 1e-12);
        assert!(s.lr(15.999) < 1e-6);
        assert!((s.lr(16.0) - 0.05).abs() < 1e-12);
        // Half-way through the second cycle [16, 30): 0.025.
        assert!((s.lr(23.0) - 0.025).abs() < 1e-12);
        assert!(s.lr(29.999) < 1e-6);
        // A time budget of 15 epochs moves the restart to 8.
        s.shrink(15, 3);
        assert_eq!(s.epochs, 15);
        let Decay::Cosine { restarts, .. } = &s.decay else {
            unreachable!()
        };
        assert_eq!(restarts[0].at, 8);
        assert!((s.lr(8.0) - 0.05).abs() < 1e-12);
        // A cut after the restart leaves it where it happened.
        s.shrink(12, 9);
        assert!(matches!(&s.decay, Decay::Cosine { restarts, .. } if restarts[0].at == 8));
        // A restart still to come that would start at the end is dropped.
        s.epochs = 30;
        s.decay = Decay::Cosine {
            min_lr: 0.0,
            restarts: vec![Restart { at: 29, lr: 0.05 }],
        };
        s.shrink(10, 10);
        assert!(matches!(&s.decay, Decay::Cosine { restarts, .. } if restarts.is_empty()));
        for bad in ["16", "x:0.1", "16:-1", "16:nan"] {
            assert!(Restart::parse(bad).is_err(), "{bad}");
        }
    }
}
