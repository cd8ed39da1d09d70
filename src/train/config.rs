//! What a training run is made of: the objective ([`Method`]), the
//! architectures `skelact train` builds, the run's settings
//! ([`TrainConfig`], serde-typed so a work directory's copy reads back), and
//! the model card a run trains ([`training_card`]).
//!
//! The recipe defaults follow CTR-GCN's NW-UCLA configuration
//! (`config/ucla/default.yaml`: SGD Nesterov 0.9, lr 0.1, batch 16, weight
//! decay 1e-4, 5 warm-up epochs, the training set repeated 5 times per
//! epoch); the epoch count is the caller's, sized to the machine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::augment::AugmentConfig;
use super::data::Benchmark;
use super::optim::{AdamW, Decay, Optimizer, OptimizerKind, Param, Sgd};
use crate::model::card::{
    Architecture, InputSpec, ModelCard, Normalization, Precision, Provenance, Sampling,
    SkeletonSpec, TemporalContract,
};
use crate::model::{ctrgcn, scdnet, skeletonmae, stgcn};
use crate::skeleton::Layout;
use crate::window::Stream;
use crate::{Error, Result};

/// The training objective.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Cross-entropy on the class labels.
    #[default]
    Supervised,
    /// Cross-entropy + 0.8 x GAP's multi-part contrastive loss against text
    /// descriptions ([`super::gap`]); exports the same model directory.
    Gap,
    /// Cross-entropy + 0.2 x refined cross-entropy + 0.1 x depth-skeleton
    /// NT-Xent: MMCL co-learning with UTD-MHAD's depth video
    /// ([`super::mmcl`]); exports the same model directory.
    Mmcl,
}

impl Method {
    /// Parses `supervised` / `gap` / `mmcl`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "supervised" | "ce" => Ok(Method::Supervised),
            "gap" => Ok(Method::Gap),
            "mmcl" => Ok(Method::Mmcl),
            other => Err(Error::config(
                "method",
                format!("unknown method `{other}` (supervised, gap, mmcl)"),
            )),
        }
    }
}

/// Architectures `skelact train` builds.
pub const ARCHITECTURES: [&str; 6] = [
    "ctrgcn-edge",
    "ctrgcn",
    "stgcn-edge",
    "stgcn",
    "skeletonmae",
    "scdnet",
];

/// Everything a training run is made of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture name (one of [`ARCHITECTURES`]).
    pub arch: String,
    /// CTR-GCN blocks `(width, stride)` overriding the architecture's.
    pub blocks: Option<Vec<(usize, usize)>>,
    /// Data set and split.
    pub benchmark: Benchmark,
    /// Data root (holds `nw-ucla/`, `utd-mhad/`).
    pub data_root: PathBuf,
    /// Read only this many clip files (quick runs, tests).
    pub limit: Option<usize>,
    /// Frames per sample (CTR-GCN NW-UCLA: 52).
    pub frames: usize,
    /// How a training sample takes its frames from a clip, recorded as the
    /// card's temporal contract: the papers' whole-clip resampling
    /// (default), or windows of consecutive frames at the source rate —
    /// what the live runtime feeds the model.
    #[serde(default = "clip_resample")]
    pub sampling: Sampling,
    /// Coordinate normalization, recorded in the card: CTR-GCN's NW-UCLA
    /// centering and min-max scaling (default), or the same with each
    /// sequence turned square to the camera first.
    #[serde(default = "center_min_max")]
    pub normalization: Normalization,
    /// Epochs.
    pub epochs: usize,
    /// Times the training set is passed per epoch (CTR-GCN NW-UCLA: 5).
    pub repeat: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Warm-up epochs.
    pub warmup_epochs: usize,
    /// Decay after warm-up.
    pub decay: Decay,
    /// Optimizer.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Momentum (SGD).
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// AdamW's moment decay rates.
    #[serde(default = "default_betas")]
    pub betas: (f64, f64),
    /// AdamW's denominator epsilon.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Weight decay (not applied to biases and BN parameters): L2 for SGD,
    /// decoupled for AdamW.
    pub weight_decay: f64,
    /// Label smoothing.
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// Evaluate and export an exponential moving average of the weights
    /// with this decay ([`super::ema`]); `None` uses the last weights.
    #[serde(default)]
    pub ema: Option<f64>,
    /// Augmentations.
    pub augment: AugmentConfig,
    /// The input streams the model reads, stacked along the channel axis
    /// ([`crate::window::stream::compute`]). CTR-GCN trains one model per
    /// stream and fuses their scores ([`super::fusion`]); several streams
    /// make one model read them all from its first layer on (early fusion,
    /// as EfficientGCN's input branches do).
    #[serde(default = "default_streams")]
    pub streams: Vec<Stream>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Evaluate on the test split every this many epochs (and at the end).
    pub eval_every: usize,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Folder for checkpoints and `metrics.csv`; resumes from its
    /// checkpoint when there is one.
    pub work_dir: PathBuf,
    /// Model directory to export (f16) at the end.
    pub out: Option<PathBuf>,
    /// Wall-clock budget in seconds: after each epoch the total epoch
    /// count is lowered so that training ends within it (the schedule
    /// follows the new count). `None` keeps `epochs`.
    #[serde(default)]
    pub time_budget_s: Option<f64>,
    /// Training objective.
    #[serde(default)]
    pub method: Method,
    /// GAP's sentence encoder folder (else `$SKELACT_TEXT_MODEL`).
    #[serde(default)]
    pub text_model: Option<PathBuf>,
    /// MMCL's teacher file and depth frames per window.
    #[serde(default)]
    pub mmcl: super::mmcl::MmclConfig,
    /// Pretrained weights (`skelact pretrain mae`'s file) to initialise
    /// the model's matching tensors from before the first epoch.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Distil a fused ensemble of trained models into this one
    /// ([`super::distill`]), on top of the method's objective.
    #[serde(default)]
    pub distill: Option<super::distill::DistillConfig>,
    /// Model name in the card.
    pub name: String,
    /// The command line, for the card.
    pub command: String,
}

