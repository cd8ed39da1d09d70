//! SCD-Net self-supervised pretraining (Wu et al., "Spatio-temporal Clues
//! Disentanglement Network for Self-supervised Skeleton-based Action
//! Recognition", AAAI 2024), then its downstream protocols.
//!
//! MoCo-style: a query encoder ([`encoder::ScdEncoder`]) sees one
//! augmented view of a clip, a momentum copy of it ([`momentum`], m =
//! 0.999) sees another; their temporal, spatial and instance projections
//! meet in four InfoNCE terms ([`loss`], temperature 0.2) whose negatives
//! come from three queues of past keys ([`queue`]). Views ([`view`]):
//! random temporal crop of 10-100 % of the clip resized to the window,
//! rotation, left/right flip and shear each with p = 0.5, SCD-Net's
//! structure-guided spatial mask and tube temporal mask each with p = 0.5
//! ([`super::masking`]). Labels are not read during pretraining; after it,
//! [`eval`] reports linear evaluation and kNN retrieval on the benchmark's
//! split.

pub mod encoder;
pub mod eval;
pub mod loss;
pub mod momentum;
pub mod queue;
pub mod view;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use self::encoder::{EncoderConfig, ScdEncoder};
use self::loss::{scd_loss, QueueTensors};
use self::queue::Queue;
use super::data::Split;
use super::optim::Schedule;
use super::trainer::{self, TrainConfig};
use crate::model::ModelCard;
use crate::train::backend::seeded_var_builder;
use crate::window::{self, Prepared};
use crate::{Error, Result};

