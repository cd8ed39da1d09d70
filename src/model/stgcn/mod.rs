//! ST-GCN: spatial temporal graph convolutional networks (Yan, Xiong and
//! Lin, AAAI 2018), the first graph-convolutional skeleton action
//! recognizer and the backbone the later models in this crate grew from.
//!
//! The network follows the authors' code (`yysijie/st-gcn`: `net/st_gcn.py`
//! `Model` and `st_gcn`, `net/utils/tgcn.py` `ConvTemporalGraphical`,
//! `net/utils/graph.py` with the `spatial` strategy), and its weights carry
//! that code's `state_dict` names (`data_bn`, `st_gcn_networks.{i}.gcn.conv`,
//! `.tcn.0` / `.tcn.2` / `.tcn.3`, `.residual.0` / `.residual.1`,
//! `edge_importance.{i}`, `fcn`), so an official checkpoint converted to
//! safetensors loads unchanged:
//!
//! - input `(N, C, T, V, M)`; persons are folded into the batch and a batch
//!   norm over the `V * C` channels (`data_bn`, shared by all persons)
//!   normalizes the coordinates;
//! - each block: a graph convolution (a 1x1 convolution to `K * C_out`
//!   channels, then `sum_k X_k (A_k * importance_k)` over joints, `K = 3`
//!   subsets of the spatial partition), batch norm, ReLU, a `(9, 1)`
//!   temporal convolution with the block's stride, batch norm, dropout, the
//!   residual (none in the first block, identity when the shape is kept,
//!   else a strided 1x1 convolution + batch norm) and ReLU;
//! - head: average over time and joints, mean over persons, a 1x1
//!   convolution to the classes.
//!
//! [`Config`] is the typed, serde-checked description of one network;
//! [`StGcn`] the candle model (see `model.rs`).

mod model;

pub use model::StGcn;

use serde::{Deserialize, Serialize};

use crate::skeleton::Layout;
use crate::{Error, Result};

/// One ST-GCN block: its output width and temporal stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// Output channels of the block.
    pub out_channels: usize,
    /// Temporal stride of the block's temporal convolution (1 or 2).
    pub stride: usize,
}

impl BlockSpec {
    /// A block of `out_channels` channels with temporal stride `stride`.
    pub const fn new(out_channels: usize, stride: usize) -> Self {
        Self {
            out_channels,
            stride,
        }
    }
}

/// The published ST-GCN stack: 64, 64, 64, 64, 128 (stride 2), 128, 128,
/// 256 (stride 2), 256, 256.
pub const PUBLISHED_BLOCKS: [BlockSpec; 10] = [
    BlockSpec::new(64, 1),
    BlockSpec::new(64, 1),
    BlockSpec::new(64, 1),
    BlockSpec::new(64, 1),
    BlockSpec::new(128, 2),
    BlockSpec::new(128, 1),
    BlockSpec::new(128, 1),
    BlockSpec::new(256, 2),
    BlockSpec::new(256, 1),
    BlockSpec::new(256, 1),
];

/// skelact's small variant for edge devices and CPU training: six blocks,
/// 32, 32, 64 (stride 2), 64, 128 (stride 2), 128 — about a sixth of the
/// published network's parameters and multiply-accumulates.
pub const EDGE_BLOCKS: [BlockSpec; 6] = [
    BlockSpec::new(32, 1),
    BlockSpec::new(32, 1),
    BlockSpec::new(64, 2),
    BlockSpec::new(64, 1),
    BlockSpec::new(128, 2),
    BlockSpec::new(128, 1),
];

fn published_blocks() -> Vec<BlockSpec> {
    PUBLISHED_BLOCKS.to_vec()
}

fn default_temporal_kernel() -> usize {
    9
}

fn default_max_hop() -> usize {
    1
}

fn default_true() -> bool {
    true
}

fn default_dropout() -> f64 {
    0.5
}

/// An ST-GCN network. Keys left out of a TOML/JSON description take the
/// published values; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Number of classes `K` of the classifier.
    pub num_class: usize,
    /// Joints per person `V`; must equal the layout's joint count.
    pub num_point: usize,
    /// Persons per sample `M` (2 for NTU RGB+D, 1 for single-person data).
    pub num_person: usize,
    /// Input channels `C` (3 for one stream of xyz coordinates).
    pub in_channels: usize,
    /// The blocks in order. The first block never has a residual (as in the
    /// reference).
    #[serde(default = "published_blocks")]
    pub blocks: Vec<BlockSpec>,
    /// Length of the temporal kernel (odd; 9 in the paper).
    #[serde(default = "default_temporal_kernel")]
    pub temporal_kernel: usize,
    /// Largest hop of the spatial partition; `K = 1 + 2 * max_hop` subsets
    /// (1 in the paper: root, centripetal, centrifugal).
    #[serde(default = "default_max_hop")]
    pub max_hop: usize,
    /// A learnable `(K, V, V)` weight on each block's adjacency
    /// (`edge_importance.{i}`).
    #[serde(default = "default_true")]
    pub edge_importance_weighting: bool,
    /// Dropout after each block's temporal convolution in training (none
    /// in the first block, as in the reference).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Name of the skeleton layout (`ntu25`, `kinect20-ucla`, ...); its
    /// root is the centre of the spatial partition.
    pub layout: String,
}

