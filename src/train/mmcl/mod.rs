//! MMCL — Multi-Modality Co-Learning (Liu et al., "Multi-Modality
//! Co-Learning for Efficient Skeleton-based Action Recognition", ACM MM
//! 2024) with UTD-MHAD's depth video as the second modality.
//!
//! During training another sensor teaches the skeleton model; inference
//! reads skeletons only. Two modules, as in the authors' code:
//!
//! - **Feature Alignment** ([`align`]): a depth encoder ([`encoder`]) embeds
//!   `K` depth frames paired with each skeleton window ([`depth`]) to 256
//!   dims; the skeleton model's global feature is projected to 256 dims; a
//!   symmetric NT-Xent (τ = 0.4, cross- and intra-modal negatives) pulls
//!   the two embeddings of a clip together. Weight 0.1.
//! - **Feature Refinement** ([`refine`]): per-clip teacher features read
//!   from a file ([`teacher`]) set per-sample weights `(w+, w-)` that scale
//!   learnable per-class vectors; the refined score
//!   `(w+ P + w- N) ⊙ logits` gets its own cross-entropy. Weight 0.2.
//!
//! Total: `CE + 0.2 CE_refined + 0.1 L_align`. The depth encoder, the
//! projection and the refinement module live in their own weight map
//! (checkpointed as `mmcl.safetensors` in the work directory) and are
//! never exported: an MMCL model directory is a normal skeleton model.
//!
//! Differences from the paper, all stated in the model card: depth frames
//! and a compact CNN trained from scratch replace RGB frames and an
//! ImageNet Inception-v3 (the product's camera gives depth; a 2-core CPU
//! cannot afford Inception); the teacher features summarize the wearable
//! inertial sensor instead of a multimodal LLM's yes/no answer; the
//! skeleton feature is projected to 256 dims (the authors align CTR-GCN's
//! 256-d feature directly).

pub mod align;
pub mod depth;
pub mod encoder;
pub mod refine;
pub mod teacher;

pub use align::{global_feature, nt_xent, SkeletonProjector};
pub use depth::{pair_frames, DepthStore};
pub use encoder::DepthEncoder;
pub use refine::Refinement;
pub use teacher::TeacherFeatures;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::model::card::Architecture;
use crate::source::Clip;
use crate::train::backend::seeded_var_builder;
use crate::train::loss::cross_entropy_smoothed;
use crate::train::Benchmark;
use crate::{Error, Result};

/// Depth frames paired with each skeleton window by default.
pub const DEFAULT_DEPTH_FRAMES: usize = 6;

/// The teacher file a run writes into its work directory when none is
/// given.
pub const TEACHER_FILE: &str = "mmcl-teacher.safetensors";

/// MMCL's settings in a training config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmclConfig {
    /// Teacher feature file ([`teacher`]); `None`: the inertial teacher,
    /// written to `<work dir>/mmcl-teacher.safetensors` on first use.
    pub teacher: Option<PathBuf>,
    /// Depth frames per skeleton window (K).
    pub depth_frames: usize,
    /// Weight of the refined score's cross-entropy (the paper: 0.2); 0
    /// leaves the refinement out of the objective.
    #[serde(default = "default_refine_weight")]
    pub refine_weight: f64,
    /// Weight of the skeleton–depth alignment (the paper: 0.1); 0 leaves
    /// the depth video out of the objective.
    #[serde(default = "default_align_weight")]
    pub align_weight: f64,
}

fn default_refine_weight() -> f64 {
    refine::REFINE_WEIGHT
}

fn default_align_weight() -> f64 {
    align::ALIGN_WEIGHT
}

impl MmclConfig {
    /// Rejects a negative or non-finite term weight.
    pub fn validate(&self) -> Result<()> {
        for (name, w) in [
            ("refine weight", self.refine_weight),
            ("align weight", self.align_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(Error::config(
                    "mmcl",
                    format!("{name} must be finite and >= 0, got {w}"),
                ));
            }
        }
        Ok(())
    }
}

impl Default for MmclConfig {
    fn default() -> Self {
        Self {
            teacher: None,
            depth_frames: DEFAULT_DEPTH_FRAMES,
            refine_weight: refine::REFINE_WEIGHT,
            align_weight: align::ALIGN_WEIGHT,
        }
    }
}

