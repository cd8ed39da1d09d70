//! The model card: `model.toml`, the contract between training and serving.
//!
//! A model directory holds `model.toml` (this card) and
//! `weights.safetensors`. The card records everything a consumer must match
//! for the weights to mean anything: the architecture and its
//! hyperparameters, the skeleton layout with the hash of its edge list, the
//! input streams, the temporal contract, the normalization, the class names,
//! the precision, and where the weights came from. Unknown keys are refused,
//! so a typo cannot silently fall back to a default.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{ctrgcn, efficientgcn, scdnet, skeletonmae, stgcn};
use crate::skeleton::Layout;
use crate::window::{stream, Stream};
use crate::{Error, Result};

/// File name of the card inside a model directory.
pub const CARD_FILE: &str = "model.toml";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// The architecture and its hyperparameters, one table per family
/// (`[architecture.ctrgcn]`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// CTR-GCN (Chen et al., ICCV 2021) and its edge variants.
    Ctrgcn(ctrgcn::Config),
    /// ST-GCN (Yan et al., AAAI 2018) and its edge variants.
    Stgcn(stgcn::Config),
    /// EfficientGCN (Song et al., TPAMI 2022).
    Efficientgcn(efficientgcn::Config),
    /// SkeletonMAE's fine-tuned network (Yan et al., ICCV 2023): a
    /// per-frame GIN encoder in front of a CTR-GCN stack.
    Skeletonmae(skeletonmae::Config),
    /// SCD-Net's dual-branch encoder with a linear head (Wu et al., AAAI
    /// 2024), fine-tuned from `skelact pretrain scd`.
    Scdnet(scdnet::Config),
}

impl Architecture {
    /// Short family name, as in the card.
    pub fn family(&self) -> &'static str {
        match self {
            Architecture::Ctrgcn(_) => "ctrgcn",
            Architecture::Stgcn(_) => "stgcn",
            Architecture::Efficientgcn(_) => "efficientgcn",
            Architecture::Skeletonmae(_) => "skeletonmae",
            Architecture::Scdnet(_) => "scdnet",
        }
    }

    /// Channels of the feature map [`crate::model::Encoder::forward_with_features`]
    /// returns (the last block's width), for objectives that pool it (GAP,
    /// MMCL); `None` for an encoder that does not expose one.
    pub fn feature_channels(&self) -> Option<usize> {
        match self {
            Architecture::Ctrgcn(c) => Some(c.out_channels()),
            Architecture::Stgcn(c) => Some(c.out_channels()),
            Architecture::Skeletonmae(c) => Some(c.backbone.out_channels()),
            Architecture::Scdnet(c) => Some(c.widths.out_channels()),
            Architecture::Efficientgcn(_) => None,
        }
    }
}

/// Which skeleton the model reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkeletonSpec {
    /// Layout name (see [`Layout::by_name`]).
    pub layout: String,
    /// [`Layout::edge_hash`] at the time the model was made. Loading refuses
    /// a model whose hash differs from the layout's current one.
    pub edge_hash: String,
}

/// The most test-time views a card may ask for ([`InputSpec::views`]).
pub const MAX_VIEWS: usize = 16;

/// What the model's input tensor holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Streams stacked along the channel axis, in order.
    pub streams: Vec<Stream>,
    /// Coordinate channels per joint (3 for x, y, z in metres).
    pub coords: usize,
    /// Persons per window (`M`); missing persons are zero.
    pub persons: usize,
    /// Joint used as the center by centered streams and normalization.
    pub center_joint: usize,
    /// Test-time views: angles in degrees about the vertical axis. Each
    /// window is scored once per view, rotated where the training view
    /// transform acts (centered coordinates, before scaling), and the mean
    /// class probability decides; empty is one unrotated view
    /// ([`crate::window::input::prepare_views`]). Costs one forward pass
    /// per view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<f32>,
}

impl InputSpec {
    /// Channels of the model input (`C`).
    pub fn channels(&self) -> usize {
        stream::channels(&self.streams, self.coords)
    }
}