impl Config {
    /// The published ST-GCN (10 blocks, 64..256 channels, 3.1 M parameters
    /// for NTU-60) on `layout` with 2 persons per sample; set `num_person`
    /// for single-person data.
    pub fn published(layout: &str, num_class: usize) -> Result<Self> {
        let l = Layout::by_name(layout)?;
        Ok(Self {
            num_class,
            num_point: l.num_joints(),
            num_person: 2,
            in_channels: 3,
            blocks: published_blocks(),
            temporal_kernel: default_temporal_kernel(),
            max_hop: default_max_hop(),
            edge_importance_weighting: true,
            dropout: default_dropout(),
            layout: layout.to_string(),
        })
    }

    /// skelact's small variant ([`EDGE_BLOCKS`], dropout 0.25), trainable
    /// on a 2-core CPU; otherwise as [`Config::published`].
    pub fn edge(layout: &str, num_class: usize) -> Result<Self> {
        Ok(Self {
            blocks: EDGE_BLOCKS.to_vec(),
            dropout: 0.25,
            ..Self::published(layout, num_class)?
        })
    }

    /// Number of adjacency subsets `K = 1 + 2 * max_hop`.
    pub fn num_subsets(&self) -> usize {
        1 + 2 * self.max_hop
    }

    /// Channels of the last feature map (the pooled feature's width).
    pub fn out_channels(&self) -> usize {
        self.blocks
            .last()
            .map_or(self.in_channels, |b| b.out_channels)
    }

    /// Frames of the last feature map for an input of `t` frames.
    pub fn out_frames(&self, t: usize) -> usize {
        self.blocks
            .iter()
            .fold(t, |t, b| (t - 1) / b.stride.max(1) + 1)
    }

    /// Checks every value is in range (the layout is checked when the model
    /// is built).
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("num_class", self.num_class),
            ("num_point", self.num_point),
            ("num_person", self.num_person),
            ("in_channels", self.in_channels),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if self.blocks.is_empty() {
            return Err(Error::config("blocks", "at least one block is needed"));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if b.out_channels == 0 || b.stride == 0 {
                return Err(Error::config(
                    format!("blocks[{i}]"),
                    "out_channels and stride must be at least 1",
                ));
            }
        }
        if self.temporal_kernel % 2 == 0 {
            return Err(Error::config(
                "temporal_kernel",
                format!("must be odd, got {}", self.temporal_kernel),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_widths_and_strides() -> Result<()> {
        let c = Config::published("ntu25", 60)?;
        assert_eq!(c.num_point, 25);
        assert_eq!(c.num_subsets(), 3);
        assert_eq!(c.out_channels(), 256);
        assert_eq!(c.out_frames(64), 16);
        assert_eq!(c.out_frames(15), 4);
        c.validate()
    }

    #[test]
    fn toml_defaults_and_unknown_keys() {
        let c: Config = toml::from_str(
            "num_class = 10\nnum_point = 20\nnum_person = 1\nin_channels = 3\nlayout = \"kinect20-ucla\"\n",
        )
        .unwrap();
        assert_eq!(c.blocks, PUBLISHED_BLOCKS.to_vec());
        assert_eq!(c.temporal_kernel, 9);
        assert!(c.edge_importance_weighting);
        let bad = toml::from_str::<Config>(
            "num_class = 10\nnum_point = 20\nnum_person = 1\nin_channels = 3\nlayout = \"x\"\nkernel = 3\n",
        );
        assert!(bad.is_err());
    }

    #[test]
    fn invalid_values_are_refused() -> Result<()> {
        let mut c = Config::edge("ntu25", 60)?;
        c.temporal_kernel = 8;
        assert!(matches!(c.validate(), Err(Error::Config { .. })));
        let mut c = Config::edge("ntu25", 60)?;
        c.blocks[2].stride = 0;
        assert!(matches!(c.validate(), Err(Error::Config { .. })));
        assert!(Config::published("ntu-rgb+d", 60).is_err());
        Ok(())
    }
}
