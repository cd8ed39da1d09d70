//! Training (feature `train`): the optimizers can fit and AdamW's step
//! matches its formula, every parameter is reached by the gradient,
//! batch-norm statistics are saved, augmentations keep what they must and
//! masks zero exactly what they chose, the loss matches a hand computation,
//! a short run on real NW-UCLA clips trains, evaluates and exports a
//! model directory, a bone-stream model fuses with the shipped joint
//! model, an early-fused model reads three streams from one input, and the shipped ensemble distils into a single model.
#![cfg(feature = "train")]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use skelact::model::card::{Normalization, Precision, Sampling};
use skelact::model::directory::{build_encoder, is_buffer};
use skelact::model::ModelDir;
use skelact::skeleton::graph;
use skelact::skeleton::Layout;
use skelact::train::augment::{self, AugmentConfig};
use skelact::train::loss::cross_entropy_smoothed;
use skelact::train::masking;
use skelact::train::optim::{AdamW, Param, Schedule, Sgd};
use skelact::train::{backend, config, data, history, trainer, Benchmark, TrainConfig};
use skelact::window::{self, PoseSeq, PrepareOptions};

/// Exact to f32 rounding of a few operations.
const EXACT: f64 = 1e-6;

fn tiny_config(frames: usize) -> TrainConfig {
    let mut cfg = TrainConfig::nwucla("../shared/data".into(), std::env::temp_dir(), 1);
    cfg.frames = frames;
    cfg
}

/// A seeded random `(N, 3, T, 20, 1)` input, uniform in [-1, 1).
fn random_input(n: usize, t: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * 3 * t * 20)
        .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
        .collect();
    Tensor::from_vec(v, (n, 3, t, 20, 1), &Device::Cpu).unwrap()
}

#[test]
fn edge_model_overfits_a_tiny_batch() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = config::training_card(&tiny_config(12))?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev, 1);
    let model = build_encoder(&card.architecture, vb)?;
    let x = random_input(8, 12, 0);
    let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &dev)?;
    let mut sgd = Sgd {
        params: trainer::params(&varmap)?,
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.0,
    };
    let mut acc = 0.0;
    for _ in 0..60 {
        let logits = model.forward_t(&x, true)?;
        let loss = cross_entropy_smoothed(&logits, &y, 0.0)?;
        sgd.step(&loss.backward()?, 1.0)?;
        let pred: Vec<u32> = logits.argmax(1)?.to_vec1()?;
        acc = pred.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / 8.0;
        if acc == 1.0 {
            break;
        }
    }
    assert_eq!(
        acc, 1.0,
        "training accuracy on 8 fixed samples after 60 steps"
    );
    Ok(())
}

#[test]
fn every_parameter_receives_a_gradient() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = config::training_card(&tiny_config(8))?;
    // Plain VarMap: every tensor of the architecture is a variable.
    let varmap = VarMap::new();
    let model = build_encoder(
        &card.architecture,
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
    )?;
    let x = random_input(4, 8, 1);
    let y = Tensor::new(&[0u32, 1, 2, 3], &dev)?;
    let loss = cross_entropy_smoothed(&model.forward_t(&x, true)?, &y, 0.1)?;
    let grads = loss.backward()?;
    let data = varmap.data().lock().unwrap();
    let mut missing: Vec<&String> = data
        .iter()
        .filter(|(k, v)| !is_buffer(k) && grads.get(v.as_tensor()).is_none())
        .map(|(k, _)| k)
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    // The training backend: everything it keeps as a variable is trained.
    let varmap = VarMap::new();
    let (vb, backend) = backend::var_builder(&varmap, &card.architecture, &dev, 1);
    let model = build_encoder(&card.architecture, vb)?;
    let loss = cross_entropy_smoothed(&model.forward_t(&x, true)?, &y, 0.1)?;
    let grads = loss.backward()?;
    let params = trainer::params(&varmap)?;
    for p in &params {
        assert!(
            grads.get(p.var.as_tensor()).is_some(),
            "no gradient for {}",
            p.name
        );
    }
    // Frozen tensors are biases only, never BN parameters.
    for name in backend.frozen()?.keys() {
        assert!(name.ends_with(".bias"), "{name} frozen");
        let stem = name.trim_end_matches(".bias");
        assert!(
            !varmap
                .data()
                .lock()
                .unwrap()
                .contains_key(&format!("{stem}.running_mean")),
            "{name} is a batch norm's bias"
        );
    }
    Ok(())
}

#[test]
fn batch_norm_statistics_are_saved_variables() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = config::training_card(&tiny_config(8))?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev, 1);
    let model = build_encoder(&card.architecture, vb)?;
    let name = "data_bn.running_mean";
    let before = varmap.data().lock().unwrap()[name].as_tensor().copy()?;
    let x = (random_input(4, 8, 2) + 3.0)?;
    model.forward_t(&x, true)?;
    let after = varmap.data().lock().unwrap()[name].as_tensor().copy()?;
    let moved = (after - &before)?.abs()?.max(0)?.to_scalar::<f32>()?;
    assert!(
        moved > 0.1,
        "running mean moved by {moved} after a batch of mean 3"
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ckpt.safetensors");
    varmap.save(&path)?;
    let saved = candle_core::safetensors::load(&path, &dev)?;
    assert!(saved.keys().any(|k| k.ends_with("running_var")));
    let s = saved[name].to_vec1::<f32>()?;
    let a = varmap.data().lock().unwrap()[name]
        .as_tensor()
        .to_vec1::<f32>()?;
    assert_eq!(s, a);
    Ok(())
}

#[test]
fn flip_twice_is_identity_and_swaps_sides() {
    let layout = Layout::kinect20_ucla();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f32> = (0..2 * 20 * 3)
        .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
        .collect();
    let mut y = x.clone();
    augment::flip(&mut y, layout);
    assert_ne!(x, y);
    let l = layout.joint_index("left_hand").unwrap();
    let r = layout.joint_index("right_hand").unwrap();
    assert_eq!(y[l * 3], -x[r * 3]);
    assert_eq!(y[l * 3 + 1], x[r * 3 + 1]);
    augment::flip(&mut y, layout);
    assert_eq!(x, y);
}

