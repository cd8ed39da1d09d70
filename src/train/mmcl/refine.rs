//! MMCL's Feature Refinement Module: per-sample teacher features turn the
//! classifier's logits into a refined score, trained with a second
//! cross-entropy that acts like a soft label.
//!
//! As in the authors' `MMCL.py`: the teacher feature `f` `(N, D)` goes
//! through `Linear(D, 64) -> ReLU -> Linear(64, 2)` and a softmax to
//! `(w+, w-)` per sample; with learnable per-class vectors `P`, `N` `(K,)`
//! initialised to ones,
//!
//! ```text
//! refined = (w+ P + w- N) ⊙ logits        (N, K)
//! ```
//!
//! and the refinement loss is the cross-entropy of `refined` against the
//! labels, weighted 0.2 in the total. At initialisation `w+ + w- = 1` and
//! `P = N = 1`, so the refined score equals the logits. Only training uses
//! this module: the exported classifier is the unrefined one. Weight names
//! `mlp.0.*`, `mlp.2.*`, `pos`, `neg` under the builder's prefix.

use candle_core::{Tensor, D};
use candle_nn::{Init, Linear, Module, VarBuilder};

use crate::{Error, Result};

/// Hidden width of the teacher MLP (MMCL: 64).
pub const HIDDEN: usize = 64;

/// Weight of the refined cross-entropy in the total (MMCL: 0.2).
pub const REFINE_WEIGHT: f64 = 0.2;

/// The refinement module for `K` classes and `D`-dimensional teacher
/// features.
#[derive(Debug, Clone)]
pub struct Refinement {
    mlp0: Linear,
    mlp2: Linear,
    /// `(K,)`, initialised to ones.
    pos: Tensor,
    /// `(K,)`, initialised to ones.
    neg: Tensor,
    teacher_dim: usize,
}

impl Refinement {
    /// A module for `classes` classes and teacher features of
    /// `teacher_dim` values.
    pub fn new(teacher_dim: usize, classes: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            mlp0: candle_nn::linear(teacher_dim, HIDDEN, vb.pp("mlp.0"))?,
            mlp2: candle_nn::linear(HIDDEN, 2, vb.pp("mlp.2"))?,
            pos: vb.get_with_hints(classes, "pos", Init::Const(1.0))?,
            neg: vb.get_with_hints(classes, "neg", Init::Const(1.0))?,
            teacher_dim,
        })
    }

    /// `(w+, w-)` per sample: `teacher (N, D) -> (N, 2)`, rows summing to 1.
    pub fn weights(&self, teacher: &Tensor) -> Result<Tensor> {
        let (_n, d) = teacher.dims2()?;
        if d != self.teacher_dim {
            return Err(Error::shape(
                "teacher features",
                format!("(N, {})", self.teacher_dim),
                teacher.dims(),
            ));
        }
        let z = self.mlp2.forward(&self.mlp0.forward(teacher)?.relu()?)?; // (N, 2)
                                                                          // ops::softmax (not softmax_last_dim): the latter has no backward.
        Ok(candle_nn::ops::softmax(&z, D::Minus1)?)
    }

    /// The refined score `(w+ P + w- N) ⊙ logits`: `logits (N, K)`,
    /// `teacher (N, D)` → `(N, K)`.
    pub fn refine(&self, logits: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        let (n, k) = logits.dims2()?;
        if self.pos.dims() != [k] || teacher.dim(0)? != n {
            return Err(Error::shape(
                "refinement input",
                format!("logits (N, {}) and teacher (N, D)", self.pos.dim(0)?),
                logits.dims(),
            ));
        }
        let w = self.weights(teacher)?; // (N, 2)
        let w_pos = w.narrow(1, 0, 1)?; // (N, 1)
        let w_neg = w.narrow(1, 1, 1)?;
        let scale = (w_pos.broadcast_mul(&self.pos.unsqueeze(0)?)?
            + w_neg.broadcast_mul(&self.neg.unsqueeze(0)?)?)?; // (N, K)
        Ok((scale * logits)?)
    }
}
