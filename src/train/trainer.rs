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
//! What a run is made of is [`super::config`]; its per-epoch records and
//! plots are [`super::history`].
//!
//! Determinism: every epoch draws its order, augmentations and frame
//! indices from a ChaCha8 RNG seeded with `(seed, epoch)`, so a run resumed
//! from a checkpoint continues exactly as it would have.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::augment::{self, AugmentConfig};
use super::config::{training_card, Method, TrainConfig};
use super::data::{self, Split};
use super::ema::Ema;
use super::history::{write_metrics, write_plots, EpochRecord, METRICS};
use super::loss::cross_entropy_smoothed;
use super::metrics::{Accumulator, Evaluation};
use super::optim::{grad_norm, OptimizerKind, Param, Schedule};
use crate::model::card::{ModelCard, Precision, Provenance, Sampling};
use crate::model::directory::{build_encoder, is_buffer, stored_dtype};
use crate::model::{Encoder, ModelDir};
use crate::source::Clip;
use crate::window::{self, PoseSeq, PrepareOptions, Prepared};
use crate::{Error, Result};

/// The order in which epoch `epoch` visits the training set: `per_epoch`
/// indices cycling through the `n_train` clips (`repeat` passes when
/// `per_epoch` is `n_train * repeat`), shuffled by the epoch's own RNG,
/// seeded from `seed` and `epoch` alone so that a resumed run repeats it.
/// The RNG is returned to draw the epoch's augmentations after the
/// shuffle. Every trainer (supervised, SkeletonMAE, SCD-Net) walks its
/// epochs this way.
pub fn epoch_order(
    seed: u64,
    epoch: usize,
    n_train: usize,
    per_epoch: usize,
) -> (ChaCha8Rng, Vec<usize>) {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
    let mut order: Vec<usize> = (0..per_epoch).map(|i| i % n_train.max(1)).collect();
    order.shuffle(&mut rng);
    (rng, order)
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
/// of their class probabilities. Each window is scored once per entry of
/// `views` (degrees about the vertical axis; none is one unrotated view),
/// and the mean runs over all of them
/// ([`window::input::clip_windows_input`]).
pub fn forward_clips(
    encoder: &dyn Encoder,
    card: &ModelCard,
    clips: &[Clip],
    views: &[f32],
    device: &Device,
) -> Result<Tensor> {
    let inputs = clips
        .iter()
        .map(|c| {
            window::input::clip_windows_input(
                PoseSeq::from_clip(c)?,
                card,
                EVAL_WINDOW_STRIDE,
                views,
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
        rows.push(window::input::log_mean_probs(&logits.narrow(0, start, c)?)?); // (1, K)
        start += c;
    }
    Ok(Tensor::cat(&rows, 0)?) // (N, K)
}

/// Scores `clips` with `encoder` in inference mode, through the card's
/// evaluation-time input path (its test-time views included).
pub fn evaluate(
    encoder: &dyn Encoder,
    card: &ModelCard,
    clips: &[Clip],
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation> {
    evaluate_views(encoder, card, clips, &card.input.views, batch_size, device)
}

/// [`evaluate`] with each clip scored from the given rotated views instead
/// of the card's ([`forward_clips`]; none is one plain view).
pub fn evaluate_views(
    encoder: &dyn Encoder,
    card: &ModelCard,
    clips: &[Clip],
    views: &[f32],
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation> {
    let mut acc = Accumulator::new(card.classes.len());
    for chunk in clips.chunks(batch_size.max(1)) {
        let logits = forward_clips(encoder, card, chunk, views, device)?;
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
        let (mut rng, order) = epoch_order(cfg.seed, epoch, n_train, per_epoch);
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
                    (logits, (ce + terms.weighted(&m.cfg)?)?)
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