#[test]
fn rotation_preserves_bone_lengths() {
    let layout = Layout::kinect20_ucla();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f32> = (0..3 * 20 * 3)
        .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
        .collect();
    let aug = AugmentConfig {
        rotate_xy_deg: 60,
        rotate_z_deg: 30.0,
        scale: [1.0, 1.0],
        ..AugmentConfig::none()
    };
    let lengths = |x: &[f32]| -> Vec<f32> {
        let mut out = Vec::new();
        for frame in x.chunks_exact(20 * 3) {
            for (j, &p) in layout.parents().iter().enumerate() {
                let d: f32 = (0..3)
                    .map(|a| (frame[j * 3 + a] - frame[p * 3 + a]).powi(2))
                    .sum();
                out.push(d.sqrt());
            }
        }
        out
    };
    for _ in 0..5 {
        let mut y = x.clone();
        aug.apply(&mut y, layout, &mut rng);
        assert_ne!(x, y);
        for (a, b) in lengths(&x).iter().zip(lengths(&y)) {
            assert!((a - b).abs() < 1e-5, "bone length {a} became {b}");
        }
    }
}

#[test]
fn label_smoothed_cross_entropy_matches_hand_computation() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // logits (0, ln 3): p = (1/4, 3/4).
    let logits = Tensor::new(&[[0f32, 3f32.ln()]], &dev)?;
    let y = Tensor::new(&[1u32], &dev)?;
    let nll = -(0.75f64.ln());
    let uniform = 0.5 * (4f64.ln() - 0.75f64.ln());
    let got = cross_entropy_smoothed(&logits, &y, 0.0)?.to_scalar::<f32>()? as f64;
    assert!((got - nll).abs() < EXACT, "{got} vs {nll}");
    let got = cross_entropy_smoothed(&logits, &y, 0.1)?.to_scalar::<f32>()? as f64;
    let want = 0.9 * nll + 0.1 * uniform;
    assert!((got - want).abs() < EXACT, "{got} vs {want}");
    Ok(())
}

#[test]
fn schedule_warms_up_and_decays() {
    let s = Schedule {
        base_lr: 0.1,
        warmup_epochs: 2,
        epochs: 10,
        decay: skelact::train::optim::Decay::Cosine {
            min_lr: 0.0,
            restarts: Vec::new(),
        },
    };
    assert!((s.lr(0.0) - 0.05).abs() < 1e-12);
    assert!((s.lr(2.0) - 0.1).abs() < 1e-12);
    assert!(s.lr(6.0) < 0.1 && s.lr(6.0) > 0.0);
    assert!(s.lr(10.0).abs() < 1e-12);
}

#[test]
fn model_input_centers_and_scales() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = config::training_card(&tiny_config(10))?;
    assert_eq!(card.normalization, Normalization::CenterFirstFrameMinMax);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let joints: Vec<f32> = (0..7 * 20 * 3)
        .map(|_| rand::Rng::random_range(&mut rng, 0.5..2.5))
        .collect();
    let poses = PoseSeq::new(&joints, 7, 1, 20)?;
    let x = window::model_input(poses, &card, &dev)?;
    assert_eq!(x.dims(), &[1, 3, 10, 20, 1]);
    let v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|a| (-1.0..=1.0).contains(a)));
    // Centering alone: the center joint of frame 0 is the origin.
    let mut centered = card.clone();
    centered.normalization = Normalization::CenterFirstFrame;
    let p = window::prepare(poses, &centered, PrepareOptions::default())?;
    let c = centered.input.center_joint;
    assert_eq!(&p.joints[c * 3..c * 3 + 3], &[0.0, 0.0, 0.0]);
    Ok(())
}

/// The data root holding `nw-ucla/all_sqe`, when `../shared/data` is there.
fn nwucla_root() -> Option<std::path::PathBuf> {
    let clips = common::shared_data("nw-ucla/all_sqe")?;
    Some(clips.parent()?.parent()?.to_path_buf())
}

/// A few steps on 24 real NW-UCLA clips: 16 frames, batch 8, one pass per
/// epoch, no progress bar.
fn tiny_real_config(
    root: std::path::PathBuf,
    work: std::path::PathBuf,
    epochs: usize,
) -> TrainConfig {
    let mut cfg = TrainConfig::nwucla(root, work, epochs);
    cfg.limit = Some(24);
    cfg.frames = 16;
    cfg.batch_size = 8;
    cfg.repeat = 1;
    cfg.progress = false;
    cfg
}

#[test]
fn short_run_on_real_clips_trains_evaluates_and_exports() -> anyhow::Result<()> {
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let mut cfg = tiny_real_config(root, work.path().join("run"), 2);
    // Epoch 1 is not evaluated: its NaN test metrics must survive resume.
    cfg.eval_every = 2;
    cfg.out = Some(work.path().join("model"));
    cfg.command = "tests/train.rs".into();
    let split = data::load(Benchmark::NwuclaCrossView, &cfg.data_root, cfg.limit)?;
    assert_eq!(split.train.len() + split.test.len(), 24);
    assert!(split
        .train
        .iter()
        .all(|c| matches!(c.meta.camera, Some(1) | Some(2))));
    assert!(split.test.iter().all(|c| c.meta.camera == Some(3)));
    let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    assert_eq!(out.history.len(), 2);
    assert_eq!(out.evaluation.samples, split.test.len());
    assert!(out.history.iter().all(|r| r.train_loss.is_finite()));
    assert!(work.path().join("run/metrics.csv").exists());
    for png in ["curves.png", "confusion.png"] {
        assert!(work.path().join("model").join(png).exists(), "{png}");
    }
    // The exported directory loads, is f16, and scores like the trainer said.
    let dir = ModelDir::open(work.path().join("model"))?;
    assert_eq!(dir.card().precision, Precision::F16);
    assert_eq!(dir.card().provenance.metrics["top1"], out.evaluation.top1);
    let top1 = common::reloaded_top1(&dir, &split.test, Some(DType::F32))?;
    assert_eq!(top1, out.evaluation.top1);
    // Resume: a third epoch continues from the checkpoint.
    cfg.epochs = 3;
    let more = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    assert_eq!(more.history.len(), 3);
    assert_eq!(more.history[0].train_loss, out.history[0].train_loss);
    assert!(more.history[0].test_top1.is_nan());
    Ok(())
}

