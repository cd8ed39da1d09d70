//! EfficientGCN (Song et al., "Constructing Stronger and Faster Baselines for
//! Skeleton-based Action Recognition", TPAMI 2022; v1 code
//! github.com/yfsong0709/EfficientGCNv1), sized as the authors' B0 and able to
//! run their pretrained NTU-60 cross-subject checkpoint (config 2001).
//!
//! Why this model: at 0.32 M parameters it is the smallest published
//! skeleton network with NTU-60 accuracy near 90 %, and its pretrained
//! weights give skelact a working action recognizer (including "falling
//! down", class 42) before any training of its own.
//!
//! The network: three input branches with their own weights (joint,
//! velocity, bone; 6 channels each), each `BN → graph layer → basic temporal
//! layer → (graph layer → attention) × 2`; the branch outputs are
//! concatenated along channels and go through a main stream of
//! `graph layer → separable temporal layer (stride 2) → attention` blocks;
//! global average over frames, joints and persons; a 1x1x1 convolution to the
//! classes. See `../shared/docs/EFFICIENTGCN.md` for the facts established
//! about the checkpoint.
//!
//! - [`Config`]: the typed configuration; its `Default` is config 2001.
//! - [`EfficientGcn`]: the network (implements [`crate::model::Encoder`]).
//! - [`checkpoint`]: reading the authors' PyTorch checkpoint
//!   ([`import_checkpoint`]).
//! - [`preprocess`]: the authors' input streams from raw NTU data.
//! - [`NTU60_CLASSES`]: the class names of the checkpoint's 60 outputs.

pub mod checkpoint;
pub mod classes;
pub mod depthwise;
pub mod model;
pub mod preprocess;

pub use checkpoint::{import_checkpoint, read_state_dict};
pub use classes::{NTU120_EXTRA_CLASSES, NTU60_CLASSES};
pub use model::EfficientGcn;

use serde::{Deserialize, Serialize};

use crate::skeleton::Layout;
use crate::{Error, Result};

/// One entry of the authors' `block_args`: `(channels, stride, depth)`
/// before compound scaling. `depth` is the number of temporal layers in the
/// block and may be fractional (it is rounded after scaling).
pub type BlockArg = (usize, usize, f64);

/// A block after compound scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Output channels of the block's graph layer.
    pub channels: usize,
    /// Temporal stride of the block's first temporal layer.
    pub stride: usize,
    /// Number of temporal layers in the block.
    pub depth: usize,
}

/// The activation used after every layer (the authors' `act_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `x * sigmoid(x)` (config 2001).
    Swish,
    /// `x * relu6(x + 3) / 6`.
    #[serde(rename = "hswish")]
    HardSwish,
    /// `max(x, 0)`.
    Relu,
}

/// The attention module after each block (the authors' `att_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attention {
    /// Spatial-temporal joint attention ("stja", the paper's ST-JointAtt).
    Stja,
}

/// The temporal layer inside the blocks (the authors' `layer_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemporalLayer {
    /// Separable layer: 1x1 expansion, depthwise temporal convolution,
    /// 1x1 projection, residual ("Sep", config 2001).
    Sep,
}

/// EfficientGCN configuration, with the authors' parameter names where they
/// have one (`model_args` of their YAML configs). `Default` is config 2001
/// (EfficientGCN-B0, NTU-60, 288 frames, inputs J, V, B) — the original one
/// that fits the published checkpoint, not the newer upstream file with
/// `layer_type: SG`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Number of classes (60 for NTU-60).
    pub num_class: usize,
    /// Number of input branches (3: joint, velocity, bone).
    pub num_input: usize,
    /// Channels per branch (6).
    pub in_channels: usize,
    /// Skeleton layout name ([`Layout::by_name`]); gives the joints and the
    /// graph.
    pub layout: String,
    /// Frames per sample the model was trained with (288; see
    /// [`preprocess`]).
    pub num_frames: usize,
    /// Output channels of each branch's stem (64).
    pub stem_channel: usize,
    /// `(channels, stride, depth)` per block before scaling.
    pub block_args: Vec<BlockArg>,
    /// Blocks `0..fusion_stage` are in the input branches, the others in the
    /// main stream (2).
    pub fusion_stage: usize,
    /// Compound scaling coefficient: 0 for B0, 2 for B2, 4 for B4.
    pub scale_factor: u32,
    /// `(channel, depth)` scaling bases (1.2, 1.35).
    pub scale_args: (f64, f64),
    /// Activation after each layer.
    pub activation: Activation,
    /// Attention module after each block.
    pub attention: Attention,
    /// Temporal layer inside the blocks.
    pub temporal_layer: TemporalLayer,
    /// Temporal kernel length (5).
    pub temporal_window: usize,
    /// Graph layers aggregate over hop distances `0..=max_graph_distance`
    /// (2, so 3 adjacency subsets).
    pub max_graph_distance: usize,
    /// The adjacency is column-normalized over all pairs within this many
    /// hops before it is split by distance (3 for this checkpoint; the
    /// authors' code default is 10).
    pub graph_max_hop: usize,
    /// Channel expansion inside the separable temporal layer (2).
    pub expand_ratio: usize,
    /// Channel reduction inside the attention (4).
    pub reduct_ratio: usize,
    /// Whether the convolutions have biases (true).
    pub bias: bool,
    /// Whether each graph layer has a learnable edge mask multiplying its
    /// adjacency (true).
    pub edge: bool,
    /// Dropout before the classifier, training only (0.25).
    pub drop_prob: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            num_class: 60,
            num_input: 3,
            in_channels: 6,
            layout: "ntu25".to_string(),
            num_frames: 288,
            stem_channel: 64,
            block_args: vec![(48, 1, 0.5), (24, 1, 0.5), (64, 2, 1.0), (128, 2, 1.0)],
            fusion_stage: 2,
            scale_factor: 0,
            scale_args: (1.2, 1.35),
            activation: Activation::Swish,
            attention: Attention::Stja,
            temporal_layer: TemporalLayer::Sep,
            temporal_window: 5,
            max_graph_distance: 2,
            graph_max_hop: 3,
            expand_ratio: 2,
            reduct_ratio: 4,
            bias: true,
            edge: true,
            drop_prob: 0.25,
        }
    }
}