/// The two MMCL terms of one batch.
#[derive(Debug, Clone)]
pub struct MmclLoss {
    /// Cross-entropy of the refined score.
    pub refined_ce: Tensor,
    /// Symmetric NT-Xent between skeleton and depth embeddings.
    pub align: Tensor,
}

impl MmclLoss {
    /// `w_refine CE_refined + w_align L_align` (the paper: 0.2 and 0.1), to
    /// add to the cross-entropy.
    pub fn weighted(&self, cfg: &MmclConfig) -> Result<Tensor> {
        Ok(((&self.refined_ce * cfg.refine_weight)? + (&self.align * cfg.align_weight)?)?)
    }
}

/// Everything an MMCL run holds besides the skeleton model.
pub struct Mmcl {
    /// Depth encoder, projection and refinement weights (trained,
    /// checkpointed, never exported).
    pub varmap: VarMap,
    /// The depth encoder (`depth.*`).
    pub depth_encoder: DepthEncoder,
    /// The skeleton projection (`skeleton_proj.*`).
    pub skeleton_proj: SkeletonProjector,
    /// The refinement module (`frm.*`).
    pub refinement: Refinement,
    /// The training clips' depth videos.
    pub depth: DepthStore,
    /// The teacher features.
    pub teacher: TeacherFeatures,
    /// Where the teacher features were read from.
    pub teacher_path: PathBuf,
    /// The run's settings (term weights).
    pub cfg: MmclConfig,
}

/// The last block's width of a backbone that exposes its feature map.
pub fn feature_channels(arch: &Architecture) -> Result<usize> {
    arch.feature_channels()
        .ok_or_else(|| Error::config("method", "MMCL needs a CTR-GCN or ST-GCN backbone"))
}

/// The modules of a run with `classes` classes, a `c_feat`-wide backbone,
/// `depth_frames` stacked frames and `teacher_dim` teacher values, in a
/// fresh weight map drawn from `seed`.
pub fn build_modules(
    c_feat: usize,
    classes: usize,
    depth_frames: usize,
    teacher_dim: usize,
    device: &Device,
    seed: u64,
) -> Result<(VarMap, DepthEncoder, SkeletonProjector, Refinement)> {
    let vm = VarMap::new();
    let vb = seeded_var_builder(&vm, device, seed);
    let enc = DepthEncoder::new(depth_frames, vb.pp("depth"))?;
    let proj = SkeletonProjector::new(c_feat, encoder::EMBED_DIM, vb.pp("skeleton_proj"))?;
    let frm = Refinement::new(teacher_dim, classes, vb.pp("frm"))?;
    Ok((vm, enc, proj, frm))
}

/// The teacher file of a run: `cfg.teacher`, else
/// `work_dir/mmcl-teacher.safetensors`, written from the inertial sensor
/// when it does not exist yet.
pub fn resolve_teacher(
    cfg: &MmclConfig,
    utd_root: &Path,
    work_dir: &Path,
) -> Result<(PathBuf, TeacherFeatures)> {
    if let Some(p) = &cfg.teacher {
        return Ok((p.clone(), TeacherFeatures::read(p)?));
    }
    let p = work_dir.join(TEACHER_FILE);
    if !p.exists() {
        log::info!(
            "computing the inertial teacher features into {}",
            p.display()
        );
        TeacherFeatures::from_inertial(utd_root)?.write(&p)?;
    }
    Ok((p.clone(), TeacherFeatures::read(&p)?))
}