/// `--normalization center-facing-min-max` on real clips: the card records
/// it, the export reads it back, and the export scored from its own card
/// gives the trainer's accuracy (training and serving share the turn).
#[test]
fn facing_normalization_is_recorded_and_served() -> anyhow::Result<()> {
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let mut cfg = tiny_real_config(root, work.path().join("run"), 1);
    cfg.normalization = Normalization::CenterFacingMinMax;
    cfg.out = Some(work.path().join("model"));
    let split = data::load(Benchmark::NwuclaCrossView, &cfg.data_root, cfg.limit)?;
    let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    let dir = ModelDir::open(work.path().join("model"))?;
    assert_eq!(dir.card().normalization, Normalization::CenterFacingMinMax);
    let top1 = common::reloaded_top1(&dir, &split.test, Some(DType::F32))?;
    assert_eq!(top1, out.evaluation.top1);
    Ok(())
}

/// `--restart 2:0.05` in a real run: the rate decays to the floor over the
/// first cycle, jumps back up at epoch 2 and decays again.
#[test]
fn warm_restart_raises_the_rate_in_a_real_run() -> anyhow::Result<()> {
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let mut cfg = tiny_real_config(root, work.path().join("run"), 4);
    cfg.lr = 0.1;
    cfg.warmup_epochs = 0;
    cfg.eval_every = 4;
    cfg.decay = skelact::train::optim::Decay::Cosine {
        min_lr: 0.0,
        restarts: vec![skelact::train::optim::Restart::parse("2:0.05")?],
    };
    let split = data::load(Benchmark::NwuclaCrossView, &cfg.data_root, cfg.limit)?;
    let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    // Each epoch's last step (two steps per epoch: at e + 0.5): cycle 1
    // spans epochs [0, 2) from 0.1, cycle 2 [2, 4) from 0.05.
    let lr: Vec<f64> = out.history.iter().map(|r| r.lr).collect();
    let cosine = |lr0: f64, p: f64| 0.5 * lr0 * (1.0 + (std::f64::consts::PI * p).cos());
    let want = [
        cosine(0.1, 0.25),
        cosine(0.1, 0.75),
        cosine(0.05, 0.25),
        cosine(0.05, 0.75),
    ];
    assert_eq!(lr.len(), 4);
    for (got, want) in lr.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "{lr:?}");
    }
    assert!(lr[2] > 2.0 * lr[1], "no restart: {lr:?}");
    Ok(())
}

/// A deterministic one-person Kinect-20 clip of `frames` frames.
fn synthetic_clip(frames: usize) -> skelact::source::Clip {
    skelact::source::Clip {
        name: "synthetic".into(),
        label: 0,
        layout: "kinect20-ucla",
        fps: 30.0,
        num_frames: frames,
        num_persons: 1,
        num_joints: 20,
        joints: (0..frames * 20 * 3)
            .map(|i| (i as f32 * 0.37).sin())
            .collect(),
        meta: Default::default(),
    }
}

/// `--sampling window`: the card records the contract, and a sample is a
/// window of consecutive frames (a short clip's frames, then zero frames),
/// taken through the serving path.
#[test]
fn window_sampling_takes_consecutive_frames_and_records_the_contract() -> anyhow::Result<()> {
    let mut cfg = tiny_config(10);
    cfg.sampling = Sampling::Window;
    let card = config::training_card(&cfg)?;
    assert_eq!(card.temporal.sampling, Sampling::Window);
    let aug = AugmentConfig::none();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let long = synthetic_clip(30);
    for _ in 0..5 {
        let (p, idx) = trainer::train_sample_indexed(&long, &card, &aug, &mut rng)?;
        let s = idx[0].expect("a 30-frame clip fills the window");
        assert_eq!(idx, (s..s + 10).map(Some).collect::<Vec<_>>());
        let want = window::prepare(
            PoseSeq::from_clip(&long)?,
            &card,
            PrepareOptions {
                frames: Some(&idx),
                transform: None,
            },
        )?;
        assert_eq!(p, want);
    }
    let (_, idx) = trainer::train_sample_indexed(&synthetic_clip(6), &card, &aug, &mut rng)?;
    let mut want: Vec<Option<usize>> = (0..6).map(Some).collect();
    want.extend([None; 4]);
    assert_eq!(idx, want);
    Ok(())
}

/// Offline, a window-trained model scores a clip as the stream does: the
/// log of the mean class probability over the stream's windows.
#[test]
fn window_models_are_evaluated_over_the_streams_windows() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut cfg = tiny_config(10);
    cfg.sampling = Sampling::Window;
    let card = config::training_card(&cfg)?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev, 1);
    let model = build_encoder(&card.architecture, vb)?;
    let clip = synthetic_clip(30);
    let got = trainer::forward_clips(
        model.as_ref(),
        &card,
        std::slice::from_ref(&clip),
        &[],
        &dev,
    )?;
    let windows = window::input::stream_windows(30, 10, trainer::EVAL_WINDOW_STRIDE);
    assert_eq!(windows.len(), 3); // ending at frames 9, 17, 25
    let mut mean = Tensor::zeros((1, 10), DType::F32, &dev)?;
    for idx in &windows {
        let opts = PrepareOptions {
            frames: Some(idx),
            transform: None,
        };
        let p = window::prepare(PoseSeq::from_clip(&clip)?, &card, opts)?;
        let x = window::to_input(&[&p], &card, &dev)?;
        let logits = model.forward_t(&x, false)?;
        mean = (mean + candle_nn::ops::softmax(&logits, 1)?)?;
    }
    // compared as probabilities: a fresh model may give some class 0
    let want = (mean / 3.0)?;
    let err = (got.exp()? - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(err < 1e-5, "{err}");
    Ok(())
}

