//! SCD-Net's pretraining encoder: the classifier's backbone
//! ([`crate::model::scdnet::ScdBackbone`]: GCN extractor, temporal and
//! spatial transformer branches) with the three projectors the
//! contrastive loss reads.
//!
//! - **Projectors** to 128-d (two-layer MLPs) for the temporal feature, the
//!   spatial feature and their concatenation (the instance anchor).
//! - The downstream feature (linear evaluation, kNN, and the classifier
//!   `skelact train --arch scdnet --init` fine-tunes) is the concatenation
//!   of the two branch features, before the projectors.
//!
//! Weight names: `gcn.*`, `temporal.*`, `spatial.*` (shared with the
//! classifier, so a saved encoder initialises it) and `proj_{t,s,i}.*`.

use candle_core::{Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::loss::{l2_normalize, Projections};
use crate::model::scdnet::{Features, ScdBackbone, Widths};
use crate::skeleton::Layout;
use crate::Result;

/// SCD-Net encoder hyperparameters: the backbone's widths and the
/// projection width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// GCN, token, feed-forward widths and heads.
    pub widths: Widths,
    /// Projection width (128).
    pub proj_dim: usize,
}

impl EncoderConfig {
    /// The paper's widths.
    pub fn published() -> Self {
        Self {
            widths: Widths::published(),
            proj_dim: 128,
        }
    }

    /// The CPU-sized variant ([`Widths::small`]) with 128-d projections as
    /// published.
    pub fn small() -> Self {
        Self {
            widths: Widths::small(),
            proj_dim: 128,
        }
    }
}

/// Linear, ReLU, linear.
struct Projector {
    fc1: Linear,
    fc2: Linear,
}

impl Projector {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(c_in, c_in, vb.pp("fc1"))?,
            fc2: linear(c_in, c_out, vb.pp("fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward(&self.fc1.forward(x)?.relu()?)?)
    }
}

/// SCD-Net's encoder with its projectors.
pub struct ScdEncoder {
    backbone: ScdBackbone,
    proj_t: Projector,
    proj_s: Projector,
    proj_i: Projector,
}

impl ScdEncoder {
    /// The encoder for `frames`-frame windows of `persons` persons on
    /// `layout` with `coords` input channels.
    pub fn new(
        cfg: &EncoderConfig,
        layout: &Layout,
        frames: usize,
        persons: usize,
        coords: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let backbone = ScdBackbone::new(&cfg.widths, layout, frames, persons, coords, vb.clone())?;
        let d = cfg.widths.model_dim;
        Ok(Self {
            backbone,
            proj_t: Projector::new(d, cfg.proj_dim, vb.pp("proj_t"))?,
            proj_s: Projector::new(d, cfg.proj_dim, vb.pp("proj_s"))?,
            proj_i: Projector::new(2 * d, cfg.proj_dim, vb.pp("proj_i"))?,
        })
    }

    /// `x: (N, C, T, V, M)` -> the two branch features.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Features> {
        self.backbone.features(x, train)
    }

    /// The unit projections of `f`: temporal, spatial, instance.
    pub fn project(&self, f: &Features) -> Result<Projections> {
        Ok(Projections {
            temporal: l2_normalize(&self.proj_t.forward(&f.temporal)?)?,
            spatial: l2_normalize(&self.proj_s.forward(&f.spatial)?)?,
            instance: l2_normalize(&self.proj_i.forward(&f.joined()?)?)?,
        })
    }
}
