//! The supervised trainer: data → [`crate::window::prepare`] (the serving
//! path, with augmentations plugged in) → encoder → label-smoothed
//! cross-entropy → SGD with Nesterov momentum (or AdamW), with warm-up and
//! step or cosine decay, gradient clipping, checkpoints with resume, a metrics CSV,
//! and export of the trained model as a model directory.
//!
//! [`Method::Gap`] adds GAP's multi-part text contrastive loss
//! ([`super::gap`]) to the cross-entropy; its head is trained and
//! checkpointed beside the model (`gap-head.safetensors`) but never
//! exported, so the model directory is the same as a supervised run's.
//! [`Method::Mmcl`] likewise adds MMCL's depth alignment and refinement
//! losses ([`super::mmcl`]; its modules checkpointed as
//! `mmcl.safetensors`, never exported).
//!
//! The recipe defaults follow CTR-GCN's NW-UCLA configuration
//! (`config/ucla/default.yaml`: SGD Nesterov 0.9, lr 0.1, batch 16, weight
//! decay 1e-4, 5 warm-up epochs, the training set repeated 5 times per
//! epoch); the epoch count is the caller's, sized to the machine.
//!
//! Determinism: every epoch draws its order, augmentations and frame
//! indices from a ChaCha8 RNG seeded with `(seed, epoch)`, so a run resumed
//! from a checkpoint continues exactly as it would have.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::augment::{self, AugmentConfig};
use super::data::{self, Benchmark, Split};
use super::ema::Ema;
use super::loss::cross_entropy_smoothed;
use super::metrics::{Accumulator, Evaluation};
use super::optim::{grad_norm, AdamW, Decay, Optimizer, OptimizerKind, Param, Schedule, Sgd};
use crate::model::card::{
    Architecture, InputSpec, ModelCard, Normalization, Precision, Provenance, Sampling,
    SkeletonSpec, TemporalContract,
};
use crate::model::directory::{build_encoder, is_buffer, stored_dtype};
use crate::model::{ctrgcn, scdnet, skeletonmae, stgcn, Encoder, ModelDir};
use crate::skeleton::Layout;
use crate::source::Clip;
use crate::window::{self, PoseSeq, PrepareOptions, Prepared, Stream};
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
    /// The input stream the model reads (CTR-GCN trains one model per
    /// stream and fuses their scores, [`super::fusion`]).
    #[serde(default = "default_stream")]
    pub stream: Stream,
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

fn default_stream() -> Stream {
    Stream::Joint
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
            stream: Stream::Joint,
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
/// classes, one joint stream, one person, CTR-GCN's NW-UCLA contract (clip
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
    let (data, split) = cfg.benchmark.describe();
    let card = ModelCard {
        name: cfg.name.clone(),
        description: match cfg.stream {
            Stream::Joint => format!("{} trained on {data}, {split}", cfg.arch),
            s => format!(
                "{} ({} stream) trained on {data}, {split}",
                cfg.arch,
                s.name()
            ),
        },
        precision: Precision::F32,
        skeleton: SkeletonSpec {
            layout: layout.name().to_string(),
            edge_hash: layout.edge_hash(),
        },
        input: InputSpec {
            streams: vec![cfg.stream],
            coords: 3,
            persons: 1,
            center_joint: layout.joint_index("spine")?,
        },
        temporal: TemporalContract {
            frames: cfg.frames,
            source_fps: 30.0,
            sampling: cfg.sampling,
        },
        normalization: Normalization::CenterFirstFrameMinMax,
        classes,
        architecture,
        provenance: Provenance::default(),
    };
    card.validate()?;
    Ok(card)
}

