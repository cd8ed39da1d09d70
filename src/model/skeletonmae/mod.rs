//! SkeletonMAE's fine-tuned network (Yan et al., "SkeletonMAE: Graph-based
//! Masked Autoencoder for Skeleton Sequence Pre-training", ICCV 2023): a
//! per-frame GIN encoder over the layout's physical skeleton, pretrained as
//! a masked graph autoencoder (`skelact pretrain mae`, feature `train`),
//! followed by a spatial-temporal stack and a classifier.
//!
//! The authors' code is not released. skelact's reading of the paper:
//!
//! - [`gin::GinEncoder`]: every frame is a graph whose nodes are the joints
//!   and whose edges are the layout's bones. Coordinates are embedded to
//!   `hidden` (64) channels by a linear layer, then `layers` (3) GIN layers
//!   (Xu et al., ICLR 2019: `h' = MLP((1 + eps) h + sum of neighbours)`,
//!   eps = 0, a two-layer MLP with PReLU) each followed by a PReLU.
//! - The "spatial-temporal layers, multi-scale temporal pooling, MLP" of
//!   the fine-tuning stage are a short CTR-GCN ([`crate::model::ctrgcn`]):
//!   its graph convolutions are the spatial part, its four-branch dilated
//!   temporal convolutions the multi-scale temporal part, and its pooled
//!   linear head the classifier. The default is three blocks (64, 96/2,
//!   96/2), CTR-GCN-edge sized so that it trains on a CPU. Reusing CTR-GCN
//!   keeps the exported model an ordinary skeleton-only model directory
//!   that `skelact eval` and `skelact run` load.
//!
//! Weights are named `gin.*` (the part pretraining writes) and
//! `backbone.*` (CTR-GCN's names).

pub mod gin;
mod model;

pub use gin::{GinEncoder, GinLayer};
pub use model::SkeletonMae;

use serde::{Deserialize, Serialize};

use super::ctrgcn;
use crate::skeleton::Layout;
use crate::{Error, Result};

/// The per-frame GIN encoder's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GinConfig {
    /// Coordinate channels per joint (3).
    pub in_channels: usize,
    /// Embedding and hidden width (SkeletonMAE: 64).
    pub hidden: usize,
    /// GIN layers (SkeletonMAE's encoder: 3).
    pub layers: usize,
}

impl Default for GinConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            hidden: 64,
            layers: 3,
        }
    }
}

/// Typed SkeletonMAE hyperparameters (`model.toml`'s `[model]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The pretrained per-frame encoder.
    pub gin: GinConfig,
    /// The spatial-temporal stack and classifier; its `in_channels` is the
    /// GIN's `hidden`.
    pub backbone: ctrgcn::Config,
}

/// The default spatial-temporal stack: three CTR-GCN blocks.
pub const DEFAULT_BLOCKS: [(usize, usize); 3] = [(64, 1), (96, 2), (96, 2)];

impl Config {
    /// SkeletonMAE with the default GIN and three CTR-GCN blocks for
    /// `layout` and `num_class` classes.
    pub fn new(layout: &str, num_class: usize) -> Result<Self> {
        let gin = GinConfig::default();
        let mut backbone = ctrgcn::Config::edge(layout, num_class)?;
        backbone.in_channels = gin.hidden;
        backbone.blocks = DEFAULT_BLOCKS
            .iter()
            .map(|&(out_channels, stride)| ctrgcn::BlockSpec {
                out_channels,
                stride,
            })
            .collect();
        let cfg = Self { gin, backbone };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the backbone, the GIN widths and that the backbone reads the
    /// GIN's output.
    pub fn validate(&self) -> Result<()> {
        self.backbone.validate()?;
        Layout::by_name(&self.backbone.layout)?;
        for (field, value) in [
            ("gin.in_channels", self.gin.in_channels),
            ("gin.hidden", self.gin.hidden),
            ("gin.layers", self.gin.layers),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if self.backbone.in_channels != self.gin.hidden {
            return Err(Error::mismatch(
                "backbone.in_channels",
                format!("{} (gin.hidden)", self.gin.hidden),
                self.backbone.in_channels,
            ));
        }
        Ok(())
    }
}
