//! GAP (feature `train`): the sentence encoder matches a PyTorch
//! computation of all-MiniLM-L6-v2, every GAP head parameter is reached by
//! the gradient, and `Method::Gap` trains on real NW-UCLA clips and
//! exports a normal model directory.
//!
//! The encoder tests need the weights (`.ci/fetch-minilm.sh`, then
//! `SKELACT_TEXT_MODEL`); without them they print SKIPPED and pass.
#![cfg(feature = "train")]

mod common;

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use skelact::model::card::Precision;
use skelact::model::directory::build_encoder;
use skelact::model::ModelDir;
use skelact::skeleton::Layout;
use skelact::train::gap::text::{resolve_model_dir, SentenceEncoder, TEXT_MODEL_ENV};
use skelact::train::gap::{head, Gap, TextBank};
use skelact::train::{backend, config, data, trainer, Benchmark, Method, TrainConfig};

/// The sentence encoder against `transformers` + PyTorch in f32.
const ENCODER_ABS: f64 = 1e-4;

/// The text model folder, or `None` after printing SKIPPED.
fn text_model() -> Option<PathBuf> {
    match resolve_model_dir(None) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("SKIPPED: no text model ({TEXT_MODEL_ENV} unset or empty): {e}");
            None
        }
    }
}

/// The three sentences of `tests/fixtures/gen_minilm.py`.
const SENTENCES: [&str; 3] = [
    "pick up with one hand, The head tilts down to look at the object on the floor.",
    "A person walks with steady steps along a curved path, turning as they go.",
    "squat (two arms stretch out)",
];

#[test]
fn sentence_encoder_matches_pytorch() -> anyhow::Result<()> {
    let Some(dir) = text_model() else {
        return Ok(());
    };
    let dev = Device::Cpu;
    let fx = candle_core::safetensors::load(common::fixtures().join("minilm.safetensors"), &dev)?;
    let enc = SentenceEncoder::load(&dir, &dev)?;
    let texts: Vec<String> = SENTENCES.iter().map(|s| s.to_string()).collect();
    let (ids, mask) = enc.tokenize(&texts)?;
    assert_eq!(
        ids.to_dtype(DType::I64)?.to_vec2::<i64>()?,
        fx["input_ids"].to_vec2::<i64>()?,
        "token ids"
    );
    assert_eq!(
        mask.to_dtype(DType::I64)?.to_vec2::<i64>()?,
        fx["attention_mask"].to_vec2::<i64>()?,
        "attention mask"
    );
    let got = enc.encode(&texts)?;
    let want = &fx["embeddings"];
    assert_eq!(got.dims(), want.dims());
    let err = (got - want)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()? as f64;
    eprintln!("all-MiniLM-L6-v2 vs PyTorch: max abs error {err:.3e}");
    assert!(err < ENCODER_ABS, "max abs error {err:.3e}");
    // Unit norm, as sentence-transformers' Normalize module leaves them.
    let norms: Vec<f32> = enc.encode(&texts)?.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
    Ok(())
}

#[test]
fn every_gap_head_parameter_receives_a_gradient() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut cfg = TrainConfig::nwucla("../shared/data".into(), std::env::temp_dir(), 1);
    cfg.frames = 8;
    let card = config::training_card(&cfg)?;
    let varmap = VarMap::new();
    let (vb, _backend) = backend::var_builder(&varmap, &card.architecture, &dev, 1);
    let model = build_encoder(&card.architecture, vb)?;
    // A text bank of random unit vectors: 10 classes, 3 global texts each.
    // Seeded, so that the test's numbers are the same on every run.
    let d = 16;
    let seeded = |seed: u64, shape: &[usize]| -> anyhow::Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor::from_vec(common::uniform(seed, n), shape, &dev)?)
    };
    let bank = TextBank {
        global: seeded(1, &[30, d])?,
        pool: (0..=10).map(|k| 3 * k).collect(),
        parts: seeded(2, &[4, 10, d])?,
    };
    let c_feat = match &card.architecture {
        skelact::model::card::Architecture::Ctrgcn(c) => c.out_channels(),
        _ => unreachable!("the NW-UCLA recipe trains CTR-GCN"),
    };
    let layout = Layout::by_name("kinect20-ucla")?;
    let (head_vm, head) = head::build(c_feat, d, layout, &dev, 1)?;
    let gap = Gap {
        varmap: head_vm,
        head,
        bank,
        descriptions_digest: 0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = seeded(3, &[6, 3, 8, 20, 1])?;
    let labels = [0u32, 0, 1, 2, 2, 3];
    let (_logits, h) = model.forward_with_features(&x, true)?;
    let loss = gap.loss(&h, &labels, &mut rng)?;
    assert!(loss.to_scalar::<f32>()?.is_finite());
    let grads = loss.backward()?;
    let params = trainer::params(&gap.varmap)?;
    // 5 projections (weight + bias) and the logit scales.
    assert_eq!(params.len(), 11);
    for p in &params {
        let g = grads
            .get(p.var.as_tensor())
            .unwrap_or_else(|| panic!("{} has no gradient", p.name));
        let n = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(n > 0.0 && n.is_finite(), "{}: |grad|^2 = {n}", p.name);
    }
    // The part loss reaches the backbone too (its last block at least).
    let backbone = trainer::params(&varmap)?;
    let reached = backbone
        .iter()
        .filter(|p| grads.get(p.var.as_tensor()).is_some())
        .count();
    assert!(
        reached > backbone.len() / 2,
        "{reached} of {}",
        backbone.len()
    );
    Ok(())
}