/// A training sample: the clip through the serving path, with augmentation
/// and CTR-GCN's random sorted frame draw, then SCD-Net's masks on the
/// model-ready coordinates when the config enables them.
pub fn train_sample(
    clip: &Clip,
    card: &ModelCard,
    aug: &AugmentConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Prepared> {
    Ok(train_sample_indexed(clip, card, aug, rng)?.0)
}

/// [`train_sample`] and the clip's source frame indices it took (in
/// window order), for objectives that pair the window with another
/// modality of the same time span (MMCL).
pub fn train_sample_indexed(
    clip: &Clip,
    card: &ModelCard,
    aug: &AugmentConfig,
    rng: &mut ChaCha8Rng,
) -> Result<(Prepared, Vec<Option<usize>>)> {
    let layout = card.layout()?;
    let idx = match card.temporal.sampling {
        Sampling::Window => {
            augment::random_window_indices(clip.num_frames, card.temporal.frames, rng)
        }
        Sampling::ClipResample | Sampling::CropFirst => {
            augment::random_sorted_indices(clip.num_frames, card.temporal.frames, rng)
        }
    };
    let mut tf = |x: &mut [f32], _t: usize, _m: usize, _v: usize| aug.apply(x, layout, rng);
    let mut p = window::prepare(
        PoseSeq::from_clip(clip)?,
        card,
        PrepareOptions {
            frames: Some(&idx),
            transform: Some(&mut tf),
        },
    )?;
    aug.apply_masks(&mut p.joints, p.frames, layout, rng);
    Ok((p, idx))
}

/// Frames between the windows that offline evaluation averages for a
/// window-trained model: the x86-cpu board's stride.
pub const EVAL_WINDOW_STRIDE: usize = 8;

/// Class scores (logits, f32) of `clips` with `encoder` in inference mode,
/// through the card's evaluation-time input path: `(clips, classes)`.
///
/// A model whose contract is `window` sees each clip as the live stream
/// does, as windows every [`EVAL_WINDOW_STRIDE`] frames
/// ([`window::input::stream_windows`]); its score is the log of the mean
/// of their class probabilities.
pub fn forward_clips(
    encoder: &dyn Encoder,
    card: &ModelCard,
    clips: &[Clip],
    device: &Device,
) -> Result<Tensor> {
    let inputs = clips
        .iter()
        .map(|c| {
            window::input::clip_windows_input(
                PoseSeq::from_clip(c)?,
                card,
                EVAL_WINDOW_STRIDE,
                device,
            )
        })
        .collect::<Result<Vec<_>>>()?; // (W_i, C, T, V, M) each
    let counts = inputs
        .iter()
        .map(|x| x.dim(0))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let x = Tensor::cat(&inputs, 0)?; // (W, C, T, V, M)
    let logits = encoder.forward_t(&x, false)?.to_dtype(DType::F32)?; // (W, K)
    if counts.iter().all(|&c| c == 1) {
        return Ok(logits);
    }
    let mut start = 0;
    let mut rows = Vec::with_capacity(clips.len());
    for &c in &counts {
        let p = candle_nn::ops::softmax(&logits.narrow(0, start, c)?, 1)?; // (W_i, K)
        rows.push(p.mean_keepdim(0)?); // (1, K)
        start += c;
    }
    Ok(Tensor::cat(&rows, 0)?.clamp(1e-30f32, 1f32)?.log()?) // (N, K)
}

/// Scores `clips` with `encoder` in inference mode, through the card's
/// evaluation-time input path.
pub fn evaluate(
    encoder: &dyn Encoder,
    card: &ModelCard,
    clips: &[Clip],
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation> {
    let mut acc = Accumulator::new(card.classes.len());
    for chunk in clips.chunks(batch_size.max(1)) {
        let logits = forward_clips(encoder, card, chunk, device)?;
        let labels = Tensor::from_vec(
            chunk.iter().map(|c| c.label as u32).collect::<Vec<_>>(),
            chunk.len(),
            device,
        )?;
        let loss = cross_entropy_smoothed(&logits, &labels, 0.0)?.to_scalar::<f32>()?;
        acc.add_loss(loss as f64, chunk.len());
        for (row, c) in logits.to_vec2::<f32>()?.iter().zip(chunk) {
            acc.add(row, c.label);
        }
    }
    Ok(acc.finish())
}

/// One line of `metrics.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training top-1 (augmented samples).
    pub train_top1: f64,
    /// Test loss (NaN when not evaluated).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_loss: f64,
    /// Test top-1 (NaN when not evaluated).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_top1: f64,
    /// Test top-5 (NaN when not evaluated).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_top5: f64,
    /// Wall time of the training part of the epoch.
    pub train_s: f64,
    /// Training throughput.
    pub samples_per_s: f64,
}

/// JSON has no NaN: `serde_json` writes it as `null`, read back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Saved between epochs: where the run is.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    epochs_done: usize,
    /// The optimizer of the run (absent in runs from before AdamW: SGD).
    #[serde(default)]
    optimizer: OptimizerKind,
    wall_s: f64,
    history: Vec<EpochRecord>,
}

