//! CTR-GCN: channel-wise topology refinement graph convolution (Chen et al.,
//! "Channel-wise Topology Refinement Graph Convolution for Skeleton-Based
//! Action Recognition", ICCV 2021), the backbone of GAP and MMCL.
//!
//! The network follows the authors' code (`Uason-Chen/CTR-GCN`,
//! `model/ctrgcn.py`) layer for layer, and its weights carry the same names
//! (`data_bn.weight`, `l1.gcn1.PA`, `l1.gcn1.convs.0.conv1.weight`,
//! `l1.tcn1.branches.0.3.conv.weight`, `fc.weight`, ...), so an official
//! checkpoint maps one to one. What generalises the reference is the block
//! list of [`Config`]: the published ten blocks are one value of it, and the
//! smaller [`Config::edge`] variant is another.
//!
//! ```no_run
//! # fn main() -> skelact::Result<()> {
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use skelact::model::{ctrgcn::{Config, CtrGcn}, Encoder};
//!
//! let cfg = Config::published("ntu25", 60)?;
//! let vm = VarMap::new();
//! let model = CtrGcn::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))?;
//! let x = Tensor::zeros((1, 3, 64, 25, 2), DType::F32, &Device::Cpu)?; // (N, C, T, V, M)
//! let logits = model.forward_t(&x, false)?; // (1, 60)
//! # Ok(()) }
//! ```
//!
//! Layers are in `gcn.rs` (the spatial unit), `tcn.rs` (the multi-scale
//! temporal unit) and `model.rs` (blocks, input BN, head).

pub mod cpu;
mod gcn;
mod model;
mod tcn;

pub use cpu::CpuCtrGcn;
pub use model::CtrGcn;

use serde::{Deserialize, Serialize};

use crate::skeleton::Layout;
use crate::{Error, Result};

/// One `TCN_GCN_unit`: its output width and temporal stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSpec {
    /// Output channels; a multiple of the number of temporal branches
    /// (`dilations.len() + 2`, so 4 by default).
    pub out_channels: usize,
    /// Temporal stride (1 or 2 in the published network).
    pub stride: usize,
}

/// Typed CTR-GCN hyperparameters (`model.toml`'s `[model]` table).
///
/// The first block has no block residual, as in the reference (`l1` is
/// built with `residual=False`); every later block adds its input, through
/// a strided 1x1 conv + BN when the width or the stride changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Skeleton layout name (`ntu25`, `kinect20-ucla`, ...); the adjacency
    /// that initialises the learnable `PA` is built from it.
    pub layout: String,
    /// Number of action classes `K`.
    pub num_class: usize,
    /// Joints per skeleton `V`; must equal the layout's joint count.
    pub num_point: usize,
    /// Persons per sample `M` (the input BN normalizes `M * V * C`
    /// channels, so it is part of the weights' shape).
    pub num_person: usize,
    /// Input channels `C` (3 for one coordinate stream).
    pub in_channels: usize,
    /// The `TCN_GCN_unit`s in order (the reference's `l1`, `l2`, ...).
    pub blocks: Vec<BlockSpec>,
    /// Kernel length of the dilated temporal branches (5).
    pub temporal_kernel: usize,
    /// Dilations of the temporal branches, one branch each (`[1, 2]`).
    pub dilations: Vec<usize>,
    /// Channel reduction of the topology-refinement convs (8):
    /// `C_in / 8` relation channels, 8 when `C_in` is 3 or 9 (as in the
    /// reference) or below the reduction (where the reference would build
    /// zero channels).
    pub rel_reduction: usize,
    /// Dropout before the classifier (0 disables it).
    pub drop_out: f64,
}

/// The published widths and strides (64 x 4, 128 x 3, 256 x 3; stride 2 at
/// blocks 5 and 8).
const PUBLISHED_BLOCKS: [(usize, usize); 10] = [
    (64, 1),
    (64, 1),
    (64, 1),
    (64, 1),
    (128, 2),
    (128, 1),
    (128, 1),
    (256, 2),
    (256, 1),
    (256, 1),
];

/// The edge variant: six blocks 24-24-48-48-96-96, stride 2 at blocks 3
/// and 5; see [`Config::edge`].
const EDGE_BLOCKS: [(usize, usize); 6] = [(24, 1), (24, 1), (48, 2), (48, 1), (96, 2), (96, 1)];

