//! SCD-Net's dual-branch encoder as a classifier (Wu et al.,
//! "Spatio-temporal Clues Disentanglement Network for Self-supervised
//! Skeleton-based Action Recognition", AAAI 2024): the network that
//! `skelact pretrain scd` trains without labels, with a linear head, so
//! that a pretrained encoder can be fine-tuned by `skelact train --arch
//! scdnet --init scd.safetensors` (with any training method, GAP included)
//! and exported as an ordinary skeleton-only model directory.
//!
//! - **GCN extractor** ([`backbone`]): units of a graph convolution over the
//!   layout's normalised adjacency with self-loops (`D^-1/2 (A + I)
//!   D^-1/2`, then a linear map), BN, ReLU, a temporal convolution (kernel
//!   5, same padding, a linear map over the stacked shifted frames), BN,
//!   ReLU. Paper widths 64, 256, 64.
//! - **Temporal branch**: frames as tokens (each the flattened `M * V * C`
//!   features), linear embedding, learnable positions, one post-norm
//!   transformer layer, max over tokens. **Spatial branch**: the joints of
//!   every person as tokens (each the flattened `T * C` features), same.
//! - **Head**: a linear layer on the two branch features concatenated —
//!   the feature SCD-Net's linear evaluation reads.
//!
//! The positions make the network's window length part of its weights:
//! [`Config::frames`] must equal the card's temporal contract (checked by
//! [`crate::model::ModelCard::validate`]).
//!
//! Weights are named as the pretraining writes them (`gcn.{i}.*`,
//! `temporal.*`, `spatial.*`), plus `fc.*` for the head; the
//! pretraining-only projectors are not part of the classifier.

pub mod backbone;
mod model;

pub use backbone::{Features, ScdBackbone};
pub use model::ScdNet;

use serde::{Deserialize, Serialize};

use crate::skeleton::Layout;
use crate::{Error, Result};

/// The encoder's widths, shared by pretraining and the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widths {
    /// Widths of the GCN units (paper: 64, 256, 64).
    pub gcn_channels: Vec<usize>,
    /// Temporal kernel of the GCN units (5).
    pub temporal_kernel: usize,
    /// Token width of both branches (paper: 2048).
    pub model_dim: usize,
    /// Attention heads (8).
    pub heads: usize,
    /// Feed-forward width of the transformer layers.
    pub ff_dim: usize,
}

impl Widths {
    /// The paper's widths.
    pub fn published() -> Self {
        Self {
            gcn_channels: vec![64, 256, 64],
            temporal_kernel: 5,
            model_dim: 2048,
            heads: 8,
            ff_dim: 2048,
        }
    }

    /// A CPU-sized variant: GCN 32, 64, 32; tokens 128 wide, feed-forward
    /// 256; 8 heads as published.
    pub fn small() -> Self {
        Self {
            gcn_channels: vec![32, 64, 32],
            temporal_kernel: 5,
            model_dim: 128,
            heads: 8,
            ff_dim: 256,
        }
    }

    /// The last GCN unit's width (the feature map's channels).
    pub fn out_channels(&self) -> usize {
        self.gcn_channels.last().copied().unwrap_or(0)
    }

    /// Checks the widths: at least one GCN unit, no zero width, an odd
    /// temporal kernel, heads that divide the token width.
    pub fn validate(&self) -> Result<()> {
        if self.gcn_channels.is_empty() || self.gcn_channels.contains(&0) {
            return Err(Error::config("gcn_channels", "needs widths of at least 1"));
        }
        if self.temporal_kernel % 2 == 0 {
            return Err(Error::config("temporal_kernel", "must be odd"));
        }
        if self.model_dim == 0 || self.ff_dim == 0 {
            return Err(Error::config("model_dim", "widths must be at least 1"));
        }
        if self.heads == 0 || self.model_dim % self.heads != 0 {
            return Err(Error::config(
                "heads",
                format!(
                    "{} does not divide model_dim {}",
                    self.heads, self.model_dim
                ),
            ));
        }
        Ok(())
    }
}

/// Typed SCD-Net classifier hyperparameters (`model.toml`'s
/// `[architecture.scdnet]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Skeleton layout name; the adjacency is built from it.
    pub layout: String,
    /// Number of action classes `K`.
    pub num_class: usize,
    /// Joints per skeleton `V`; must equal the layout's joint count.
    pub num_point: usize,
    /// Persons per sample `M` (the spatial branch has `M * V` tokens).
    pub num_person: usize,
    /// Input channels `C`.
    pub in_channels: usize,
    /// Frames per window `T` (the temporal branch has `T` tokens).
    pub frames: usize,
    /// The encoder's widths.
    pub widths: Widths,
}

impl Config {
    /// The CPU-sized classifier ([`Widths::small`]) for `frames`-frame
    /// windows of one person's joint stream on `layout`.
    pub fn small(layout: &str, num_class: usize, frames: usize) -> Result<Self> {
        let l = Layout::by_name(layout)?;
        let cfg = Self {
            layout: l.name().to_string(),
            num_class,
            num_point: l.num_joints(),
            num_person: 1,
            in_channels: 3,
            frames,
            widths: Widths::small(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the widths, the layout and that no size is zero.
    pub fn validate(&self) -> Result<()> {
        self.widths.validate()?;
        let l = Layout::by_name(&self.layout)?;
        if self.num_point != l.num_joints() {
            return Err(Error::mismatch("num_point", l.num_joints(), self.num_point));
        }
        for (field, value) in [
            ("num_class", self.num_class),
            ("num_person", self.num_person),
            ("in_channels", self.in_channels),
            ("frames", self.frames),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}