/// What [`train`] returns.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The trained card (provenance filled in).
    pub card: ModelCard,
    /// Final weights, f32.
    pub weights: HashMap<String, Tensor>,
    /// Per-epoch records.
    pub history: Vec<EpochRecord>,
    /// Final evaluation of the exported (f16-rounded) weights.
    pub evaluation: Evaluation,
    /// Training wall time in seconds (all sessions of a resumed run).
    pub wall_s: f64,
}

const CHECKPOINT: &str = "checkpoint.safetensors";
/// SGD's momentum buffers.
const MOMENTUM: &str = "momentum.safetensors";
/// AdamW's moments and step count.
const ADAMW_STATE: &str = "adamw.safetensors";
const STATE: &str = "state.json";
/// The moving average of the weights (`--ema`).
const EMA: &str = "ema.safetensors";
/// Per-epoch records, in the work directory and the model directory.
pub const METRICS: &str = "metrics.csv";
const GAP_HEAD: &str = "gap-head.safetensors";
const MMCL_MODULES: &str = "mmcl.safetensors";

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::io(path, e))
}

/// The trained parameters of `varmap` (buffers excluded), sorted by name;
/// weight decay on those of rank 2 and more (not on biases, BN parameters
/// or CTR-GCN's scalar `alpha`).
pub fn params(varmap: &VarMap) -> Result<Vec<Param>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::config("varmap", "weight map poisoned"))?;
    let mut names: Vec<&String> = data.keys().filter(|k| !is_buffer(k)).collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| {
            let var = data[n].clone();
            Param {
                name: n.clone(),
                decay: var.rank() >= 2,
                var,
                momentum: None,
            }
        })
        .collect())
}

/// The weights of `varmap` as named tensors.
pub fn weights_of(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::config("varmap", "weight map poisoned"))?;
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect()
}

/// Reads a `metrics.csv` written by the trainer (`NaN` where an epoch was
/// not evaluated).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = io(path, std::fs::read_to_string(path))?;
    let bad = |line: usize, reason: String| Error::Format {
        format: "metrics CSV",
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return Err(bad(i + 1, format!("{} fields, expected 9", f.len())));
        }
        let num = |k: usize| -> Result<f64> {
            f[k].trim()
                .parse::<f64>()
                .map_err(|e| bad(i + 1, format!("field {}: {e}", k + 1)))
        };
        out.push(EpochRecord {
            epoch: f[0]
                .trim()
                .parse()
                .map_err(|e| bad(i + 1, format!("epoch: {e}")))?,
            lr: num(1)?,
            train_loss: num(2)?,
            train_top1: num(3)?,
            test_loss: num(4)?,
            test_top1: num(5)?,
            test_top5: num(6)?,
            train_s: num(7)?,
            samples_per_s: num(8)?,
        });
    }
    Ok(out)
}