/// Multi-view scoring: each view is the clip rotated about the vertical
/// axis where the training view transform acts (CTR-GCN's `Ry`), and the
/// clip's score is the log of the mean class probability over the views.
#[test]
fn views_average_the_probabilities_of_rotated_copies() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = config::training_card(&tiny_config(10))?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev, 1);
    let model = build_encoder(&card.architecture, vb)?;
    let clip = synthetic_clip(17);
    let clips = std::slice::from_ref(&clip);
    let views = [-30.0f32, 0.0, 45.0];
    let got = trainer::forward_clips(model.as_ref(), &card, clips, &views, &dev)?; // (1, K)
    let mut mean = Tensor::zeros((1, 10), DType::F32, &dev)?;
    for deg in views {
        let mut rotate = |x: &mut [f32], _t: usize, _m: usize, _v: usize| {
            augment::apply_linear(x, &augment::rot_y(deg.to_radians()))
        };
        let opts = PrepareOptions {
            frames: None,
            transform: Some(&mut rotate),
        };
        let p = window::prepare(PoseSeq::from_clip(&clip)?, &card, opts)?;
        let logits = model.forward_t(&window::to_input(&[&p], &card, &dev)?, false)?;
        mean = (mean + candle_nn::ops::softmax(&logits, 1)?)?;
    }
    let want = (mean / 3.0)?;
    let err = (got.exp()? - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(err < 1e-5, "{err}");
    // one view of 0 degrees is the plain score; a rotated one is not
    let plain = trainer::forward_clips(model.as_ref(), &card, clips, &[], &dev)?;
    let zero = trainer::forward_clips(model.as_ref(), &card, clips, &[0.0], &dev)?;
    let turned = trainer::forward_clips(model.as_ref(), &card, clips, &[45.0], &dev)?;
    let diff = |a: &Tensor, b: &Tensor| -> anyhow::Result<f32> {
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?)
    };
    assert!(diff(&plain.exp()?, &zero.exp()?)? < 1e-6);
    assert!(diff(&plain, &turned)? > 1e-4);
    Ok(())
}

/// Fused evaluation with test-time views goes the way serving does: per
/// view the weighted sum of the members' logits, then the mean of the
/// views' probabilities (not the weighted sum of each model's own
/// view-averaged score). Checked against that sum built from one-view
/// scores of each model.
#[test]
fn fused_views_score_per_view_sums_as_serving_does() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = config::training_card(&tiny_config(10))?;
    let clips = vec![synthetic_clip(17), synthetic_clip(9)];
    let (views, weights) = ([-30.0f32, 20.0], [0.6, 0.4]);
    let tmp = tempfile::tempdir()?;
    let mut members = Vec::new();
    for seed in [1, 2] {
        let dir = tmp.path().join(format!("m{seed}"));
        ModelDir::create(&dir, &card, &common::seeded_weights(&card, seed))?;
        members.push(ModelDir::open(&dir)?.load(&dev, Some(DType::F32))?);
    }
    // per view: sum_m w_m logits_m (one plain clip-resample input: raw logits)
    let mut want = Tensor::zeros((2, 10), DType::F32, &dev)?;
    for deg in views {
        let mut sum = Tensor::zeros((2, 10), DType::F32, &dev)?;
        for (m, w) in members.iter().zip(weights) {
            let l = trainer::forward_clips(m.encoder.as_ref(), &card, &clips, &[deg], &dev)?;
            sum = (sum + (l * w)?)?;
        }
        want = (want + candle_nn::ops::softmax(&sum, 1)?)?;
    }
    let want = (want / 2.0)?.to_vec2::<f32>()?;
    let ensemble = skelact::model::Ensemble::new(members, Some(weights.to_vec()))?;
    let got = skelact::train::fusion::ensemble_scores(&ensemble, &clips, &views, &dev)?;
    for (a, b) in got.fused.iter().flatten().zip(want.iter().flatten()) {
        assert!((a.exp() - b).abs() < 1e-5, "{} {b}", a.exp());
    }
    // each member's own scores, from the same passes, as it scores alone
    assert_eq!(got.members.len(), 2);
    for (m, own) in ensemble.members().iter().zip(&got.members) {
        let alone =
            skelact::train::fusion::scores(m.encoder.as_ref(), &card, &clips, &views, 64, &dev)?;
        for (a, b) in own.iter().flatten().zip(alone.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
    }
    Ok(())
}

#[test]
fn training_samples_are_deterministic_per_seed() -> anyhow::Result<()> {
    let card = config::training_card(&tiny_config(10))?;
    let clip = synthetic_clip(6);
    let aug = AugmentConfig::default();
    let a = trainer::train_sample(&clip, &card, &aug, &mut ChaCha8Rng::seed_from_u64(9))?;
    let b = trainer::train_sample(&clip, &card, &aug, &mut ChaCha8Rng::seed_from_u64(9))?;
    let c = trainer::train_sample(&clip, &card, &aug, &mut ChaCha8Rng::seed_from_u64(10))?;
    assert_eq!(a, b);
    assert_ne!(a, c);
    Ok(())
}

#[test]
fn adamw_steps_match_the_formula() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // Two parameters: a decayed weight and an undecayed bias.
    let w = Var::new(&[[2.0f32]], &dev)?;
    let b = Var::new(&[0.5f32], &dev)?;
    let param = |name: &str, var: &Var, decay| Param {
        name: name.into(),
        var: var.clone(),
        decay,
        momentum: None,
    };
    let (lr, wd, (b1, b2), eps) = (0.1, 0.5, (0.8, 0.9), 1e-3);
    let mut opt = AdamW {
        betas: (b1, b2),
        eps,
        ..AdamW::new(vec![param("w", &w, true), param("b", &b, false)], lr, wd)
    };
    // Loss = gw * w + gb * b, so the gradients are (gw, gb).
    let grads_of = |gw: f32, gb: f32| -> anyhow::Result<_> {
        let loss =
            ((w.as_tensor() * gw as f64)?.sum_all()? + (b.as_tensor() * gb as f64)?.sum_all()?)?;
        Ok(loss.backward()?)
    };
    // The formula in f64, by hand.
    let (mut pw, mut pb) = (2.0f64, 0.5f64);
    let (mut mw, mut vw, mut mb, mut vb) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (t, (gw, gb)) in [(3.0f64, -0.25f64), (-1.0, 0.75)].into_iter().enumerate() {
        let t = t as i32 + 1;
        opt.step(&grads_of(gw as f32, gb as f32)?, 1.0)?;
        pw *= 1.0 - lr * wd;
        mw = b1 * mw + (1.0 - b1) * gw;
        vw = b2 * vw + (1.0 - b2) * gw * gw;
        pw -= lr * (mw / (1.0 - b1.powi(t))) / ((vw / (1.0 - b2.powi(t))).sqrt() + eps);
        mb = b1 * mb + (1.0 - b1) * gb;
        vb = b2 * vb + (1.0 - b2) * gb * gb;
        pb -= lr * (mb / (1.0 - b1.powi(t))) / ((vb / (1.0 - b2.powi(t))).sqrt() + eps);
        let got_w = w.as_tensor().flatten_all()?.to_vec1::<f32>()?[0] as f64;
        let got_b = b.as_tensor().to_vec1::<f32>()?[0] as f64;
        assert!((got_w - pw).abs() < EXACT, "step {t}: w {got_w} vs {pw}");
        assert!((got_b - pb).abs() < EXACT, "step {t}: b {got_b} vs {pb}");
    }
    assert_eq!(opt.steps, 2);
    // The bias was not decayed: with wd = 0 it moves the same way.
    let b0 = Var::new(&[0.5f32], &dev)?;
    let mut plain = AdamW {
        betas: (b1, b2),
        eps,
        ..AdamW::new(vec![param("b", &b0, true)], lr, 0.0)
    };
    for gb in [-0.25f64, 0.75] {
        let loss = (b0.as_tensor() * gb)?.sum_all()?;
        plain.step(&loss.backward()?, 1.0)?;
    }
    assert_eq!(
        b0.as_tensor().to_vec1::<f32>()?,
        b.as_tensor().to_vec1::<f32>()?
    );
    Ok(())
}

