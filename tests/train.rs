//! Training (feature `train`): the optimizer can fit, every parameter is
//! reached by the gradient, batch-norm statistics are saved, augmentations
//! keep what they must, the loss matches a hand computation, and a short
//! run on real NW-UCLA clips trains, evaluates and exports a model
//! directory.
#![cfg(feature = "train")]

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use skelact::model::card::{Normalization, Precision};
use skelact::model::directory::{build_encoder, is_buffer};
use skelact::model::ModelDir;
use skelact::skeleton::Layout;
use skelact::train::augment::{self, AugmentConfig};
use skelact::train::loss::cross_entropy_smoothed;
use skelact::train::optim::{Schedule, Sgd};
use skelact::train::{backend, data, trainer, Benchmark, TrainConfig};
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
    let card = trainer::training_card(&tiny_config(12))?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev);
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
    let card = trainer::training_card(&tiny_config(8))?;
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
    let (vb, backend) = backend::var_builder(&varmap, &card.architecture, &dev);
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
    let card = trainer::training_card(&tiny_config(8))?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev);
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
        decay: skelact::train::optim::Decay::Cosine { min_lr: 0.0 },
    };
    assert!((s.lr(0.0) - 0.05).abs() < 1e-12);
    assert!((s.lr(2.0) - 0.1).abs() < 1e-12);
    assert!(s.lr(6.0) < 0.1 && s.lr(6.0) > 0.0);
    assert!(s.lr(10.0).abs() < 1e-12);
}

#[test]
fn model_input_centers_and_scales() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let card = trainer::training_card(&tiny_config(10))?;
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

#[test]
fn short_run_on_real_clips_trains_evaluates_and_exports() -> anyhow::Result<()> {
    let Some(root) = common::shared_data("nw-ucla/all_sqe") else {
        return Ok(());
    };
    let root = root.parent().unwrap().parent().unwrap().to_path_buf();
    let work = tempfile::tempdir()?;
    let mut cfg = TrainConfig::nwucla(root, work.path().join("run"), 2);
    cfg.limit = Some(24);
    cfg.frames = 16;
    cfg.batch_size = 8;
    cfg.repeat = 1;
    // Epoch 1 is not evaluated: its NaN test metrics must survive resume.
    cfg.eval_every = 2;
    cfg.progress = false;
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
    // The exported directory loads, is f16, and scores like the trainer said.
    let dir = ModelDir::open(work.path().join("model"))?;
    assert_eq!(dir.card().precision, Precision::F16);
    assert_eq!(dir.card().provenance.metrics["top1"], out.evaluation.top1);
    let loaded = dir.load(&Device::Cpu, Some(DType::F32))?;
    let e = trainer::evaluate(
        loaded.encoder.as_ref(),
        dir.card(),
        &split.test,
        64,
        &Device::Cpu,
    )?;
    assert_eq!(e.top1, out.evaluation.top1);
    // Resume: a third epoch continues from the checkpoint.
    cfg.epochs = 3;
    let more = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    assert_eq!(more.history.len(), 3);
    assert_eq!(more.history[0].train_loss, out.history[0].train_loss);
    assert!(more.history[0].test_top1.is_nan());
    Ok(())
}

#[test]
fn training_samples_are_deterministic_per_seed() -> anyhow::Result<()> {
    let card = trainer::training_card(&tiny_config(10))?;
    let clip = skelact::source::Clip {
        name: "synthetic".into(),
        label: 0,
        layout: "kinect20-ucla",
        fps: 30.0,
        num_frames: 6,
        num_persons: 1,
        num_joints: 20,
        joints: (0..6 * 20 * 3).map(|i| (i as f32 * 0.37).sin()).collect(),
        meta: Default::default(),
    };
    let aug = AugmentConfig::default();
    let a = trainer::train_sample(&clip, &card, &aug, &mut ChaCha8Rng::seed_from_u64(9))?;
    let b = trainer::train_sample(&clip, &card, &aug, &mut ChaCha8Rng::seed_from_u64(9))?;
    let c = trainer::train_sample(&clip, &card, &aug, &mut ChaCha8Rng::seed_from_u64(10))?;
    assert_eq!(a, b);
    assert_ne!(a, c);
    Ok(())
}