/// How the frames of a window are taken from the stream of poses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Consecutive frames at the source rate: what a live runtime sees.
    Window,
    /// The first `frames` frames of a clip, zero-padded when shorter
    /// (EfficientGCN's NTU protocol).
    CropFirst,
    /// A whole clip resampled to `frames` (papers' clip classification;
    /// a live runtime approximates it with a window of the clip's length).
    ClipResample,
}

/// The temporal contract: the shape in time of what the model was trained
/// on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporalContract {
    /// Frames per window (`T`).
    pub frames: usize,
    /// Frame rate of the source the model was trained on, in Hz.
    pub source_fps: f32,
    /// How frames are taken.
    pub sampling: Sampling,
}

/// Coordinate normalization applied before the streams are computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Normalization {
    /// Raw camera coordinates in metres.
    None,
    /// Subtract the center joint of the first valid frame of person 0 from
    /// every joint of every frame (CTR-GCN's NTU and NW-UCLA preparation).
    CenterFirstFrame,
    /// [`Normalization::CenterFirstFrame`], then each axis min-max scaled to
    /// `[-1, 1]` over all frames and joints of the window (CTR-GCN's NW-UCLA
    /// feeder). In training, augmentations apply between the two steps.
    CenterFirstFrameMinMax,
    /// [`Normalization::CenterFirstFrame`], then a turn about the vertical
    /// (y) axis that sets person 0 square to the camera — the mean
    /// right-to-left line of shoulders and hips over the sequence onto the
    /// camera's −x axis, as a person facing a Kinect or RealSense shows
    /// it — then the min-max scaling of
    /// [`Normalization::CenterFirstFrameMinMax`]. It takes the camera's
    /// azimuth out of the input (cross-view data), as SGN's and VA-LSTM's
    /// view alignment do; augmentations apply after the turn.
    CenterFacingMinMax,
}

/// Numeric precision of the stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
    /// Weight-only int8: conv and linear weights stored as int8 with one
    /// f32 scale per output channel, every other tensor f16 (see
    /// [`crate::model::quantize`]). Dequantized at load; compute runs in
    /// f16 or f32.
    Int8,
}

impl Precision {
    /// The candle dtype of this precision's float tensors, also the
    /// default compute dtype: f16 for [`Precision::Int8`] (its non-int8
    /// tensors are f16, and candle has no int8 compute).
    pub fn dtype(self) -> candle_core::DType {
        match self {
            Precision::F32 => candle_core::DType::F32,
            Precision::F16 | Precision::Int8 => candle_core::DType::F16,
            Precision::Bf16 => candle_core::DType::BF16,
        }
    }
}

/// Where the weights came from and how good they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The command that produced the weights.
    #[serde(default)]
    pub command: String,
    /// The data they were trained on.
    #[serde(default)]
    pub data: String,
    /// The split and protocol.
    #[serde(default)]
    pub split: String,
    /// Random seed of the run.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Licence of the weights.
    #[serde(default)]
    pub license: String,
    /// Measured metrics (for example `top1`), as fractions.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Free-form notes.
    #[serde(default)]
    pub notes: String,
}

/// The whole card (`model.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Model name.
    pub name: String,
    /// One line on what the model recognizes.
    #[serde(default)]
    pub description: String,
    /// Precision of `weights.safetensors`.
    pub precision: Precision,
    /// Skeleton layout.
    pub skeleton: SkeletonSpec,
    /// Input tensor.
    pub input: InputSpec,
    /// Temporal contract.
    pub temporal: TemporalContract,
    /// Normalization.
    pub normalization: Normalization,
    /// Class names, index = logit index.
    pub classes: Vec<String>,
    /// Architecture and hyperparameters.
    pub architecture: Architecture,
    /// Provenance.
    #[serde(default)]
    pub provenance: Provenance,
}