#[test]
fn edge_model_overfits_a_tiny_batch_with_adamw() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = config::training_card(&tiny_config(12))?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev, 1);
    let model = build_encoder(&card.architecture, vb)?;
    let x = random_input(8, 12, 0);
    let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &dev)?;
    let mut opt = AdamW::new(trainer::params(&varmap)?, 0.01, 0.01);
    let mut acc = 0.0;
    for _ in 0..60 {
        let logits = model.forward_t(&x, true)?;
        let loss = cross_entropy_smoothed(&logits, &y, 0.0)?;
        opt.step(&loss.backward()?, 1.0)?;
        let pred: Vec<u32> = logits.argmax(1)?.to_vec1()?;
        acc = pred.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / 8.0;
        if acc == 1.0 {
            break;
        }
    }
    assert_eq!(
        acc, 1.0,
        "training accuracy on 8 fixed samples after 60 AdamW steps"
    );
    Ok(())
}

/// The joints SCD-Net's spatial mask should pick for these seeds, computed
/// from hop distances instead of a matrix product: walks of length 2 with
/// self-loops number `1 + degree` back to the seed, 2 to a neighbour, and
/// the common neighbours (1 in a tree) to a joint 2 hops away.
fn expected_spatial_mask(layout: &Layout, seeds: &[usize], count: usize) -> Vec<usize> {
    let v = layout.num_joints();
    let hop = graph::hop_distance(layout, 2);
    let degree: Vec<usize> = (0..v)
        .map(|j| (0..v).filter(|&k| hop[j * v + k] == 1).count())
        .collect();
    let mut weight = vec![0usize; v];
    for &s in seeds {
        for (j, w) in weight.iter_mut().enumerate() {
            *w += match hop[s * v + j] {
                0 => 1 + degree[s],
                1 => 2,
                2 => 1,
                _ => 0,
            };
        }
    }
    // Largest weights; ties to the higher index.
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by_key(|&j| (std::cmp::Reverse(weight[j]), std::cmp::Reverse(j)));
    let mut out = order[..count].to_vec();
    out.sort_unstable();
    out
}

#[test]
fn spatial_mask_zeroes_exactly_the_chosen_joints() {
    for layout in [
        Layout::kinect20_ucla(),
        Layout::kinect20_utd(),
        Layout::ntu25(),
    ] {
        let v = layout.num_joints();
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            // The seeds the mask will draw, from a copy of the RNG.
            let mut copy = rng.clone();
            let seeds: Vec<usize> = (0..5)
                .map(|_| rand::Rng::random_range(&mut copy, 0..v))
                .collect();
            let chosen = masking::structure_guided_joints(layout, 5, 8, &mut rng);
            assert_eq!(chosen.len(), 8);
            assert_eq!(
                chosen,
                expected_spatial_mask(layout, &seeds, 8),
                "{} seed {seed}",
                layout.name()
            );
            // Zeroing touches those joints in every frame and person, nothing else.
            let (t, m) = (6, 2);
            let mut x = vec![1.0f32; t * m * v * 3];
            masking::zero_joints(&mut x, v, &chosen);
            for (i, a) in x.iter().enumerate() {
                let j = (i / 3) % v;
                assert_eq!(*a == 0.0, chosen.contains(&j), "value {i} (joint {j})");
            }
        }
    }
}

#[test]
fn tube_mask_zeroes_whole_tubes_at_the_ratio() {
    for (frames, tube, ratio, tubes, masked) in [
        (64, 4, 0.375, 16, 6),
        (52, 4, 0.375, 13, 5),
        (50, 4, 0.5, 13, 7),
    ] {
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let f = masking::tube_frames(frames, tube, ratio, &mut rng);
            let hit: std::collections::BTreeSet<usize> = f.iter().map(|i| i / tube).collect();
            assert_eq!(hit.len(), masked, "{masked} of {tubes} tubes");
            assert!(hit.iter().all(|&k| k < tubes));
            // Whole tubes: every frame of a hit tube, and only those.
            let want: Vec<usize> = hit
                .iter()
                .flat_map(|&k| k * tube..((k + 1) * tube).min(frames))
                .collect();
            assert_eq!(f, want);
            let stride = 20 * 3;
            let mut x = vec![1.0f32; frames * stride];
            masking::zero_frames(&mut x, stride, &f);
            for (k, frame) in x.chunks_exact(stride).enumerate() {
                let zero = frame.iter().all(|&a| a == 0.0);
                let one = frame.iter().all(|&a| a == 1.0);
                assert!(if f.contains(&k) { zero } else { one }, "frame {k}");
            }
        }
    }
}

