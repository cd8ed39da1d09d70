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

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use self::encoder::{EncoderConfig, ScdEncoder};
use self::loss::{scd_terms, sum_terms, QueueTensors, TERM_NAMES};
use self::queue::Queue;
use super::config::{self, TrainConfig};
use super::data::Split;
use super::optim::Schedule;
use super::plot::Curve;
use super::trainer;
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
    /// Mean loss per epoch (the sum of the four terms).
    pub losses: Vec<f64>,
    /// Each term's mean per epoch, in the order of [`loss::TERM_NAMES`].
    pub term_losses: Vec<[f64; 4]>,
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

/// The pretraining loss history's file in the work directory: `epoch,loss`
/// and the four terms.
pub const METRICS_CSV: &str = "scd-metrics.csv";
/// The four terms' curves against the epoch, with their chance level.
pub const CURVES_PNG: &str = "scd-curves.png";

/// Writes [`METRICS_CSV`] and [`CURVES_PNG`] into `dir`.
fn write_history(dir: &Path, losses: &[f64], terms: &[[f64; 4]], queue_len: usize) -> Result<()> {
    let mut columns = vec!["loss"];
    columns.extend(TERM_NAMES);
    let rows: Vec<Vec<f64>> = losses
        .iter()
        .zip(terms)
        .map(|(l, t)| std::iter::once(*l).chain(t.iter().copied()).collect())
        .collect();
    crate::train::metrics::write_epoch_losses(&dir.join(METRICS_CSV), &columns, &rows)?;
    let per_term: Vec<Vec<f64>> = (0..4)
        .map(|j| terms.iter().map(|t| t[j]).collect())
        .collect();
    let curves: Vec<Curve> = TERM_NAMES
        .iter()
        .zip(&per_term)
        .map(|(name, values)| Curve {
            name,
            values: values.as_slice(),
        })
        .collect();
    let chance = loss::chance_level(queue_len);
    let legend = format!("chance, ln(1 + {queue_len}) = {chance:.2}");
    crate::train::plot::loss_curves(
        &curves,
        Some((&legend, chance)),
        "SCD-Net pretraining: InfoNCE per term (query-key)",
        "InfoNCE",
        &dir.join(CURVES_PNG),
    )
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
    let card = config::training_card(&cfg.base)?;
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
    let mut term_losses = Vec::new();
    let started = Instant::now();
    for epoch in 0..cfg.base.epochs {
        let t0 = Instant::now();
        let (mut rng, order) = trainer::epoch_order(cfg.base.seed, epoch, n_train, per_epoch);
        let mut sum = [0.0; 4];
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
            let terms = scd_terms(
                &q,
                &k,
                &QueueTensors {
                    temporal: &qt,
                    spatial: &qs,
                    instance: &qi,
                },
                cfg.temperature,
            )?;
            let loss = sum_terms(&terms)?;
            crate::train::loss::finite_scalar(&loss, || {
                format!("SCD-Net loss at epoch {} step {step}", epoch + 1)
            })?;
            for (s, t) in sum.iter_mut().zip(&terms) {
                *s += t.to_scalar::<f32>()? as f64 * batch.len() as f64;
            }
            opt.step(&loss.backward()?, 1.0)?;
            momentum::momentum_update(&vk, &vq, cfg.momentum)?;
            queues[0].enqueue(&k.temporal)?;
            queues[1].enqueue(&k.spatial)?;
            queues[2].enqueue(&k.instance)?;
        }
        let epoch_terms = sum.map(|s| s / per_epoch as f64);
        let mean: f64 = epoch_terms.iter().sum();
        log::info!(
            "SCD-Net epoch {:>3}/{} lr {:.5} loss {:.4} ({:.1} s)",
            epoch + 1,
            cfg.base.epochs,
            opt.lr(),
            mean,
            t0.elapsed().as_secs_f64()
        );
        losses.push(mean);
        term_losses.push(epoch_terms);
        write_history(dir, &losses, &term_losses, cfg.queue_len)?;
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
        term_losses,
        linear_top1,
        knn_top1,
        wall_s,
        weights: out,
    })
}