impl Config {
    /// The blocks after compound scaling, as the authors compute them:
    /// channels `max(round(c * a^phi / 16) * 16, 16)`, depth
    /// `round(d * b^phi)`, both rounding half to even like Python's `round`.
    /// For B0 this turns `[[48,1,0.5],[24,1,0.5],[64,2,1],[128,2,1]]` into
    /// 48, 32, 64, 128 channels and depths 0, 0, 1, 1.
    pub fn blocks(&self) -> Vec<Block> {
        let cs = self.scale_args.0.powi(self.scale_factor as i32);
        let ds = self.scale_args.1.powi(self.scale_factor as i32);
        self.block_args
            .iter()
            .map(|&(c, stride, d)| Block {
                channels: (((c as f64 * cs / 16.0).round_ties_even() as usize) * 16).max(16),
                stride,
                depth: (d * ds).round_ties_even().max(0.0) as usize,
            })
            .collect()
    }

    /// The skeleton layout named by `layout`.
    pub fn skeleton(&self) -> Result<&'static Layout> {
        Layout::by_name(&self.layout)
    }

    /// Number of joints of the layout.
    pub fn num_joints(&self) -> Result<usize> {
        Ok(self.skeleton()?.num_joints())
    }

    /// Number of adjacency subsets of each graph layer
    /// (`max_graph_distance + 1`).
    pub fn num_subsets(&self) -> usize {
        self.max_graph_distance + 1
    }

    /// Input channels of the model: `num_input * in_channels` (18).
    pub fn input_channels(&self) -> usize {
        self.num_input * self.in_channels
    }

    /// Channels of the final feature map (the classifier's input).
    pub fn feature_channels(&self) -> usize {
        let blocks = self.blocks();
        let last_branch = if self.fusion_stage == 0 {
            self.stem_channel
        } else {
            blocks[self.fusion_stage - 1].channels
        };
        if self.fusion_stage == blocks.len() {
            self.num_input * last_branch
        } else {
            blocks[blocks.len() - 1].channels
        }
    }

    /// Checks that the values can build a network.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("num_class", self.num_class),
            ("num_input", self.num_input),
            ("in_channels", self.in_channels),
            ("num_frames", self.num_frames),
            ("stem_channel", self.stem_channel),
            ("temporal_window", self.temporal_window),
            ("reduct_ratio", self.reduct_ratio),
            ("expand_ratio", self.expand_ratio),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, "must be positive"));
            }
        }
        if self.temporal_window % 2 == 0 {
            return Err(Error::config(
                "temporal_window",
                format!(
                    "must be odd (\"same\" padding), got {}",
                    self.temporal_window
                ),
            ));
        }
        if self.fusion_stage > self.block_args.len() {
            return Err(Error::config(
                "fusion_stage",
                format!(
                    "{} is more than the {} blocks",
                    self.fusion_stage,
                    self.block_args.len()
                ),
            ));
        }
        if self.max_graph_distance > self.graph_max_hop {
            return Err(Error::config(
                "max_graph_distance",
                format!(
                    "{} exceeds graph_max_hop {}",
                    self.max_graph_distance, self.graph_max_hop
                ),
            ));
        }
        for (i, &(c, s, d)) in self.block_args.iter().enumerate() {
            if c == 0 || s == 0 || !(d.is_finite() && d >= 0.0) {
                return Err(Error::config(
                    "block_args",
                    format!("block {i}: channels and stride must be positive, depth >= 0"),
                ));
            }
        }
        for b in self.blocks() {
            if b.channels / self.reduct_ratio == 0 {
                return Err(Error::config(
                    "reduct_ratio",
                    format!("{} leaves no channels of {}", self.reduct_ratio, b.channels),
                ));
            }
        }
        if !(0.0..1.0).contains(&self.drop_prob) {
            return Err(Error::config("drop_prob", "must be in [0, 1)"));
        }
        self.skeleton()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b0_scaling_matches_the_checkpoint() {
        let b = Config::default().blocks();
        let got: Vec<_> = b.iter().map(|b| (b.channels, b.stride, b.depth)).collect();
        assert_eq!(got, vec![(48, 1, 0), (32, 1, 0), (64, 2, 1), (128, 2, 1)]);
        assert_eq!(Config::default().feature_channels(), 128);
    }

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = Config::default();
        let s = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&s).unwrap();
        assert_eq!(back, c);
        let bad = format!("{s}\nlayer_type = \"SG\"\n");
        assert!(toml::from_str::<Config>(&bad).is_err());
        let sg = s.replace("temporal_layer = \"sep\"", "temporal_layer = \"sg\"");
        assert!(toml::from_str::<Config>(&sg).is_err());
    }

    #[test]
    fn invalid_values_are_refused() {
        let c = Config {
            temporal_window: 4,
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config { .. })));
        let c = Config {
            fusion_stage: 5,
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config { .. })));
        let c = Config {
            layout: "nope".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