#[test]
fn masks_are_deterministic_per_seed_and_off_by_default() {
    let layout = Layout::kinect20_ucla();
    let (t, v) = (52, 20);
    let aug = AugmentConfig {
        spatial_mask_p: 1.0,
        temporal_mask_p: 1.0,
        ..AugmentConfig::none()
    };
    let masked = |seed: u64| {
        let mut x = vec![1.0f32; t * v * 3];
        aug.apply_masks(&mut x, t, layout, &mut ChaCha8Rng::seed_from_u64(seed));
        x
    };
    assert_eq!(masked(7), masked(7));
    assert_ne!(masked(7), masked(8));
    let x = masked(7);
    let zero_frames = x
        .chunks_exact(v * 3)
        .filter(|f| f.iter().all(|&a| a == 0.0))
        .count();
    assert_eq!(zero_frames, 20, "5 of 13 tubes of 4 frames");
    // Outside the masked frames, the same 8 joints are zero in every frame.
    let joints: Vec<std::collections::BTreeSet<usize>> = x
        .chunks_exact(v * 3)
        .filter(|f| f.iter().any(|&a| a != 0.0))
        .map(|f| {
            (0..v)
                .filter(|&j| f[j * 3..j * 3 + 3] == [0.0; 3])
                .collect()
        })
        .collect();
    assert!(joints.iter().all(|s| s.len() == 8 && *s == joints[0]));
    // Off by default: nothing zeroed, no random draws.
    let mut x = vec![1.0f32; t * v * 3];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    AugmentConfig::default().apply_masks(&mut x, t, layout, &mut rng);
    assert!(x.iter().all(|&a| a == 1.0));
    assert_eq!(
        rand::Rng::random::<u64>(&mut rng),
        rand::Rng::random::<u64>(&mut ChaCha8Rng::seed_from_u64(7))
    );
}

#[test]
fn plots_are_png_files_of_the_shipped_run() -> anyhow::Result<()> {
    let model = std::path::Path::new("models/ctrgcn-edge-nwucla");
    let card = ModelDir::open(model)?;
    let metrics = &card.card().provenance.metrics;
    let history = history::read_metrics(&model.join("metrics.csv"))?;
    // One row per epoch, the last one evaluated with the shipped weights.
    assert_eq!(history.len() as f64, metrics["epochs"]);
    let last = history.last().expect("rows");
    assert!((last.test_top1 - metrics["top1"]).abs() < 1e-5);
    let report = std::fs::read_to_string(model.join("evaluation.txt"))?;
    let confusion = skelact::train::metrics::parse_confusion(&report).expect("confusion");
    assert_eq!(confusion.len(), 10);
    let total = confusion.iter().flatten().sum::<usize>();
    assert_eq!(total as f64, metrics["test_samples"]);
    let correct: usize = (0..10).map(|i| confusion[i][i]).sum();
    assert!((correct as f64 / total as f64 - metrics["top1"]).abs() < 1e-9);
    let dir = tempfile::tempdir()?;
    let curves = dir.path().join("curves.png");
    let heat = dir.path().join("confusion.png");
    skelact::train::plot::curves(&history, "curves", &curves)?;
    skelact::train::plot::confusion(&confusion, &card.card().classes, "confusion", &heat)?;
    for png in [curves, heat] {
        let bytes = std::fs::read(&png)?;
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
        // IHDR: width and height, big-endian, after the signature and chunk header.
        let w = u32::from_be_bytes(bytes[16..20].try_into()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into()?);
        assert!(w >= 400 && h >= 300, "{}: {w}x{h}", png.display());
    }
    Ok(())
}

/// Class scores of a shipped model on `clips` (one plain view), checked
/// against the top-1 its card records.
fn shipped_scores(
    dir: &ModelDir,
    clips: &[skelact::source::Clip],
    labels: &[usize],
) -> anyhow::Result<Vec<Vec<f32>>> {
    use skelact::train::fusion;
    let dev = Device::Cpu;
    let loaded = dir.load(&dev, Some(DType::F32))?;
    let s = fusion::scores(loaded.encoder.as_ref(), dir.card(), clips, &[], 64, &dev)?;
    let alone = fusion::evaluate_scores(&s, labels, 10).top1;
    let recorded = dir.card().provenance.metrics["top1"];
    assert!(
        (alone - recorded).abs() < 1e-9,
        "{}: {alone} vs {recorded}",
        dir.card().name
    );
    Ok(s)
}

/// Members' default (CTR-GCN) weights and the top-1 of their fused scores,
/// after checking that the members may be fused.
fn fused_at_default_weights(
    cards: &[&skelact::model::card::ModelCard],
    scores: &[Vec<Vec<f32>>],
    labels: &[usize],
) -> anyhow::Result<(Vec<f64>, f64)> {
    use skelact::train::fusion;
    fusion::check_compatible(cards)?;
    let weights = fusion::default_weights(cards.iter().map(|c| c.input.streams.as_slice()));
    let fused = fusion::evaluate_scores(&fusion::fuse(scores, &weights)?, labels, 10);
    assert_eq!(fused.samples, labels.len());
    Ok((weights, fused.top1))
}

/// The three shipped NW-UCLA stream models: one stream each, compatible,
/// and fused at CTR-GCN's weights they score what the README says (440 of
/// 464 test clips, 94.83 %); with the early-fused model as a fourth
/// member, 442 (95.26 %). The shipped single model (95.04 %) with the
/// early-fused one: 446 (96.12 %); with the 325-pass bone model, the
/// shipped pair: 448 (96.55 %).
#[test]
fn shipped_stream_models_fuse_to_the_measured_accuracy() -> anyhow::Result<()> {
    use skelact::train::fusion;
    use skelact::window::Stream;
    let names = [
        ("models/ctrgcn-edge-nwucla-sgdr", Stream::Joint),
        ("models/ctrgcn-edge-nwucla-bone-sgdr", Stream::Bone),
        ("models/ctrgcn-edge-nwucla-jm-sgdr", Stream::JointMotion),
    ];
    let mut dirs = Vec::new();
    for (d, _) in &names {
        dirs.push(ModelDir::open(d)?);
    }
    for (dir, (name, stream)) in dirs.iter().zip(&names) {
        assert_eq!(dir.card().input.streams, vec![*stream], "{name}");
        assert_eq!(dir.card().precision, Precision::F16, "{name}");
    }
    let cards: Vec<_> = dirs.iter().map(|d| d.card()).collect();
    fusion::check_compatible(&cards)?;
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let split = data::load(Benchmark::NwuclaCrossView, &root, None)?;
    let labels: Vec<usize> = split.test.iter().map(|c| c.label).collect();
    assert_eq!(labels.len(), 464);
    let mut scores = Vec::new();
    for dir in &dirs {
        scores.push(shipped_scores(dir, &split.test, &labels)?);
    }
    let (weights, top1) = fused_at_default_weights(&cards, &scores, &labels)?;
    assert_eq!(weights, [0.6, 0.6, 0.4]);
    assert!((top1 - 440.0 / 464.0).abs() < 1e-9, "{top1}");

    // The early-fused model (one model reading joint, bone and joint motion)
    // joins them as a fourth member at a joint model's weight: 442 of 464.
    let early = ModelDir::open("models/ctrgcn-edge-nwucla-early")?;
    assert_eq!(
        early.card().input.streams,
        [Stream::Joint, Stream::Bone, Stream::JointMotion]
    );
    scores.insert(0, shipped_scores(&early, &split.test, &labels)?);
    let four: Vec<_> = std::iter::once(early.card()).chain(cards).collect();
    let (weights, top1) = fused_at_default_weights(&four, &scores, &labels)?;
    assert_eq!(weights, [0.6, 0.6, 0.6, 0.4]);
    assert!((top1 - 442.0 / 464.0).abs() < 1e-9, "{top1}");

    // The shipped joint model (325 passes, one command) with the
    // early-fused one (446 of 464), and with the bone model trained alike,
    // the shipped pair (448 of 464).
    let joint = ModelDir::open("models/ctrgcn-edge-nwucla")?;
    let bone = ModelDir::open("models/ctrgcn-edge-nwucla-bone")?;
    assert_eq!(joint.card().input.streams, [Stream::Joint]);
    assert_eq!(bone.card().input.streams, [Stream::Bone]);
    let joint_scores = shipped_scores(&joint, &split.test, &labels)?;
    for (other, other_scores, right) in [
        (&early, scores.swap_remove(0), 446.0),
        (&bone, shipped_scores(&bone, &split.test, &labels)?, 448.0),
    ] {
        let pair = [joint.card(), other.card()];
        let (weights, top1) =
            fused_at_default_weights(&pair, &[joint_scores.clone(), other_scores], &labels)?;
        assert_eq!(weights, [0.6, 0.6]);
        assert!(
            (top1 - right / 464.0).abs() < 1e-9,
            "{}: {top1}",
            other.card().name
        );
    }
    Ok(())
}