/// Writes `curves.png` (from `history`) and `confusion.png` (from
/// `evaluation`) into `dir`, titled with the model's name.
pub fn write_plots(
    dir: &Path,
    name: &str,
    history: &[EpochRecord],
    evaluation: &Evaluation,
    classes: &[String],
) -> Result<()> {
    super::plot::curves(
        history,
        &format!("{name}: training curves"),
        &dir.join(CURVES_PNG),
    )?;
    super::plot::confusion(
        &evaluation.confusion,
        classes,
        &format!(
            "{name}: top-1 {:.2} % on {} test clips",
            evaluation.top1 * 100.0,
            evaluation.samples
        ),
        &dir.join(CONFUSION_PNG),
    )
}

/// The curves image in a model directory.
pub const CURVES_PNG: &str = "curves.png";
/// The confusion-matrix image in a model directory.
pub const CONFUSION_PNG: &str = "confusion.png";

fn write_metrics(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut f = io(path, std::fs::File::create(path))?;
    io(
        path,
        writeln!(
            f,
            "epoch,lr,train_loss,train_top1,test_loss,test_top1,test_top5,train_s,samples_per_s"
        ),
    )?;
    for r in history {
        io(
            path,
            writeln!(
                f,
                "{},{:.6},{:.5},{:.5},{:.5},{:.5},{:.5},{:.2},{:.2}",
                r.epoch,
                r.lr,
                r.train_loss,
                r.train_top1,
                r.test_loss,
                r.test_top1,
                r.test_top5,
                r.train_s,
                r.samples_per_s
            ),
        )?;
    }
    Ok(())
}

/// Runs training as `cfg` says, on the CPU; see the module docs.
pub fn train(cfg: &TrainConfig) -> Result<TrainOutcome> {
    let device = Device::Cpu;
    let split: Split = data::load(cfg.benchmark, &cfg.data_root, cfg.limit)?;
    if split.train.is_empty() || split.test.is_empty() {
        return Err(Error::config(
            "data",
            format!(
                "split has {} training and {} test clips; both must be non-empty",
                split.train.len(),
                split.test.len()
            ),
        ));
    }
    log::info!(
        "{} training clips, {} test clips",
        split.train.len(),
        split.test.len()
    );
    train_on(cfg, &split, &device)
}