fn default_streams() -> Vec<Stream> {
    vec![Stream::Joint]
}

fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}

fn default_eps() -> f64 {
    1e-8
}

fn clip_resample() -> Sampling {
    Sampling::ClipResample
}

fn center_min_max() -> Normalization {
    Normalization::CenterFirstFrameMinMax
}

impl TrainConfig {
    /// CTR-GCN's NW-UCLA recipe for `epochs` epochs (step decay at 50 of
    /// 65 scaled to `epochs`).
    pub fn nwucla(data_root: PathBuf, work_dir: PathBuf, epochs: usize) -> Self {
        Self {
            arch: "ctrgcn-edge".into(),
            blocks: None,
            benchmark: Benchmark::NwuclaCrossView,
            data_root,
            limit: None,
            frames: 52,
            sampling: Sampling::ClipResample,
            normalization: Normalization::CenterFirstFrameMinMax,
            epochs,
            repeat: 5,
            batch_size: 16,
            lr: 0.1,
            warmup_epochs: 5.min(epochs / 4),
            decay: Decay::Step {
                at: vec![(epochs * 50).div_ceil(65)],
                gamma: 0.1,
            },
            optimizer: OptimizerKind::Sgd,
            momentum: 0.9,
            nesterov: true,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 1e-4,
            label_smoothing: 0.0,
            clip_grad_norm: None,
            ema: None,
            augment: AugmentConfig::default(),
            streams: default_streams(),
            seed: 1,
            eval_every: 1,
            progress: true,
            work_dir,
            out: None,
            time_budget_s: None,
            method: Method::Supervised,
            text_model: None,
            mmcl: Default::default(),
            init: None,
            distill: None,
            name: "ctrgcn-edge-nwucla".into(),
            command: String::new(),
        }
    }
}

impl TrainConfig {
    /// The optimizer and its settings in words, for the card's notes.
    pub fn optimizer_description(&self) -> String {
        match self.optimizer {
            OptimizerKind::Sgd => format!(
                "SGD{} momentum {}, lr {}",
                if self.nesterov { " Nesterov" } else { "" },
                self.momentum,
                self.lr
            ),
            OptimizerKind::Adamw => format!(
                "AdamW betas ({}, {}), eps {:e}, lr {}",
                self.betas.0, self.betas.1, self.eps, self.lr
            ),
        }
    }

    /// Builds the configured optimizer over `params`.
    pub fn build_optimizer(&self, params: Vec<Param>) -> Optimizer {
        match self.optimizer {
            OptimizerKind::Sgd => Optimizer::Sgd(Sgd {
                params,
                lr: self.lr,
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay,
            }),
            OptimizerKind::Adamw => Optimizer::AdamW(AdamW {
                betas: self.betas,
                eps: self.eps,
                ..AdamW::new(params, self.lr, self.weight_decay)
            }),
        }
    }
}