#[test]
fn a_bone_stream_model_trains_and_fuses_with_the_shipped_joint_model() -> anyhow::Result<()> {
    use skelact::train::fusion;
    use skelact::window::Stream;
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let mut cfg = tiny_real_config(root, work.path().join("run"), 1);
    cfg.streams = vec![Stream::Bone];
    cfg.out = Some(work.path().join("bone"));
    let split = data::load(Benchmark::NwuclaCrossView, &cfg.data_root, cfg.limit)?;
    let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    let bone = ModelDir::open(work.path().join("bone"))?;
    assert_eq!(bone.card().input.streams, vec![Stream::Bone]);
    assert!(bone.card().description.contains("bone stream"));
    let joint = ModelDir::open("models/ctrgcn-edge-nwucla")?;
    let cards = [joint.card(), bone.card()];
    fusion::check_compatible(&cards)?;
    let utd = ModelDir::open("models/ctrgcn-edge-utd")?;
    assert!(fusion::check_compatible(&[joint.card(), utd.card()]).is_err());

    let dev = Device::Cpu;
    let labels: Vec<usize> = split.test.iter().map(|c| c.label).collect();
    let mut scores = Vec::new();
    for (dir, card) in [&joint, &bone].iter().zip(cards) {
        let loaded = dir.load(&dev, Some(DType::F32))?;
        let s = fusion::scores(loaded.encoder.as_ref(), card, &split.test, &[], 5, &dev)?;
        // Scores batch by batch give what the evaluation gives.
        let e = trainer::evaluate(loaded.encoder.as_ref(), card, &split.test, 64, &dev)?;
        assert_eq!(fusion::evaluate_scores(&s, &labels, 10).top1, e.top1);
        scores.push(s);
    }
    assert_eq!(
        fusion::evaluate_scores(&scores[1], &labels, 10).top1,
        out.evaluation.top1
    );
    // A model fused with itself decides as it does alone; weight 0 drops a
    // model; otherwise the weighted sum, element by element.
    let alone = fusion::evaluate_scores(&scores[0], &labels, 10);
    let twice = fusion::fuse(&[scores[0].clone(), scores[0].clone()], &[0.6, 0.4])?;
    let dropped = fusion::fuse(&scores, &[0.6, 0.0])?;
    for s in [twice, dropped] {
        let e = fusion::evaluate_scores(&s, &labels, 10);
        assert_eq!((e.top1, e.top5), (alone.top1, alone.top5));
        assert_eq!(e.confusion, alone.confusion);
    }
    let fused = fusion::fuse(&scores, &[0.6, 0.6])?;
    for (i, row) in fused.iter().enumerate() {
        for (k, &x) in row.iter().enumerate() {
            let want = 0.6 * scores[0][i][k] as f64 + 0.6 * scores[1][i][k] as f64;
            assert!((x as f64 - want).abs() < 1e-5, "clip {i} class {k}");
        }
    }
    Ok(())
}

#[test]
fn an_early_fused_model_reads_three_streams_from_one_input() -> anyhow::Result<()> {
    use skelact::model::card::Architecture;
    use skelact::train::fusion;
    use skelact::window::Stream;
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let mut cfg = tiny_real_config(root, work.path().join("run"), 1);
    cfg.streams = vec![Stream::Joint, Stream::Bone, Stream::JointMotion];
    cfg.out = Some(work.path().join("early"));
    let split = data::load(Benchmark::NwuclaCrossView, &cfg.data_root, cfg.limit)?;
    let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    let dir = ModelDir::open(work.path().join("early"))?;
    let card = dir.card();
    assert_eq!(card.input.streams, cfg.streams);
    assert_eq!(card.input.channels(), 9);
    let Architecture::Ctrgcn(arch) = &card.architecture else {
        panic!("not CTR-GCN: {:?}", card.architecture.family());
    };
    assert_eq!(arch.in_channels, 9);
    assert!(
        card.description
            .contains("joint + bone + joint-motion streams"),
        "{}",
        card.description
    );
    // One model of several streams takes a joint model's weight in a sum.
    assert_eq!(
        fusion::default_weights([card.input.streams.as_slice()]),
        [0.6]
    );

    // The export computes the three streams itself and scores what the
    // trainer reported.
    let dev = Device::Cpu;
    let loaded = dir.load(&dev, Some(DType::F32))?;
    let labels: Vec<usize> = split.test.iter().map(|c| c.label).collect();
    let s = fusion::scores(loaded.encoder.as_ref(), card, &split.test, &[], 5, &dev)?;
    assert_eq!(
        fusion::evaluate_scores(&s, &labels, 10).top1,
        out.evaluation.top1
    );

    // A stream twice, and several streams for an encoder whose input width
    // comes from pretraining, are refused before training.
    let mut twice = cfg.clone();
    twice.streams = vec![Stream::Joint, Stream::Joint];
    let e = config::training_card(&twice).unwrap_err().to_string();
    assert!(e.contains("listed twice"), "{e}");
    let mut mae = cfg.clone();
    mae.arch = "skeletonmae".into();
    let e = config::training_card(&mae).unwrap_err().to_string();
    assert!(e.contains("reads one stream"), "{e}");
    mae.streams = vec![Stream::Bone];
    config::training_card(&mae)?;
    Ok(())
}