impl Mmcl {
    /// Sets MMCL up for a run on `bench` (UTD-MHAD only: it has the depth
    /// video) with `train` clips under `data_root`; fresh modules drawn
    /// from `seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        arch: &Architecture,
        bench: Benchmark,
        data_root: &Path,
        train: &[Clip],
        cfg: &MmclConfig,
        work_dir: &Path,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        if bench != Benchmark::UtdCrossSubject {
            return Err(Error::config(
                "method",
                "MMCL needs UTD-MHAD (--dataset utd): its depth video is the second modality",
            ));
        }
        cfg.validate()?;
        let c_feat = feature_channels(arch)?;
        let utd_root = data_root.join("utd-mhad");
        let (teacher_path, teacher) = resolve_teacher(cfg, &utd_root, work_dir)?;
        let ids = train
            .iter()
            .map(depth::clip_id)
            .collect::<Result<Vec<_>>>()?;
        let missing = teacher.missing(ids.iter().map(String::as_str));
        if !missing.is_empty() {
            return Err(Error::config(
                "teacher",
                format!(
                    "{} has no features for {} of {} training clips (first: {})",
                    teacher_path.display(),
                    missing.len(),
                    ids.len(),
                    missing[0]
                ),
            ));
        }
        let started = std::time::Instant::now();
        let depth = DepthStore::load(&utd_root, train)?;
        log::info!(
            "MMCL: {} depth videos in {:.1} s ({} with a frame count unlike the skeleton's), \
             teacher {} ({} values per clip)",
            depth.len(),
            started.elapsed().as_secs_f64(),
            depth.mismatched,
            teacher_path.display(),
            teacher.dim()
        );
        let classes = bench.classes().len();
        let (varmap, depth_encoder, skeleton_proj, refinement) = build_modules(
            c_feat,
            classes,
            cfg.depth_frames,
            teacher.dim(),
            device,
            seed,
        )?;
        Ok(Self {
            varmap,
            depth_encoder,
            skeleton_proj,
            refinement,
            depth,
            teacher,
            teacher_path,
            cfg: cfg.clone(),
        })
    }

    /// The MMCL terms for a batch: `h (N*M, C, T', V)` and `logits (N, K)`
    /// from the skeleton model, `labels (N,)`, and for each sample its clip
    /// and the source frames of its skeleton window.
    pub fn loss(
        &self,
        h: &Tensor,
        logits: &Tensor,
        labels: &Tensor,
        clips: &[&Clip],
        windows: &[&[Option<usize>]],
        label_smoothing: f64,
    ) -> Result<MmclLoss> {
        let n = clips.len();
        if windows.len() != n || logits.dim(0)? != n {
            return Err(Error::shape(
                "MMCL batch",
                format!("{n} clips, windows and logits"),
                &[windows.len(), logits.dim(0)?],
            ));
        }
        let device = logits.device();
        let ids = clips
            .iter()
            .map(|c| depth::clip_id(c))
            .collect::<Result<Vec<_>>>()?;
        let items: Vec<(&str, &[Option<usize>])> = ids
            .iter()
            .map(String::as_str)
            .zip(windows.iter().copied())
            .collect();
        let k = self.depth_encoder.frames();
        let x_depth = self.depth.batch(&items, k, device)?; // (N, K, H, W)
        let z_depth = self.depth_encoder.forward_t(&x_depth, true)?; // (N, 256)
        let g = global_feature(h, n)?; // (N, C)
        let z_skel = self.skeleton_proj.forward(&g)?; // (N, 256)
        let align = nt_xent(&z_skel, &z_depth, align::TEMPERATURE)?;
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let t = self.teacher.batch(&id_refs, device)?; // (N, D)
        let refined = self.refinement.refine(logits, &t)?; // (N, K)
        let refined_ce = cross_entropy_smoothed(&refined, labels, label_smoothing)?;
        Ok(MmclLoss { refined_ce, align })
    }

    /// The card's sentence on the objective.
    pub fn describe(&self) -> String {
        format!(
            "Objective: MMCL (Liu et al., ACM MM 2024): cross-entropy + {} x the cross-entropy of \
             the refined score (w+ P + w- N) * logits, with (w+, w-) from teacher features `{}` \
             ({}; file {}) + {} x a symmetric NT-Xent (tau {}, cross- and intra-modal \
             negatives) between the skeleton's global feature projected to {} dims and a compact \
             depth CNN's embedding of {} UTD-MHAD depth frames paired with each window \
             (replacing the paper's RGB Inception-v3 and multimodal-LLM teacher); the depth \
             encoder, projection and refinement module were training-only and are not part of \
             this model.",
            self.cfg.refine_weight,
            self.teacher.names.join(", "),
            self.teacher.source,
            self.teacher_path.display(),
            self.cfg.align_weight,
            align::TEMPERATURE,
            encoder::EMBED_DIM,
            self.depth_encoder.frames()
        )
    }
}
