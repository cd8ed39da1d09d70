//! GAP's training-time head: body-part pooling of the backbone's last
//! feature map and one linear projection per text set into the text
//! embedding space, plus the learnable logit scales of the loss.
//!
//! As in GAP's `Model_lst_4part*`: a part feature is the feature map
//! averaged over the part's joints, then over time, then over persons; the
//! global feature is the average over time and all joints, then persons
//! (the classifier's input). Each of the five features has its own
//! `Linear(C_last, D_text)` (candle's default initialisation: Kaiming
//! normal weights, uniform biases). The head exists only in training: it
//! is kept in its own weight map and never exported.

use candle_core::Tensor;
use candle_nn::{Linear, Module, VarBuilder};

use super::loss::LOGIT_SCALE_INIT;
use crate::skeleton::part::{gap_parts, GAP_PART_NAMES};
use crate::skeleton::Layout;
use crate::train::backend::seeded_var_builder;
use crate::{Error, Result};

/// Number of text sets / feature pairs: global + four parts.
pub const PAIRS: usize = 1 + GAP_PART_NAMES.len();

/// Projections and logit scales; weight names `global.*`, `head.*`,
/// `arms.*`, `hip.*`, `legs.*` and `logit_scale` under the builder's
/// prefix.
#[derive(Debug, Clone)]
pub struct GapHead {
    /// `[global, head, arms, hip, legs]`.
    proj: Vec<Linear>,
    /// Joint indices of each part, `(|P|,)` u32.
    parts: Vec<Tensor>,
    /// `(PAIRS,)`
    logit_scale: Tensor,
}

impl GapHead {
    /// A head for a backbone of `c_feat` output channels on `layout`,
    /// projecting to `d_text`. `logit_scale` starts at ln(1/0.07).
    pub fn new(c_feat: usize, d_text: usize, layout: &Layout, vb: VarBuilder) -> Result<Self> {
        let names = std::iter::once("global").chain(GAP_PART_NAMES);
        let proj = names
            .map(|n| candle_nn::linear(c_feat, d_text, vb.pp(n)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let parts = gap_parts(layout)
            .iter()
            .enumerate()
            .map(|(p, joints)| {
                if joints.is_empty() {
                    return Err(Error::config(
                        "gap",
                        format!(
                            "layout {} has no joints in part `{}`",
                            layout.name(),
                            GAP_PART_NAMES[p]
                        ),
                    ));
                }
                let idx: Vec<u32> = joints.iter().map(|&j| j as u32).collect();
                Ok(Tensor::from_vec(idx, joints.len(), vb.device())?)
            })
            .collect::<Result<Vec<_>>>()?;
        let logit_scale = vb.get_with_hints(
            PAIRS,
            "logit_scale",
            candle_nn::Init::Const(LOGIT_SCALE_INIT),
        )?;
        Ok(Self {
            proj,
            parts,
            logit_scale,
        })
    }

    /// The logit scales `(PAIRS,)`.
    pub fn logit_scale(&self) -> &Tensor {
        &self.logit_scale
    }

    /// Pooled, unprojected features `[global, head, arms, hip, legs]`, each
    /// `(N, C)`, from the feature map `h: (N*M, C, T, V)` of `n` samples.
    pub fn pool(&self, h: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        let (nm, c, _t, _v) = h.dims4()?;
        if n == 0 || nm % n != 0 {
            return Err(Error::shape(
                "GAP feature map",
                format!("(N*M, C, T, V) with N = {n}"),
                h.dims(),
            ));
        }
        let m = nm / n;
        let persons = |x: Tensor| -> Result<Tensor> { Ok(x.reshape((n, m, c))?.mean(1)?) };
        let mut out = Vec::with_capacity(PAIRS);
        out.push(persons(h.mean(3)?.mean(2)?)?); // (N, C)
        for idx in &self.parts {
            let part = h.index_select(idx, 3)?; // (N*M, C, T, |P|)
            out.push(persons(part.mean(3)?.mean(2)?)?);
        }
        Ok(out)
    }

    /// Projected features `[global, head, arms, hip, legs]`, each
    /// `(N, D_text)`, from the feature map `h: (N*M, C, T, V)`.
    pub fn forward(&self, h: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        self.pool(h, n)?
            .iter()
            .zip(&self.proj)
            .map(|(f, p)| Ok(p.forward(f)?))
            .collect()
    }
}

/// A fresh variable map holding a [`GapHead`]'s weights, drawn from
/// `seed`, and the head.
pub fn build(
    c_feat: usize,
    d_text: usize,
    layout: &Layout,
    device: &candle_core::Device,
    seed: u64,
) -> Result<(candle_nn::VarMap, GapHead)> {
    let vm = candle_nn::VarMap::new();
    let vb = seeded_var_builder(&vm, device, seed);
    let head = GapHead::new(c_feat, d_text, layout, vb.pp("gap"))?;
    Ok((vm, head))
}