/// Every weight of a run, tensors in name order, flattened.
fn flat_weights(w: &std::collections::HashMap<String, Tensor>) -> anyhow::Result<Vec<f32>> {
    let mut names: Vec<_> = w.keys().collect();
    names.sort();
    let mut flat = Vec::new();
    for n in names {
        flat.extend(w[n].flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(flat)
}

#[test]
fn a_seed_reproduces_a_run_bit_for_bit() -> anyhow::Result<()> {
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let split = data::load(Benchmark::NwuclaCrossView, &root, Some(24))?;
    let run = |seed: u64, dir: &str| -> anyhow::Result<Vec<f64>> {
        let mut cfg = tiny_real_config(root.clone(), work.path().join(dir), 1);
        cfg.seed = seed;
        let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
        let mut flat = vec![out.history[0].train_loss];
        flat.extend(flat_weights(&out.weights)?.into_iter().map(f64::from));
        Ok(flat)
    };
    // Initial weights come from the seed (candle's CPU generator cannot be
    // seeded), sample order and augmentation too: the same seed gives the
    // same loss and the same trained weights.
    let a = run(3, "a")?;
    assert_eq!(a, run(3, "b")?);
    assert_ne!(a, run(4, "c")?);
    Ok(())
}

#[test]
fn ema_run_exports_the_average_and_resumes_it() -> anyhow::Result<()> {
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let split = data::load(Benchmark::NwuclaCrossView, &root, Some(24))?;
    let run_dir = work.path().join("run");
    let mut cfg = tiny_real_config(root, run_dir.clone(), 1);
    cfg.ema = Some(0.9);
    let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    let steps = split.train.len().div_ceil(cfg.batch_size) as u64;
    let ema = skelact::train::ema::Ema::load(&run_dir.join("ema.safetensors"), 0.9, &Device::Cpu)?;
    assert_eq!(ema.updates(), steps);
    let last =
        candle_core::safetensors::load(run_dir.join("checkpoint.safetensors"), &Device::Cpu)?;
    // The export is the average, not the last weights.
    let mut differs = 0;
    for (name, avg) in ema.weights() {
        let exported = out.weights[name].flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(exported, avg.flatten_all()?.to_vec1::<f32>()?, "{name}");
        if last[name].flatten_all()?.to_vec1::<f32>()? != exported {
            differs += 1;
        }
    }
    assert!(
        differs > ema.weights().len() / 2,
        "{differs} tensors differ"
    );
    assert!(out.card.provenance.notes.contains("moving average"));
    // A resumed run continues the same average.
    cfg.epochs = 2;
    trainer::train_on(&cfg, &split, &Device::Cpu)?;
    let ema = skelact::train::ema::Ema::load(&run_dir.join("ema.safetensors"), 0.9, &Device::Cpu)?;
    assert_eq!(ema.updates(), 2 * steps);
    Ok(())
}

/// `--distill` with the shipped three-stream ensemble as the teacher: the
/// soft term changes the run (and is written in the card), weight 0 leaves
/// it bit for bit as the plain run, and a student whose window differs
/// from the teachers' is refused before training.
#[test]
fn distillation_from_the_shipped_ensemble_trains_a_single_model() -> anyhow::Result<()> {
    use skelact::train::distill::DistillConfig;
    let Some(root) = nwucla_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let split = data::load(Benchmark::NwuclaCrossView, &root, Some(24))?;
    let teachers = DistillConfig {
        teachers: ["", "-bone", "-jm"]
            .iter()
            .map(|s| format!("models/ctrgcn-edge-nwucla{s}-sgdr").into())
            .collect(),
        fusion_weights: None,
        temperature: 4.0,
        weight: 1.0,
    };
    let run = |distill: Option<DistillConfig>, dir: &str| -> anyhow::Result<_> {
        let mut cfg = tiny_real_config(root.clone(), work.path().join(dir), 1);
        cfg.frames = 52; // the teachers' window
        cfg.distill = distill;
        cfg.out = Some(work.path().join(dir).join("model"));
        Ok(trainer::train_on(&cfg, &split, &Device::Cpu)?)
    };
    let plain = run(None, "plain")?;
    let zero = run(
        Some(DistillConfig {
            weight: 0.0,
            ..teachers.clone()
        }),
        "zero",
    )?;
    let kd = run(Some(teachers.clone()), "kd")?;
    assert_eq!(flat_weights(&plain.weights)?, flat_weights(&zero.weights)?);
    assert_ne!(flat_weights(&plain.weights)?, flat_weights(&kd.weights)?);
    // The soft term adds to the logged loss.
    assert!(kd.history[0].train_loss > plain.history[0].train_loss);
    assert!(kd.card.provenance.notes.contains("Distilled"));
    assert!(kd
        .card
        .provenance
        .notes
        .contains("ctrgcn-edge-nwucla-bone-sgdr"));
    // The export is the student alone: a normal joint-stream directory.
    let dir = ModelDir::open(work.path().join("kd/model"))?;
    assert_eq!(
        dir.card().input.streams,
        vec![skelact::window::Stream::Joint]
    );
    dir.load(&Device::Cpu, Some(DType::F32))?;

    let mut short = tiny_real_config(root.clone(), work.path().join("short"), 1);
    short.distill = Some(teachers);
    let Err(err) = trainer::train_on(&short, &split, &Device::Cpu) else {
        panic!("a 16-frame student cannot learn from 52-frame teachers");
    };
    assert!(err.to_string().contains("temporal"), "{err}");
    assert!(!work.path().join("short/metrics.csv").exists());
    Ok(())
}