impl ModelCard {
    /// Parses a card; unknown keys and missing fields are errors naming the
    /// key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|source| Error::Toml {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Serializes the card.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::config("model.toml", e.to_string()))
    }

    /// The layout the card names.
    pub fn layout(&self) -> Result<&'static Layout> {
        Layout::by_name(&self.skeleton.layout)
    }

    /// Checks the card's internal consistency: the layout exists and its
    /// edge hash matches, and the architecture agrees with the layout, the
    /// input streams, the person count and the class list. Errors name the
    /// field that disagrees.
    pub fn validate(&self) -> Result<()> {
        let layout = self.layout()?;
        let hash = layout.edge_hash();
        if self.skeleton.edge_hash != hash {
            return Err(Error::mismatch(
                "skeleton.edge_hash",
                format!("{hash} (current {} layout)", layout.name()),
                &self.skeleton.edge_hash,
            ));
        }
        let v = layout.num_joints();
        if self.input.center_joint >= v {
            return Err(Error::mismatch(
                "input.center_joint",
                format!("a joint index below {v}"),
                self.input.center_joint,
            ));
        }
        if self.input.streams.is_empty() {
            return Err(Error::config("input.streams", "at least one stream"));
        }
        if self.input.views.len() > MAX_VIEWS {
            return Err(Error::mismatch(
                "input.views",
                format!("at most {MAX_VIEWS} views"),
                self.input.views.len(),
            ));
        }
        if let Some(a) = self.input.views.iter().find(|a| !a.is_finite()) {
            return Err(Error::mismatch("input.views", "finite angles", a));
        }
        if self.temporal.frames == 0 {
            return Err(Error::config("temporal.frames", "must be positive"));
        }
        if !(self.temporal.source_fps > 0.0 && self.temporal.source_fps.is_finite()) {
            return Err(Error::config("temporal.source_fps", "must be positive"));
        }
        let arch = self.arch_shape();
        let checks: [(&str, usize, usize); 4] = [
            ("num_class", self.classes.len(), arch.num_class),
            ("num_point", v, arch.num_point),
            ("num_person", self.input.persons, arch.num_person),
            ("in_channels", self.input.channels(), arch.in_channels),
        ];
        for (field, card, model) in checks {
            if card != model {
                return Err(Error::mismatch(
                    format!("architecture.{}.{field}", self.architecture.family()),
                    card,
                    model,
                ));
            }
        }
        if let Architecture::Scdnet(c) = &self.architecture {
            // The learnt positions fix the window length.
            if c.frames != self.temporal.frames {
                return Err(Error::mismatch(
                    "architecture.scdnet.frames",
                    self.temporal.frames,
                    c.frames,
                ));
            }
        }
        if arch.layout != self.skeleton.layout {
            return Err(Error::mismatch(
                format!("architecture.{}.layout", self.architecture.family()),
                &self.skeleton.layout,
                arch.layout,
            ));
        }
        Ok(())
    }

    fn arch_shape(&self) -> ArchShape<'_> {
        match &self.architecture {
            Architecture::Ctrgcn(c) => ArchShape {
                num_class: c.num_class,
                num_point: c.num_point,
                num_person: c.num_person,
                in_channels: c.in_channels,
                layout: &c.layout,
            },
            Architecture::Stgcn(c) => ArchShape {
                num_class: c.num_class,
                num_point: c.num_point,
                num_person: c.num_person,
                in_channels: c.in_channels,
                layout: &c.layout,
            },
            // EfficientGCN takes its joints from the layout and averages
            // over any number of persons.
            Architecture::Efficientgcn(c) => ArchShape {
                num_class: c.num_class,
                num_point: c.num_joints().unwrap_or(0),
                num_person: self.input.persons,
                in_channels: c.input_channels(),
                layout: &c.layout,
            },
            Architecture::Skeletonmae(c) => ArchShape {
                num_class: c.backbone.num_class,
                num_point: c.backbone.num_point,
                num_person: c.backbone.num_person,
                in_channels: c.gin.in_channels,
                layout: &c.backbone.layout,
            },
            Architecture::Scdnet(c) => ArchShape {
                num_class: c.num_class,
                num_point: c.num_point,
                num_person: c.num_person,
                in_channels: c.in_channels,
                layout: &c.layout,
            },
        }
    }
}

/// The fields every architecture config shares with the card.
struct ArchShape<'a> {
    num_class: usize,
    num_point: usize,
    num_person: usize,
    in_channels: usize,
    layout: &'a str,
}