/// [`train`] on clips already loaded.
pub fn train_on(cfg: &TrainConfig, split: &Split, device: &Device) -> Result<TrainOutcome> {
    let mut card = training_card(cfg)?;
    let mut varmap = VarMap::new();
    let (vb, backend) = super::backend::var_builder(&varmap, &card.architecture, device, cfg.seed);
    let encoder = build_encoder(&card.architecture, vb)?;
    let frozen = backend.frozen()?;
    log::debug!("{} pre-BN biases held at zero", frozen.len());
    io(&cfg.work_dir, std::fs::create_dir_all(&cfg.work_dir))?;
    let mut gap = match cfg.method {
        Method::Supervised | Method::Mmcl => None,
        Method::Gap => Some(super::gap::Gap::new(
            &card.architecture,
            cfg.benchmark,
            cfg.text_model.as_deref(),
            &cfg.work_dir,
            device,
            cfg.seed,
        )?),
    };
    let mut mmcl = match cfg.method {
        Method::Mmcl => Some(super::mmcl::Mmcl::new(
            &card.architecture,
            cfg.benchmark,
            &cfg.data_root,
            &split.train,
            &cfg.mmcl,
            &cfg.work_dir,
            device,
            cfg.seed,
        )?),
        _ => None,
    };
    let teacher = cfg
        .distill
        .as_ref()
        .map(|d| super::distill::Teacher::load(d, &card, device))
        .transpose()?;
    let mut trained = params(&varmap)?;
    if let Some(g) = &gap {
        trained.extend(params(&g.varmap)?);
    }
    if let Some(m) = &mmcl {
        trained.extend(params(&m.varmap)?);
    }
    let mut opt = cfg.build_optimizer(trained);
    let mut schedule = Schedule {
        base_lr: cfg.lr,
        warmup_epochs: cfg.warmup_epochs,
        epochs: cfg.epochs,
        decay: cfg.decay.clone(),
    };
    let ckpt = cfg.work_dir.join(CHECKPOINT);
    let gap_ckpt = cfg.work_dir.join(GAP_HEAD);
    let mmcl_ckpt = cfg.work_dir.join(MMCL_MODULES);
    let mom = cfg.work_dir.join(match cfg.optimizer {
        OptimizerKind::Sgd => MOMENTUM,
        OptimizerKind::Adamw => ADAMW_STATE,
    });
    let state_path = cfg.work_dir.join(STATE);
    let mut state = TrainState {
        epochs_done: 0,
        optimizer: cfg.optimizer,
        wall_s: 0.0,
        history: Vec::new(),
    };
    if ckpt.exists() && state_path.exists() {
        varmap.load(&ckpt)?;
        if let Some(g) = gap.as_mut() {
            g.varmap.load(&gap_ckpt)?;
        }
        if let Some(m) = mmcl.as_mut() {
            m.varmap.load(&mmcl_ckpt)?;
        }
        let text = io(&state_path, std::fs::read_to_string(&state_path))?;
        state =
            serde_json::from_str(&text).map_err(|e| Error::config("state.json", e.to_string()))?;
        if state.optimizer != cfg.optimizer {
            return Err(Error::config(
                "optimizer",
                format!(
                    "{} holds a run with {}; this run asks for {} (use another --work-dir)",
                    cfg.work_dir.display(),
                    state.optimizer.name(),
                    cfg.optimizer.name()
                ),
            ));
        }
        if mom.exists() {
            opt.load_state(&candle_core::safetensors::load(&mom, device)?)?;
        }
        log::info!(
            "resumed from {} after epoch {}",
            ckpt.display(),
            state.epochs_done
        );
    } else if let Some(init) = &cfg.init {
        let n = super::init::load_matching(&varmap, init, device)?;
        log::info!("{n} tensors initialised from {}", init.display());
    }
    let ema_path = cfg.work_dir.join(EMA);
    let mut ema = match cfg.ema {
        None => None,
        Some(d) if state.epochs_done > 0 && ema_path.exists() => {
            Some(Ema::load(&ema_path, d, device)?)
        }
        Some(d) => Some(Ema::new(&varmap, d)?),
    };
    let n_train = split.train.len();
    let per_epoch = n_train * cfg.repeat.max(1);
    let steps_per_epoch = per_epoch.div_ceil(cfg.batch_size);
    let mut epochs = cfg.epochs;
    let mut epoch = state.epochs_done;
    while epoch < epochs {
        let started = Instant::now();
        let mut rng =
            ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut order: Vec<usize> = (0..per_epoch).map(|i| i % n_train).collect();
        order.shuffle(&mut rng);
        let bar = ProgressBar::new(per_epoch as u64);
        if !cfg.progress {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} ")
                .map_err(|e| Error::config("progress", e.to_string()))?
                .progress_chars("=> "),
        );
        let mut loss_sum = 0.0;
        let mut correct = 0usize;
        for (step, batch) in order.chunks(cfg.batch_size).enumerate() {
            let e = epoch as f64 + step as f64 / steps_per_epoch as f64;
            opt.set_lr(schedule.lr(e));
            let prepared = batch
                .iter()
                .map(|&i| train_sample_indexed(&split.train[i], &card, &cfg.augment, &mut rng))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Prepared> = prepared.iter().map(|(p, _)| p).collect();
            let x = window::to_input(&refs, &card, device)?;
            let labels: Vec<u32> = batch.iter().map(|&i| split.train[i].label as u32).collect();
            let y = Tensor::from_vec(labels.clone(), batch.len(), device)?;
            let t0 = Instant::now();
            let (logits, loss) = match (&gap, &mmcl) {
                (None, None) => {
                    let logits = encoder.forward_t(&x, true)?;
                    let loss = cross_entropy_smoothed(&logits, &y, cfg.label_smoothing)?;
                    (logits, loss)
                }
                (None, Some(m)) => {
                    let (logits, h) = encoder.forward_with_features(&x, true)?;
                    let ce = cross_entropy_smoothed(&logits, &y, cfg.label_smoothing)?;
                    let clips: Vec<&Clip> = batch.iter().map(|&i| &split.train[i]).collect();
                    let windows: Vec<&[Option<usize>]> =
                        prepared.iter().map(|(_, w)| w.as_slice()).collect();
                    let terms = m.loss(&h, &logits, &y, &clips, &windows, cfg.label_smoothing)?;
                    log::debug!(
                        "step {step}: cross-entropy {:.4}, refined {:.4}, align {:.4}",
                        ce.to_scalar::<f32>()?,
                        terms.refined_ce.to_scalar::<f32>()?,
                        terms.align.to_scalar::<f32>()?
                    );
                    (logits, (ce + terms.weighted()?)?)
                }
                (Some(g), _) => {
                    let (logits, h) = encoder.forward_with_features(&x, true)?;
                    let ce = cross_entropy_smoothed(&logits, &y, cfg.label_smoothing)?;
                    let part = g.loss(&h, &labels, &mut rng)?;
                    log::debug!(
                        "step {step}: cross-entropy {:.4}, GAP part loss {:.4}",
                        ce.to_scalar::<f32>()?,
                        part.to_scalar::<f32>()?
                    );
                    (logits, (ce + (part * super::gap::loss::LOSS_WEIGHT)?)?)
                }
            };
            let loss = match &teacher {
                Some(t) => {
                    let soft = t.loss(&logits, &t.logits(&refs, device)?)?;
                    log::debug!("step {step}: distillation {:.4}", soft.to_scalar::<f32>()?);
                    (loss + soft)?
                }
                None => loss,
            };
            let t1 = Instant::now();
            let grads = loss.backward()?;
            let t2 = Instant::now();
            let scale = match cfg.clip_grad_norm {
                Some(max) => {
                    let n = grad_norm(opt.params(), &grads)?;
                    if n > max {
                        max / (n + 1e-6)
                    } else {
                        1.0
                    }
                }
                None => 1.0,
            };
            opt.step(&grads, scale)?;
            if let Some(e) = ema.as_mut() {
                e.update(&varmap)?;
            }
            log::debug!(
                "step {step}: forward {:.0} ms, backward {:.0} ms, update {:.0} ms",
                (t1 - t0).as_secs_f64() * 1e3,
                (t2 - t1).as_secs_f64() * 1e3,
                t2.elapsed().as_secs_f64() * 1e3
            );
            let l = crate::train::loss::finite_scalar(&loss, || {
                format!("training loss at epoch {} step {step}", epoch + 1)
            })?;
            loss_sum += l * batch.len() as f64;
            let pred: Vec<u32> = logits.argmax(1)?.to_vec1()?;
            correct += pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
            bar.inc(batch.len() as u64);
            bar.set_message(format!("epoch {}/{} loss {:.3}", epoch + 1, epochs, l));
        }
        bar.finish_and_clear();
        let train_s = started.elapsed().as_secs_f64();
        let last = epoch + 1 == epochs;
        let eval = if last || (epoch + 1) % cfg.eval_every.max(1) == 0 {
            Some(match &ema {
                Some(e) => {
                    let mut w = e.weights().clone();
                    w.extend(frozen.clone());
                    let averaged = build_encoder(
                        &card.architecture,
                        VarBuilder::from_tensors(w, DType::F32, device),
                    )?;
                    evaluate(averaged.as_ref(), &card, &split.test, 64, device)?
                }
                None => evaluate(encoder.as_ref(), &card, &split.test, 64, device)?,
            })
        } else {
            None
        };
        let rec = EpochRecord {
            epoch: epoch + 1,
            lr: opt.lr(),
            train_loss: loss_sum / per_epoch as f64,
            train_top1: correct as f64 / per_epoch as f64,
            test_loss: eval.as_ref().and_then(|e| e.loss).unwrap_or(f64::NAN),
            test_top1: eval.as_ref().map_or(f64::NAN, |e| e.top1),
            test_top5: eval.as_ref().map_or(f64::NAN, |e| e.top5),
            train_s,
            samples_per_s: per_epoch as f64 / train_s,
        };
        log::info!(
            "epoch {:>3}/{} lr {:.4} loss {:.4} train {:.2} % test {:.2} % ({:.1} s, {:.1} samples/s)",
            rec.epoch,
            epochs,
            rec.lr,
            rec.train_loss,
            rec.train_top1 * 100.0,
            rec.test_top1 * 100.0,
            started.elapsed().as_secs_f64(),
            rec.samples_per_s
        );
        state.history.push(rec);
        state.epochs_done = epoch + 1;
        state.wall_s += started.elapsed().as_secs_f64();
        // checkpoint: weights (with BN running statistics), optimizer, state
        varmap.save(&ckpt)?;
        if let Some(e) = &ema {
            e.save(&ema_path)?;
        }
        if let Some(g) = &gap {
            g.varmap.save(&gap_ckpt)?;
        }
        if let Some(m) = &mmcl {
            m.varmap.save(&mmcl_ckpt)?;
        }
        let m = opt.state()?;
        if !m.is_empty() {
            candle_core::safetensors::save(&m, &mom)?;
        }
        let text = serde_json::to_string_pretty(&state)
            .map_err(|e| Error::config("state.json", e.to_string()))?;
        io(&state_path, std::fs::write(&state_path, text))?;
        write_metrics(&cfg.work_dir.join(METRICS), &state.history)?;
        epoch += 1;
        if let Some(budget) = cfg.time_budget_s {
            // Leave room for one evaluation at the end.
            let per_epoch_s = state.wall_s / state.epochs_done as f64;
            let fit = (budget / per_epoch_s).floor() as usize;
            let new = fit.clamp(epoch.max(1), epochs);
            if new < epochs && epoch < epochs {
                log::info!(
                    "time budget {budget:.0} s at {per_epoch_s:.1} s per epoch: {new} epochs instead of {epochs}"
                );
                epochs = new;
                schedule.shrink(new, epoch);
            }
        }
    }
    // Evaluate what ships: weights (or their average) rounded to f16,
    // computed in f32.
    let mut weights = match &ema {
        Some(e) => e.weights().clone(),
        None => weights_of(&varmap)?,
    };
    weights.extend(frozen);
    let rounded: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, t)| {
            let stored = t.to_dtype(stored_dtype(k, Precision::F16))?;
            Ok((k.clone(), stored.to_dtype(DType::F32)?))
        })
        .collect::<Result<_>>()?;
    let shipped = build_encoder(
        &card.architecture,
        VarBuilder::from_tensors(rounded, DType::F32, device),
    )?;
    let evaluation = evaluate(shipped.as_ref(), &card, &split.test, 64, device)?;
    let (data, split_name) = cfg.benchmark.describe();
    let best = state
        .history
        .iter()
        .filter(|r| r.test_top1.is_finite())
        .map(|r| (r.test_top1, r.epoch))
        .fold(
            (f64::NAN, 0),
            |a, b| if a.0.is_nan() || b.0 > a.0 { b } else { a },
        );
    let objective = match (&gap, &mmcl) {
        (None, Some(m)) => m.describe(),
        (None, None) => String::from("Objective: supervised (cross-entropy)."),
        (Some(g), _) => format!(
            "Objective: GAP (Xiang et al., ICCV 2023): cross-entropy + {} x the multi-part \
             contrastive loss (global + head, arms, hip, legs; learnable logit scales, soft \
             same-class targets, symmetric KL) against frozen all-MiniLM-L6-v2 embeddings of \
             skelact's {} class descriptions (digest {:016x}); the GAP head (part pooling, five \
             projections to {} dims) was training-only and is not part of this model.",
            super::gap::loss::LOSS_WEIGHT,
            cfg.benchmark.classes().len(),
            g.descriptions_digest,
            g.bank.dim()
        ),
    };
    let objective = match &ema {
        Some(e) => format!(
            "{objective} Evaluated and exported: the exponential moving average of the weights \
             and BN statistics (decay {}, warmed up as min(decay, (1 + k) / (10 + k)), {} updates).",
            cfg.ema.unwrap_or_default(),
            e.updates()
        ),
        None => objective,
    };
    let objective = match &teacher {
        Some(t) => format!("{objective} {}", t.describe()),
        None => objective,
    };
    let objective = match &cfg.init {
        Some(p) => format!(
            "{objective} Matching weights initialised from {} (pretrained).",
            p.display()
        ),
        None => objective,
    };
    card.provenance = Provenance {
        command: cfg.command.clone(),
        data: data.to_string(),
        split: split_name.to_string(),
        seed: Some(cfg.seed),
        license: "MIT OR Apache-2.0 (weights); the data set's own terms apply to the data".into(),
        metrics: [
            ("top1".to_string(), evaluation.top1),
            ("top5".to_string(), evaluation.top5),
            ("epochs".to_string(), epochs as f64),
            ("train_wall_s".to_string(), state.wall_s),
            ("test_samples".to_string(), evaluation.samples as f64),
        ]
        .into_iter()
        .collect(),
        notes: format!(
            "{objective} skelact train: {} epochs x {} repeats of {} training clips, batch {}, {} \
             ({} warm-up epochs, {:?}), weight decay {} ({}, not on biases/BN), label smoothing {}, \
             augmentation {:?}, {}; {:.0} s wall time on CPU. Metrics are of the final epoch's weights rounded to f16 \
             (no checkpoint selection on the test split; best test top-1 during training was \
             {:.2} % at epoch {}).",
            epochs,
            cfg.repeat,
            split.train.len(),
            cfg.batch_size,
            cfg.optimizer_description(),
            cfg.warmup_epochs,
            schedule.decay,
            cfg.weight_decay,
            match cfg.optimizer {
                OptimizerKind::Sgd => "L2",
                OptimizerKind::Adamw => "decoupled",
            },
            cfg.label_smoothing,
            cfg.augment,
            match cfg.sampling {
                Sampling::Window => format!(
                    "windows of {} consecutive frames at a random start in training; in \
                     test, the mean class probability of a clip's windows every {} frames, as \
                     the live stream cuts them",
                    cfg.frames, EVAL_WINDOW_STRIDE
                ),
                _ => "frames drawn sorted at random in training and evenly in test".to_string(),
            },
            state.wall_s,
            best.0 * 100.0,
            best.1
        ),
    };
    if let Some(out) = &cfg.out {
        let mut shipped_card = card.clone();
        shipped_card.precision = Precision::F16;
        ModelDir::create(out, &shipped_card, &weights)?;
        let report = out.join("evaluation.txt");
        io(
            &report,
            std::fs::write(&report, evaluation.report(&card.classes)),
        )?;
        let csv = out.join(METRICS);
        write_metrics(&csv, &state.history)?;
        // The model is written; a failed plot is reported, not fatal.
        if let Err(e) = write_plots(out, &card.name, &state.history, &evaluation, &card.classes) {
            log::warn!("plots for {}: {e}", out.display());
        }
    }
    Ok(TrainOutcome {
        card,
        weights,
        history: state.history,
        evaluation,
        wall_s: state.wall_s,
    })
}