/// GAP on CTR-GCN edge, and on SCD-Net's classifier (GAP fine-tuning is
/// how SCD-Net pretraining composes with it): two steps, a normal export.
#[test]
fn gap_method_trains_two_steps_and_exports_a_normal_model() -> anyhow::Result<()> {
    let Some(clips) = common::shared_data("nw-ucla/all_sqe") else {
        return Ok(());
    };
    let Some(text) = text_model() else {
        return Ok(());
    };
    let root = clips.parent().unwrap().parent().unwrap().to_path_buf();
    let split = data::load(Benchmark::NwuclaCrossView, &root, Some(12))?;
    for arch in ["ctrgcn-edge", "scdnet"] {
        let work = tempfile::tempdir()?;
        let mut cfg = TrainConfig::nwucla(root.clone(), work.path().join("run"), 1);
        cfg.arch = arch.into();
        cfg.method = Method::Gap;
        cfg.text_model = Some(text.clone());
        cfg.limit = Some(12);
        cfg.frames = 16;
        cfg.repeat = 1;
        cfg.progress = false;
        cfg.out = Some(work.path().join("model"));
        cfg.command = "tests/gap.rs".into();
        // Two steps: the training clips in two batches.
        cfg.batch_size = split.train.len().div_ceil(2);
        let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
        assert_eq!(out.history.len(), 1);
        assert!(out.history[0].train_loss.is_finite(), "{arch}");
        // The text embeddings were cached beside the run.
        let cached = std::fs::read_dir(work.path().join("run"))?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("gap-text-"));
        assert!(
            cached,
            "{arch}: no gap-text-*.safetensors in the run folder"
        );
        // The export is a normal model directory: no GAP head tensors,
        // loads with the normal loader, and says how it was trained.
        let dir = ModelDir::open(work.path().join("model"))?;
        assert_eq!(
            dir.card().architecture.family(),
            arch.trim_end_matches("-edge")
        );
        assert_eq!(dir.card().precision, Precision::F16);
        assert!(dir.card().provenance.notes.contains("Objective: GAP"));
        let weights = candle_core::safetensors::load(
            work.path().join("model/weights.safetensors"),
            &Device::Cpu,
        )?;
        assert!(weights.keys().all(|k| !k.starts_with("gap.")));
        let top1 = common::reloaded_top1(&dir, &split.test, Some(DType::F32))?;
        assert_eq!(top1, out.evaluation.top1, "{arch}");
    }
    Ok(())
}

#[test]
fn the_seed_decides_the_gap_heads_initial_weights() -> anyhow::Result<()> {
    let (dev, layout) = (Device::Cpu, Layout::by_name("kinect20-ucla")?);
    let draw = |seed| -> anyhow::Result<Vec<(String, Vec<f32>)>> {
        common::varmap_values(&head::build(24, 16, layout, &dev, seed)?.0)
    };
    let (a, b, c) = (draw(7)?, draw(7)?, draw(8)?);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    // Another seed changes every randomly drawn tensor (not the constants).
    let changed = a.iter().zip(&c).filter(|(x, y)| x.1 != y.1).count();
    assert!(changed >= 5, "{changed} tensors changed");
    Ok(())
}
