//! SkeletonMAE pretraining (Yan et al., ICCV 2023): a masked graph
//! autoencoder over single frames. Every frame of a training clip is a
//! graph on the layout's bones; whole body regions ([`mask`]) are replaced
//! by a learnable token, a GIN encoder and a one-layer GIN decoder
//! ([`model`]) rebuild the coordinates, and the scaled cosine error
//! ([`loss`], beta = 2) on the masked joints is minimised. Labels are not
//! read.
//!
//! The result is a safetensors file whose `gin.*` tensors are the encoder
//! of [`crate::model::skeletonmae`]; fine-tuning is the supervised trainer
//! with `--arch skeletonmae --init FILE`, which exports an ordinary model
//! directory.
//!
//! Frames come through the same path as supervised training
//! ([`super::trainer::train_sample`]: random sorted frame draw, the
//! configured augmentations, centering and min-max scaling).

pub mod loss;
pub mod mask;
pub mod model;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use self::mask::{mask_rows, MaskStrategy};
use self::model::MaskedAutoencoder;
use super::config::{self, TrainConfig};
use super::data::Split;
use super::optim::Schedule;
use super::trainer;
use crate::model::card::Architecture;
use crate::train::backend::seeded_var_builder;
use crate::{Error, Result};

/// A pretraining run.
#[derive(Debug, Clone)]
pub struct MaeConfig {
    /// Data, frames, epochs, batch (clips), optimizer, schedule,
    /// augmentations, seed, work directory; `arch` must be `skeletonmae`.
    pub base: TrainConfig,
    /// Which joints are masked.
    pub mask: MaskStrategy,
    /// The error's exponent (SkeletonMAE: 2).
    pub beta: f64,
    /// Where the pretrained weights go (default `WORK_DIR/mae.safetensors`).
    pub out: Option<PathBuf>,
}

/// What a pretraining run measured.
#[derive(Debug, Clone)]
pub struct MaeOutcome {
    /// Mean loss per epoch.
    pub losses: Vec<f64>,
    /// The weights file written.
    pub weights: PathBuf,
    /// Training wall time.
    pub wall_s: f64,
}

/// The pretrained weights' default file name in the work directory.
pub const WEIGHTS: &str = "mae.safetensors";

/// The pretraining loss history's file in the work directory.
pub const METRICS_CSV: &str = "mae-metrics.csv";
/// The loss curve against the epoch.
pub const CURVES_PNG: &str = "mae-curves.png";

/// Writes [`METRICS_CSV`] and [`CURVES_PNG`] into `dir`.
fn write_history(dir: &std::path::Path, losses: &[f64], beta: f64) -> Result<()> {
    let rows: Vec<Vec<f64>> = losses.iter().map(|l| vec![*l]).collect();
    crate::train::metrics::write_epoch_losses(&dir.join(METRICS_CSV), &["loss"], &rows)?;
    let name = format!("scaled cosine error, beta {beta}");
    crate::train::plot::loss_curves(
        &[crate::train::plot::Curve {
            name: &name,
            values: losses,
        }],
        None,
        "SkeletonMAE pretraining: masked joints' reconstruction",
        "loss",
        &dir.join(CURVES_PNG),
    )
}

/// Runs pretraining on the training clips of `split`.
pub fn pretrain(cfg: &MaeConfig, split: &Split, device: &Device) -> Result<MaeOutcome> {
    let card = config::training_card(&cfg.base)?;
    let Architecture::Skeletonmae(arch) = &card.architecture else {
        return Err(Error::config(
            "arch",
            "MAE pretraining needs --arch skeletonmae",
        ));
    };
    if split.train.is_empty() {
        return Err(Error::config("data", "no training clips"));
    }
    let layout = card.layout()?;
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, device, cfg.base.seed);
    let mae = MaskedAutoencoder::new(&arch.gin, layout, vb)?;
    let mut opt = cfg.base.build_optimizer(trainer::params(&varmap)?);
    let schedule = Schedule {
        base_lr: cfg.base.lr,
        warmup_epochs: cfg.base.warmup_epochs,
        epochs: cfg.base.epochs,
        decay: cfg.base.decay.clone(),
    };
    let dir = &cfg.base.work_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let out = cfg.out.clone().unwrap_or_else(|| dir.join(WEIGHTS));
    let (v, c) = (layout.num_joints(), arch.gin.in_channels);
    let n_train = split.train.len();
    let per_epoch = n_train * cfg.base.repeat.max(1);
    let steps = per_epoch.div_ceil(cfg.base.batch_size.max(1));
    let mut losses = Vec::new();
    let started = Instant::now();
    for epoch in 0..cfg.base.epochs {
        let t0 = Instant::now();
        let (mut rng, order) = trainer::epoch_order(cfg.base.seed, epoch, n_train, per_epoch);
        let mut sum = 0.0;
        for (step, batch) in order.chunks(cfg.base.batch_size.max(1)).enumerate() {
            opt.set_lr(schedule.lr(epoch as f64 + step as f64 / steps as f64));
            let mut coords = Vec::new();
            for &i in batch {
                let p = trainer::train_sample(&split.train[i], &card, &cfg.base.augment, &mut rng)?;
                coords.extend_from_slice(&p.joints); // (T, M, V, C)
            }
            let graphs = coords.len() / (v * c);
            let x = Tensor::from_vec(coords, (graphs, v, c), device)?; // (B, V, C)
            let m = Tensor::from_vec(
                mask_rows(&cfg.mask, layout, graphs, &mut rng),
                (graphs, v),
                device,
            )?;
            let z = mae.forward(&x, &m)?;
            let loss = loss::scaled_cosine_error(&z, &x, &m, cfg.beta)?;
            let l = crate::train::loss::finite_scalar(&loss, || {
                format!("MAE loss at epoch {} step {step}", epoch + 1)
            })?;
            opt.step(&loss.backward()?, 1.0)?;
            sum += l * batch.len() as f64;
        }
        let mean = sum / per_epoch as f64;
        log::info!(
            "MAE epoch {:>3}/{} lr {:.5} loss {:.5} ({:.1} s)",
            epoch + 1,
            cfg.base.epochs,
            opt.lr(),
            mean,
            t0.elapsed().as_secs_f64()
        );
        losses.push(mean);
        write_history(dir, &losses, cfg.beta)?;
        varmap.save(&out)?;
    }
    Ok(MaeOutcome {
        losses,
        weights: out,
        wall_s: started.elapsed().as_secs_f64(),
    })
}