impl Config {
    /// The published CTR-GCN (1.45 M parameters with 60 classes, 1.46 M with
    /// 120) for `layout` and `num_class` classes, one 3-D joint stream.
    /// `num_person` is 2 for NTU-25 and 1 for the other layouts (NW-UCLA and
    /// UTD-MHAD have one actor); set the field for other data.
    pub fn published(layout: &str, num_class: usize) -> Result<Self> {
        Self::with_blocks(layout, num_class, &PUBLISHED_BLOCKS)
    }

    /// The edge variant: six blocks of widths 24, 24, 48, 48, 96, 96 with
    /// temporal stride 2 at blocks 3 and 5, everything else as published.
    ///
    /// Sized for training on a 2-core CPU (NW-UCLA: ~1000 one-person clips
    /// of 52 frames): with 10 classes it has 137 k parameters (published:
    /// 1.43 M) and 0.061 GMACs per 52-frame clip (published: 0.563 G, 9.3x
    /// more), i.e. about 190 GMACs of forward + backward work per epoch.
    /// It keeps the published structure (two stride-2 stages, three
    /// adjacency subsets, four temporal branches, first block without
    /// residual); widths stay multiples of 8 so that every refinement keeps
    /// at least 3 relation channels. Small widths make a step overhead-bound
    /// rather than MAC-bound in candle, so wall time falls by less than the
    /// MACs do (about 4x for a training step in a first measurement).
    pub fn edge(layout: &str, num_class: usize) -> Result<Self> {
        Self::with_blocks(layout, num_class, &EDGE_BLOCKS)
    }

    fn with_blocks(layout: &str, num_class: usize, blocks: &[(usize, usize)]) -> Result<Self> {
        let l = Layout::by_name(layout)?;
        let cfg = Self {
            layout: l.name().to_string(),
            num_class,
            num_point: l.num_joints(),
            num_person: if l.name() == "ntu25" { 2 } else { 1 },
            in_channels: 3,
            blocks: blocks
                .iter()
                .map(|&(out_channels, stride)| BlockSpec {
                    out_channels,
                    stride,
                })
                .collect(),
            temporal_kernel: 5,
            dilations: vec![1, 2],
            rel_reduction: 8,
            drop_out: 0.0,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Width of the last block's feature map (`C_last`).
    pub fn out_channels(&self) -> usize {
        self.blocks
            .last()
            .map_or(self.in_channels, |b| b.out_channels)
    }

    /// Relation channels of a refinement whose input has `c_in` channels.
    pub fn rel_channels(&self, c_in: usize) -> usize {
        if c_in == 3 || c_in == 9 || c_in < self.rel_reduction {
            8
        } else {
            c_in / self.rel_reduction
        }
    }

    /// Checks every value that the network could not be built with, and
    /// that `num_point` equals the layout's joint count.
    pub fn validate(&self) -> Result<()> {
        let layout = Layout::by_name(&self.layout)?;
        if self.num_point != layout.num_joints() {
            return Err(Error::mismatch(
                "num_point",
                format!("{} (joints of layout {})", layout.num_joints(), self.layout),
                self.num_point,
            ));
        }
        for (field, value) in [
            ("num_class", self.num_class),
            ("num_person", self.num_person),
            ("in_channels", self.in_channels),
            ("rel_reduction", self.rel_reduction),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if self.blocks.is_empty() {
            return Err(Error::config("blocks", "needs at least one block"));
        }
        if self.temporal_kernel == 0 || self.temporal_kernel % 2 == 0 {
            return Err(Error::config(
                "temporal_kernel",
                format!("must be odd (same padding), got {}", self.temporal_kernel),
            ));
        }
        if self.dilations.is_empty() || self.dilations.contains(&0) {
            return Err(Error::config(
                "dilations",
                "needs at least one dilation, each at least 1",
            ));
        }
        let branches = self.dilations.len() + 2;
        for (k, b) in self.blocks.iter().enumerate() {
            if b.out_channels == 0 || b.out_channels % branches != 0 {
                return Err(Error::config(
                    format!("blocks[{k}].out_channels"),
                    format!(
                        "{} is not a positive multiple of the {branches} temporal branches",
                        b.out_channels
                    ),
                ));
            }
            if b.stride == 0 {
                return Err(Error::config(
                    format!("blocks[{k}].stride"),
                    "must be at least 1",
                ));
            }
        }
        if !(0.0..1.0).contains(&self.drop_out) {
            return Err(Error::config(
                "drop_out",
                format!("must be in [0, 1), got {}", self.drop_out),
            ));
        }
        Ok(())
    }
}
