//! `skelact pretrain` (feature `train`): self-supervised pretraining;
//! argument handling and printing, the work is in `skelact::train::mae`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use skelact::train::mae::{self, mask::MaskStrategy, MaeConfig};
use skelact::train::optim::{Decay, OptimizerKind};
use skelact::train::scd::{self, ScdConfig};
use skelact::train::{data, Benchmark, TrainConfig};

use crate::train::data_root;

/// Options of `skelact pretrain`.
#[derive(clap::Args, Debug)]
pub struct PretrainArgs {
    /// Method: mae (SkeletonMAE masked graph autoencoder) or scd (SCD-Net
    /// contrastive pretraining, then linear evaluation and kNN).
    pub method: String,
    /// Data set whose training split is read (labels unused): nwucla or utd.
    #[arg(long, default_value = "nwucla")]
    pub dataset: String,
    /// Data root; default $SKELACT_DATA, else ../shared/data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Passes over the training set per epoch.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Clips per batch (every frame of a clip is one graph).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Learning rate (cosine decay to 1 % of it): mae AdamW (default
    /// 1e-3), scd SGD momentum 0.9 (default 0.01, SCD-Net's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// SCD-Net: keys per queue (paper 8192).
    #[arg(long, default_value_t = 8192)]
    pub queue: usize,
    /// SCD-Net: momentum of the key encoder (paper 0.999, tuned for
    /// NTU's hundreds of steps per epoch; a small data set takes few steps,
    /// and a key encoder that barely moves gives stale keys: 0.99 there).
    #[arg(long, default_value_t = scd::momentum::MOMENTUM)]
    pub momentum: f64,
    /// SCD-Net: GCN unit widths (paper 64,256,64).
    #[arg(long, default_value = "32,64,32")]
    pub gcn_widths: String,
    /// SCD-Net: branch token width (paper 2048).
    #[arg(long, default_value_t = 128)]
    pub model_dim: usize,
    /// SCD-Net: full-batch AdamW steps of the linear probe.
    #[arg(long, default_value_t = 300)]
    pub linear_epochs: usize,
    /// MAE masking: arm-leg (one arm + one leg, sides at random),
    /// regions:left_arm,right_leg, or random:N joints.
    #[arg(long, default_value = "arm-leg")]
    pub mask: String,
    /// MAE: exponent of the scaled cosine error.
    #[arg(long, default_value_t = mae::loss::BETA)]
    pub beta: f64,
    /// Frames per clip.
    #[arg(long, default_value_t = 52)]
    pub frames: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Load only this many clip files (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Work directory (metrics).
    #[arg(long, default_value = "runs/pretrain")]
    pub work_dir: PathBuf,
    /// Start from these weights (scd: a saved `scd.safetensors`; with
    /// `--epochs 0` only linear evaluation and kNN run).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Pretrained weights to write (default WORK_DIR/mae.safetensors).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn pretrain(a: PretrainArgs) -> Result<()> {
    let bench = Benchmark::by_name(&a.dataset)?;
    let mut base = TrainConfig::nwucla(data_root(a.data.clone()), a.work_dir.clone(), a.epochs);
    base.benchmark = bench;
    base.repeat = a.repeat;
    base.batch_size = a.batch_size;
    base.weight_decay = a.weight_decay;
    base.warmup_epochs = 0;
    base.frames = a.frames;
    base.seed = a.seed;
    base.limit = a.limit;
    base.init = a.init.clone();
    match a.method.as_str() {
        "mae" => pretrain_mae(a, base, bench),
        "scd" => pretrain_scd(a, base, bench),
        other => bail!("unknown pretraining method `{other}` (mae, scd)"),
    }
}

fn pretrain_mae(a: PretrainArgs, mut base: TrainConfig, bench: Benchmark) -> Result<()> {
    if a.init.is_some() {
        bail!("--init is for scd (MAE pretraining starts from fresh weights)");
    }
    let lr = a.lr.unwrap_or(1e-3);
    base.arch = "skeletonmae".into();
    base.lr = lr;
    base.optimizer = OptimizerKind::Adamw;
    base.decay = Decay::Cosine {
        min_lr: lr * 0.01,
        restarts: Vec::new(),
    };
    let cfg = MaeConfig {
        base,
        mask: MaskStrategy::by_name(&a.mask)?,
        beta: a.beta,
        out: a.out,
    };
    let split = data::load(bench, &cfg.base.data_root, cfg.base.limit)?;
    println!(
        "SkeletonMAE pretraining on {} training clips ({} frames each), mask {:?}",
        split.train.len(),
        cfg.base.frames,
        cfg.mask
    );
    let out = mae::pretrain(&cfg, &split, &Device::Cpu).context("MAE pretraining")?;
    println!(
        "loss {:.5} -> {:.5} in {} epochs, {:.0} s",
        out.losses.first().copied().unwrap_or(f64::NAN),
        out.losses.last().copied().unwrap_or(f64::NAN),
        out.losses.len(),
        out.wall_s
    );
    println!("pretrained weights: {}", out.weights.display());
    println!(
        "fine-tune: skelact train --dataset {} --arch skeletonmae --init {}",
        a.dataset,
        out.weights.display()
    );
    Ok(())
}

fn pretrain_scd(a: PretrainArgs, mut base: TrainConfig, bench: Benchmark) -> Result<()> {
    let lr = a.lr.unwrap_or(0.01);
    base.arch = "ctrgcn-edge".into();
    base.lr = lr;
    base.optimizer = OptimizerKind::Sgd;
    base.nesterov = false;
    base.decay = Decay::Cosine {
        min_lr: lr * 0.01,
        restarts: Vec::new(),
    };
    let widths = a
        .gcn_widths
        .split(',')
        .map(|w| w.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("--gcn-widths `{}`", a.gcn_widths))?;
    let mut encoder = scd::encoder::EncoderConfig::small();
    encoder.widths.gcn_channels = widths;
    encoder.widths.model_dim = a.model_dim;
    encoder.widths.ff_dim = 2 * a.model_dim;
    let cfg = ScdConfig {
        base,
        encoder,
        queue_len: a.queue,
        momentum: a.momentum,
        temperature: scd::loss::TEMPERATURE,
        linear_epochs: a.linear_epochs,
    };
    let split = data::load(bench, &cfg.base.data_root, cfg.base.limit)?;
    println!(
        "SCD-Net pretraining on {} training clips, {} test clips, queue {}, encoder {:?}",
        split.train.len(),
        split.test.len(),
        cfg.queue_len,
        cfg.encoder
    );
    let out = scd::pretrain(&cfg, &split, &Device::Cpu).context("SCD-Net pretraining")?;
    println!(
        "loss {:.4} -> {:.4} in {} epochs, {:.0} s",
        out.losses.first().copied().unwrap_or(f64::NAN),
        out.losses.last().copied().unwrap_or(f64::NAN),
        out.losses.len(),
        out.wall_s
    );
    println!(
        "linear evaluation top-1 {:.2} %, kNN (k = 1, cosine) top-1 {:.2} % on {} test clips",
        out.linear_top1 * 100.0,
        out.knn_top1 * 100.0,
        split.test.len()
    );
    println!("encoder weights: {}", out.weights.display());
    Ok(())
}