/// The card a run trains: architecture for the benchmark's layout and
/// classes, the run's input streams, one person, CTR-GCN's NW-UCLA contract (clip
/// resampled to `frames`, centered on the spine of frame 0, min-max scaled).
pub fn training_card(cfg: &TrainConfig) -> Result<ModelCard> {
    let layout = Layout::by_name(cfg.benchmark.layout())?;
    let classes = cfg.benchmark.classes();
    let k = classes.len();
    let architecture = match cfg.arch.as_str() {
        "ctrgcn-edge" | "ctrgcn" => {
            let mut c = if cfg.arch == "ctrgcn" {
                ctrgcn::Config::published(layout.name(), k)?
            } else {
                ctrgcn::Config::edge(layout.name(), k)?
            };
            if let Some(b) = &cfg.blocks {
                c.blocks = b
                    .iter()
                    .map(|&(out_channels, stride)| ctrgcn::BlockSpec {
                        out_channels,
                        stride,
                    })
                    .collect();
                c.validate()?;
            }
            Architecture::Ctrgcn(c)
        }
        "stgcn-edge" => Architecture::Stgcn(stgcn::Config::edge(layout.name(), k)?),
        "stgcn" => Architecture::Stgcn(stgcn::Config::published(layout.name(), k)?),
        "skeletonmae" => {
            let mut c = skeletonmae::Config::new(layout.name(), k)?;
            if let Some(b) = &cfg.blocks {
                c.backbone.blocks = b
                    .iter()
                    .map(|&(out_channels, stride)| ctrgcn::BlockSpec {
                        out_channels,
                        stride,
                    })
                    .collect();
                c.validate()?;
            }
            Architecture::Skeletonmae(c)
        }
        "scdnet" => {
            let mut c = scdnet::Config::small(layout.name(), k, cfg.frames)?;
            // A pretrained encoder decides the widths.
            if let Some(init) = &cfg.init {
                c.widths = super::init::scdnet_widths(init)?;
            }
            c.validate()?;
            Architecture::Scdnet(c)
        }
        other => {
            return Err(Error::config(
                "arch",
                format!(
                    "unknown architecture `{other}` ({})",
                    ARCHITECTURES.join(", ")
                ),
            ))
        }
    };
    let architecture = with_streams(architecture, &cfg.streams, &cfg.arch)?;
    let (data, split) = cfg.benchmark.describe();
    let card = ModelCard {
        name: cfg.name.clone(),
        description: match cfg.streams.as_slice() {
            [Stream::Joint] => format!("{} trained on {data}, {split}", cfg.arch),
            [s] => format!(
                "{} ({} stream) trained on {data}, {split}",
                cfg.arch,
                s.name()
            ),
            many => format!(
                "{} ({} streams, early fusion) trained on {data}, {split}",
                cfg.arch,
                many.iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
        },
        precision: Precision::F32,
        skeleton: SkeletonSpec {
            layout: layout.name().to_string(),
            edge_hash: layout.edge_hash(),
        },
        input: InputSpec {
            streams: cfg.streams.clone(),
            coords: 3,
            persons: 1,
            center_joint: layout.joint_index("spine")?,
            views: Vec::new(),
        },
        temporal: TemporalContract {
            frames: cfg.frames,
            source_fps: 30.0,
            sampling: cfg.sampling,
        },
        normalization: cfg.normalization,
        classes,
        architecture,
        provenance: Provenance::default(),
    };
    card.validate()?;
    Ok(card)
}

/// `architecture` reading the channels of `streams` stacked (3 per stream).
/// One stream leaves it as built; several widen its input layer, which the
/// graph networks trained from scratch (CTR-GCN, ST-GCN) allow. The others
/// take their input width from pretraining and read one stream.
fn with_streams(
    mut architecture: Architecture,
    streams: &[Stream],
    arch: &str,
) -> Result<Architecture> {
    if streams.is_empty() {
        return Err(Error::config("stream", "at least one stream"));
    }
    if let Some(s) = streams
        .iter()
        .enumerate()
        .find_map(|(i, s)| streams[..i].contains(s).then_some(s))
    {
        return Err(Error::config(
            "stream",
            format!("`{}` is listed twice", s.name()),
        ));
    }
    let channels = crate::window::stream::channels(streams, 3);
    match &mut architecture {
        _ if streams.len() == 1 => {}
        Architecture::Ctrgcn(c) => c.in_channels = channels,
        Architecture::Stgcn(c) => c.in_channels = channels,
        _ => {
            return Err(Error::config(
                "stream",
                format!(
                "`{arch}` reads one stream; several need ctrgcn, ctrgcn-edge, stgcn or stgcn-edge"
            ),
            ))
        }
    }
    Ok(architecture)
}