/// A pretraining run.
#[derive(Debug, Clone)]
pub struct ScdConfig {
    /// Data, frames, epochs, batch, optimizer (SCD-Net: SGD lr 0.01),
    /// schedule, seed, work directory. Its augmentations are not used
    /// (SCD-Net's views are [`view::scd_view`]).
    pub base: TrainConfig,
    /// Encoder widths.
    pub encoder: EncoderConfig,
    /// Keys per queue (SCD-Net: 8192).
    pub queue_len: usize,
    /// Key encoder momentum (SCD-Net: 0.999).
    pub momentum: f64,
    /// InfoNCE temperature (0.2).
    pub temperature: f64,
    /// Full-batch AdamW steps of the linear probe.
    pub linear_epochs: usize,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct ScdOutcome {
    /// Mean loss per epoch.
    pub losses: Vec<f64>,
    /// Linear evaluation top-1 on the test split.
    pub linear_top1: f64,
    /// kNN (k = 1, cosine) top-1 on the test split.
    pub knn_top1: f64,
    /// Pretraining wall time (s).
    pub wall_s: f64,
    /// The query encoder's weights.
    pub weights: PathBuf,
}

/// The query encoder's weights in the work directory.
pub const WEIGHTS: &str = "scd.safetensors";

fn build(cfg: &ScdConfig, card: &ModelCard, vm: &VarMap, device: &Device) -> Result<ScdEncoder> {
    ScdEncoder::new(
        &cfg.encoder,
        card.layout()?,
        card.temporal.frames,
        card.input.persons,
        card.input.channels(),
        seeded_var_builder(vm, device, cfg.base.seed),
    )
}

fn batch_input(views: &[Prepared], card: &ModelCard, device: &Device) -> Result<Tensor> {
    let refs: Vec<&Prepared> = views.iter().collect();
    window::to_input(&refs, card, device)
}

/// Pretrains on the training clips of `split`, then runs linear
/// evaluation and kNN on its test clips. With `base.init` the query
/// encoder starts from those weights; with zero epochs only the evaluation
/// runs (of a saved encoder, or of a random one as a reference).
pub fn pretrain(cfg: &ScdConfig, split: &Split, device: &Device) -> Result<ScdOutcome> {
    if split.train.is_empty() || split.test.is_empty() {
        return Err(Error::config(
            "data",
            "SCD-Net needs training and test clips",
        ));
    }
    if !(0.0..=1.0).contains(&cfg.momentum) {
        return Err(Error::config(
            "momentum",
            format!("{} is not in [0, 1]", cfg.momentum),
        ));
    }
    let card = trainer::training_card(&cfg.base)?;
    let layout = card.layout()?;
    let (vq, vk) = (VarMap::new(), VarMap::new());
    let query = build(cfg, &card, &vq, device)?;
    let key = build(cfg, &card, &vk, device)?;
    if let Some(init) = &cfg.base.init {
        let n = super::init::load_matching(&vq, init, device)?;
        log::info!("{n} tensors initialised from {}", init.display());
    }
    momentum::copy_into(&vk, &vq)?;
    let mut opt = cfg.base.build_optimizer(trainer::params(&vq)?);
    let schedule = Schedule {
        base_lr: cfg.base.lr,
        warmup_epochs: cfg.base.warmup_epochs,
        epochs: cfg.base.epochs,
        decay: cfg.base.decay.clone(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.base.seed);
    let p = cfg.encoder.proj_dim;
    let mut queues = [
        Queue::random(cfg.queue_len, p, &mut rng)?,
        Queue::random(cfg.queue_len, p, &mut rng)?,
        Queue::random(cfg.queue_len, p, &mut rng)?,
    ];
    let dir = &cfg.base.work_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let out = dir.join(WEIGHTS);
    let n_train = split.train.len();
    let per_epoch = n_train * cfg.base.repeat.max(1);
    let bs = cfg.base.batch_size.max(2);
    let steps = per_epoch.div_ceil(bs);
    let mut losses = Vec::new();
    let started = Instant::now();
    for epoch in 0..cfg.base.epochs {
        let t0 = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(
            cfg.base
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(epoch as u64),
        );
        let mut order: Vec<usize> = (0..per_epoch).map(|i| i % n_train).collect();
        order.shuffle(&mut rng);
        let mut sum = 0.0;
        for (step, batch) in order.chunks(bs).enumerate() {
            opt.set_lr(schedule.lr(epoch as f64 + step as f64 / steps as f64));
            let mut vq_views = Vec::with_capacity(batch.len());
            let mut vk_views = Vec::with_capacity(batch.len());
            for &i in batch {
                vq_views.push(view::scd_view(&split.train[i], &card, layout, &mut rng)?);
                vk_views.push(view::scd_view(&split.train[i], &card, layout, &mut rng)?);
            }
            let xq = batch_input(&vq_views, &card, device)?;
            let xk = batch_input(&vk_views, &card, device)?;
            let q = query.project(&query.features(&xq, true)?)?;
            let k = key.project(&key.features(&xk, true)?)?;
            let k = loss::Projections {
                temporal: k.temporal.detach(),
                spatial: k.spatial.detach(),
                instance: k.instance.detach(),
            };
            let (qt, qs, qi) = (
                queues[0].tensor(device)?,
                queues[1].tensor(device)?,
                queues[2].tensor(device)?,
            );
            let loss = scd_loss(
                &q,
                &k,
                &QueueTensors {
                    temporal: &qt,
                    spatial: &qs,
                    instance: &qi,
                },
                cfg.temperature,
            )?;
            let l = crate::train::loss::finite_scalar(&loss, || {
                format!("SCD-Net loss at epoch {} step {step}", epoch + 1)
            })?;
            opt.step(&loss.backward()?, 1.0)?;
            momentum::momentum_update(&vk, &vq, cfg.momentum)?;
            queues[0].enqueue(&k.temporal)?;
            queues[1].enqueue(&k.spatial)?;
            queues[2].enqueue(&k.instance)?;
            sum += l * batch.len() as f64;
        }
        let mean = sum / per_epoch as f64;
        log::info!(
            "SCD-Net epoch {:>3}/{} lr {:.5} loss {:.4} ({:.1} s)",
            epoch + 1,
            cfg.base.epochs,
            opt.lr(),
            mean,
            t0.elapsed().as_secs_f64()
        );
        losses.push(mean);
        crate::train::metrics::write_epoch_losses(&dir.join("scd-metrics.csv"), &losses)?;
        vq.save(&out)?;
    }
    let wall_s = started.elapsed().as_secs_f64();
    let (linear_top1, knn_top1) = eval::evaluate(
        &query,
        &card,
        &split.train,
        &split.test,
        cfg.linear_epochs,
        device,
        cfg.base.seed,
    )?;
    log::info!(
        "SCD-Net: linear {:.2} %, kNN {:.2} %",
        linear_top1 * 100.0,
        knn_top1 * 100.0
    );
    Ok(ScdOutcome {
        losses,
        linear_top1,
        knn_top1,
        wall_s,
        weights: out,
    })
}
