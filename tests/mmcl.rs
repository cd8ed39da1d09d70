//! MMCL (feature `train`): the NT-Xent alignment loss and the refinement
//! module against hand-computed cases and a PyTorch fixture
//! (`tests/fixtures/gen_mmcl.py`), the depth encoder against the same
//! fixture, the pairing of skeleton windows with depth frames of the same
//! clip on real UTD-MHAD files, the teacher file format, and a few training
//! steps of `Method::Mmcl` that export a skeleton-only model directory.
#![cfg(feature = "train")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use skelact::model::ModelDir;
use skelact::source::utd;
use skelact::train::mmcl::depth::{self, DEPTH_HEIGHT, DEPTH_WIDTH};
use skelact::train::mmcl::{
    align, build_modules, nt_xent, pair_frames, DepthEncoder, DepthStore, Refinement,
    TeacherFeatures,
};
use skelact::train::{config, data, trainer, Benchmark, Method, TrainConfig};
use skelact::Error;

/// Losses and small outputs against exact arithmetic in f64.
const EXACT: f64 = 1e-5;

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(common::fixtures().join("mmcl.safetensors"), &Device::Cpu)
        .expect("tests/fixtures/mmcl.safetensors (run tests/fixtures/gen_mmcl.py)")
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// The data root holding `utd-mhad/`, or `None` after printing SKIPPED.
fn utd_root() -> Option<PathBuf> {
    let depth = common::shared_data("utd-mhad/depth")?;
    Some(depth.parent()?.parent()?.to_path_buf())
}

#[test]
fn nt_xent_matches_hand_computed_cases() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let tau = align::TEMPERATURE;
    // Matching pairs (norms differ: the loss normalizes). For each sample
    // and direction: positive e^(1/τ), one intra-modal negative e^0, cross
    // terms e^(1/τ) + e^0, so l = -ln(e^2.5 / (e^2.5 + 2)).
    let z1 = Tensor::new(&[[3f32, 0.], [0., 2.]], &dev)?;
    let z2 = Tensor::new(&[[1f32, 0.], [0., 5.]], &dev)?;
    let want = (1.0 + 2.0 * (-1.0 / tau).exp()).ln();
    let got = scalar(&nt_xent(&z1, &z2, tau)?);
    assert!((got - want).abs() < EXACT, "{got} vs {want}");
    // Swapped pairs: the positive is orthogonal, e^0; the other sample of
    // the other modality is the match: l = -ln(1 / (1 + 1 + e^2.5)).
    let z2 = Tensor::new(&[[0f32, 1.], [1., 0.]], &dev)?;
    let want = (2.0 + (1.0 / tau).exp()).ln();
    let got = scalar(&nt_xent(&z1, &z2, tau)?);
    assert!((got - want).abs() < EXACT, "{got} vs {want}");
    // Mismatched shapes are a typed error, not a panic.
    let bad = Tensor::zeros((3, 2), DType::F32, &dev)?;
    assert!(matches!(nt_xent(&z1, &bad, tau), Err(Error::Shape { .. })));
    Ok(())
}

#[test]
fn nt_xent_matches_pytorch() -> anyhow::Result<()> {
    let fx = fixture();
    let got = scalar(&nt_xent(&fx["xent.z1"], &fx["xent.z2"], 0.4)?);
    let want = scalar(&fx["xent.loss"]);
    assert!(
        (got - want).abs() / want.abs() < common::F32_REL,
        "{got} vs PyTorch {want}"
    );
    Ok(())
}

#[test]
fn refined_score_and_its_cross_entropy_match_a_hand_computed_case() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // MLP weights zero, last bias (ln 3, 0): (w+, w-) = (3/4, 1/4) for any
    // teacher. P = (2, 1), N = (0, 1): scale = (1.5, 1.0).
    let mut w = HashMap::new();
    w.insert(
        "mlp.0.weight".into(),
        Tensor::zeros((64, 3), DType::F32, &dev)?,
    );
    w.insert("mlp.0.bias".into(), Tensor::zeros(64, DType::F32, &dev)?);
    w.insert(
        "mlp.2.weight".into(),
        Tensor::zeros((2, 64), DType::F32, &dev)?,
    );
    w.insert("mlp.2.bias".into(), Tensor::new(&[3f32.ln(), 0.], &dev)?);
    w.insert("pos".into(), Tensor::new(&[2f32, 1.], &dev)?);
    w.insert("neg".into(), Tensor::new(&[0f32, 1.], &dev)?);
    let frm = Refinement::new(3, 2, VarBuilder::from_tensors(w, DType::F32, &dev))?;
    let teacher = Tensor::new(&[[0.3f32, 1.0, 0.2], [5.0, 0.0, 0.1]], &dev)?;
    let weights = frm.weights(&teacher)?.to_vec2::<f32>()?;
    for row in &weights {
        assert!((row[0] - 0.75).abs() < 1e-6 && (row[1] - 0.25).abs() < 1e-6);
    }
    let logits = Tensor::new(&[[1f32, 2.], [-1., 4.]], &dev)?;
    let refined = frm.refine(&logits, &teacher)?;
    let want = Tensor::new(&[[1.5f32, 2.0], [-1.5, 4.0]], &dev)?;
    common::assert_close("refined score", &refined, &want, EXACT);
    // CE of row 0 against class 0: ln(1 + e^(2 - 1.5)); row 1 against
    // class 1: ln(1 + e^(-1.5 - 4)); mean of the two.
    let labels = Tensor::new(&[0u32, 1], &dev)?;
    let ce = skelact::train::loss::cross_entropy_smoothed(
        &frm.refine(&logits, &teacher)?,
        &labels,
        0.0,
    )?;
    let want = ((1.0 + 0.5f64.exp()).ln() + (1.0 + (-5.5f64).exp()).ln()) / 2.0;
    assert!((scalar(&ce) - want).abs() < EXACT);
    // Fresh P = N = 1: the refined score is the logits.
    let vm = candle_nn::VarMap::new();
    let fresh = Refinement::new(3, 2, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let r = fresh.refine(&logits, &teacher)?;
    common::assert_close("fresh refinement", &r, &logits, 1e-6);
    Ok(())
}

#[test]
fn refinement_matches_pytorch() -> anyhow::Result<()> {
    let fx = fixture();
    let w: HashMap<String, Tensor> = fx
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("frm.")?.to_string(), v.clone())))
        .collect();
    let frm = Refinement::new(3, 6, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu))?;
    let (teacher, logits) = (&fx["frm.teacher"], &fx["frm.logits"]);
    common::assert_close(
        "w+, w-",
        &frm.weights(teacher)?,
        &fx["frm.weights"],
        common::F32_REL,
    );
    let refined = frm.refine(logits, teacher)?;
    common::assert_close("refined", &refined, &fx["frm.refined"], common::F32_REL);
    let labels = fx["frm.labels"].to_dtype(DType::U32)?;
    let ce = skelact::train::loss::cross_entropy_smoothed(&refined, &labels, 0.0)?;
    let want = scalar(&fx["frm.ce"]);
    assert!((scalar(&ce) - want).abs() / want < common::F32_REL);
    Ok(())
}

#[test]
fn depth_encoder_matches_pytorch() -> anyhow::Result<()> {
    let fx = fixture();
    let dev = Device::Cpu;
    let w: HashMap<String, Tensor> = fx
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("depth.")?.to_string(), v.clone())))
        .collect();
    let enc = DepthEncoder::with_widths(
        3,
        &[4, 8, 8, 16],
        16,
        VarBuilder::from_tensors(w, DType::F32, &dev),
    )?;
    let x = &fx["depth.input"];
    common::assert_close(
        "depth encoder (eval)",
        &enc.forward_t(x, false)?,
        &fx["depth.eval"],
        common::F32_REL,
    );
    common::assert_close(
        "depth encoder (train)",
        &enc.forward_t(x, true)?,
        &fx["depth.train"],
        common::F32_REL,
    );
    // A wrong frame count is a typed error.
    let bad = Tensor::zeros((1, 2, 24, 32), DType::F32, &dev)?;
    assert!(matches!(
        enc.forward_t(&bad, false),
        Err(Error::Shape { .. })
    ));
    Ok(())
}

#[test]
fn every_mmcl_parameter_receives_a_gradient() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (vm, enc, proj, frm) = build_modules(24, 5, 4, 3, &dev, 1)?;
    // Seeded inputs: with unseeded ones, the 6 teacher rows could leave
    // every hidden unit of the refinement MLP dead now and then (a zero
    // bias gradient, a test that failed once in many runs).
    let seeded = |seed: u64, shape: &[usize], unit: bool| -> anyhow::Result<Tensor> {
        let n = shape.iter().product();
        let v: Vec<f32> = common::uniform(seed, n)
            .into_iter()
            .map(|u| if unit { (u + 1.0) / 2.0 } else { u })
            .collect();
        Ok(Tensor::from_vec(v, shape, &dev)?)
    };
    let x = seeded(1, &[6, 4, DEPTH_HEIGHT, DEPTH_WIDTH], true)?;
    let g = seeded(2, &[6, 24], false)?;
    let logits = seeded(3, &[6, 5], false)?;
    let teacher = seeded(4, &[6, 3], true)?;
    let labels = Tensor::new(&[0u32, 1, 2, 3, 4, 0], &dev)?;
    let align = nt_xent(&proj.forward(&g)?, &enc.forward_t(&x, true)?, 0.4)?;
    let refined = frm.refine(&logits, &teacher)?;
    let ce = skelact::train::loss::cross_entropy_smoothed(&refined, &labels, 0.0)?;
    let loss = (align + ce)?;
    let grads = loss.backward()?;
    let params = trainer::params(&vm)?;
    // 4 convs + 4 x BN (weight, bias) + 2 x 2 MLP + projection 2 + FRM 6.
    assert_eq!(params.len(), 4 + 8 + 4 + 2 + 6);
    for p in &params {
        let g = grads
            .get(p.var.as_tensor())
            .unwrap_or_else(|| panic!("{} has no gradient", p.name));
        let n = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(n > 0.0 && n.is_finite(), "{}: |grad|^2 = {n}", p.name);
    }
    Ok(())
}

/// The stored depth frame `t` of a raw video, computed here independently
/// of `depth.rs`: 5 x 5 blocks, mean of non-zero depths, (4500 - d) / 4000
/// clamped, rounded to 1/255.
fn expected_frame(video: &utd::DepthVideo, t: usize) -> Vec<f32> {
    assert_eq!((video.height, video.width), (240, 320));
    let mut out = Vec::with_capacity(DEPTH_HEIGHT * DEPTH_WIDTH);
    for by in 0..48 {
        for bx in 0..64 {
            let vals: Vec<f64> = (0..5)
                .flat_map(|dy| (0..5).map(move |dx| (by * 5 + dy, bx * 5 + dx)))
                .map(|(y, x)| video.depth_mm_at(t, y, x).unwrap() as f64)
                .filter(|&d| d > 0.0)
                .collect();
            let v = if vals.is_empty() {
                0.0
            } else {
                let d = vals.iter().sum::<f64>() / vals.len() as f64;
                ((4500.0 - d) / 4000.0).clamp(0.0, 1.0)
            };
            out.push(((v * 255.0).round() / 255.0) as f32);
        }
    }
    out
}

#[test]
fn skeleton_windows_pair_with_depth_frames_of_the_same_clip_and_time() -> anyhow::Result<()> {
    let Some(root) = utd_root() else {
        return Ok(());
    };
    let dev = Device::Cpu;
    let split = data::load(Benchmark::UtdCrossSubject, &root, Some(6))?;
    let clips = &split.train[..2.min(split.train.len())];
    assert!(!clips.is_empty());
    let store = DepthStore::load(&root.join("utd-mhad"), clips)?;
    assert_eq!(store.len(), clips.len());
    assert_eq!(store.mismatched, 0, "UTD-MHAD depth and skeleton share T");
    let mut cfg = TrainConfig::nwucla(root.clone(), std::env::temp_dir(), 1);
    cfg.benchmark = Benchmark::UtdCrossSubject;
    cfg.frames = 20;
    let card = config::training_card(&cfg)?;
    let k = 5;
    for clip in clips {
        // The skeleton window is the supervised one (same RNG draws).
        let mut r1 = ChaCha8Rng::seed_from_u64(7);
        let mut r2 = ChaCha8Rng::seed_from_u64(7);
        let plain = trainer::train_sample(clip, &card, &cfg.augment, &mut r1)?;
        let (p, window) = trainer::train_sample_indexed(clip, &card, &cfg.augment, &mut r2)?;
        assert_eq!(plain.joints, p.joints);
        assert_eq!(window.len(), 20);
        // K frames of the window, spread evenly: positions 2, 6, 10, 14, 18.
        let frames = pair_frames(&window, k)?;
        let want: Vec<usize> = [2, 6, 10, 14, 18]
            .iter()
            .map(|&i| window[i].unwrap())
            .collect();
        assert_eq!(frames, want);
        // The right clip: the depth file of the same trial, read again here.
        let id = depth::clip_id(clip)?;
        assert_eq!(format!("{id}_skeleton"), clip.name);
        let video = utd::read_depth(&root.join(format!("utd-mhad/depth/{id}_depth.mat")))?;
        assert_eq!(video.frames, clip.num_frames);
        let x = store.batch(&[(id.as_str(), window.as_slice())], k, &dev)?;
        assert_eq!(x.dims(), [1, k, DEPTH_HEIGHT, DEPTH_WIDTH]);
        let x = x.squeeze(0)?;
        for (c, &t) in frames.iter().enumerate() {
            let got = x.get(c)?.flatten_all()?.to_vec1::<f32>()?;
            let want = expected_frame(&video, t);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1.5 / 255.0, "{id} frame {t}: off by {worst}");
            // A person is in view: some pixels nearer than the back wall.
            assert!(got.iter().any(|&v| v > 0.3), "{id} frame {t} looks empty");
        }
        // Another frame of the same clip is not what was paired.
        let other = expected_frame(&video, (frames[0] + clip.num_frames / 2) % clip.num_frames);
        assert_ne!(other, expected_frame(&video, frames[0]));
    }
    Ok(())
}

#[test]
fn teacher_file_round_trips_and_rejects_bad_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = TeacherFeatures {
        names: vec!["a".into(), "b".into(), "c".into()],
        source: "test".into(),
        by_clip: [
            ("a1_s1_t1".to_string(), vec![0.5f32, 1.0, -2.0]),
            ("a2_s3_t4".to_string(), vec![0.0f32, 0.25, 3.0]),
        ]
        .into_iter()
        .collect(),
    };
    let p = dir.path().join("t.safetensors");
    t.write(&p)?;
    let back = TeacherFeatures::read(&p)?;
    assert_eq!(back, t);
    let b = back.batch(&["a2_s3_t4", "a1_s1_t1"], &Device::Cpu)?;
    assert_eq!(
        b.to_vec2::<f32>()?,
        vec![vec![0.0, 0.25, 3.0], vec![0.5, 1.0, -2.0]]
    );
    assert!(matches!(
        back.batch(&["a9_s9_t9"], &Device::Cpu),
        Err(Error::Config { .. })
    ));
    // A safetensors file that is not a teacher file (no format tag).
    let other = dir.path().join("other.safetensors");
    candle_core::safetensors::save(
        &[(
            "a1_s1_t1".to_string(),
            Tensor::zeros(3, DType::F32, &Device::Cpu)?,
        )]
        .into_iter()
        .collect::<HashMap<_, _>>(),
        &other,
    )?;
    assert!(matches!(
        TeacherFeatures::read(&other),
        Err(Error::Format { .. })
    ));
    // Not a safetensors file at all; a missing file.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file")?;
    assert!(matches!(
        TeacherFeatures::read(&junk),
        Err(Error::Format { .. })
    ));
    assert!(matches!(
        TeacherFeatures::read(Path::new("/nonexistent/t.safetensors")),
        Err(Error::Io { .. })
    ));
    Ok(())
}

#[test]
fn inertial_teacher_summarizes_the_wearable_sensor() -> anyhow::Result<()> {
    let Some(root) = utd_root() else {
        return Ok(());
    };
    // One recording by hand: jogging in place (a22) moves the thigh sensor
    // more than cross arms in the chest (a6) moves the wrist.
    let dir = root.join("utd-mhad/inertial");
    let features = skelact::train::mmcl::teacher::inertial_features;
    let jog = features(&utd::read_inertial(&dir.join("a22_s1_t1_inertial.mat"))?);
    let cross = features(&utd::read_inertial(&dir.join("a6_s1_t1_inertial.mat"))?);
    assert!(jog.iter().chain(&cross).all(|v| v.is_finite() && *v >= 0.0));
    assert!(jog[0] > cross[0], "jogging {jog:?} vs cross arms {cross:?}");
    assert!(jog[2] <= 1.0 && cross[2] <= 1.0);
    Ok(())
}

#[test]
fn mmcl_needs_utd_mhad() -> anyhow::Result<()> {
    let arch = config::training_card(&TrainConfig::nwucla(
        "../shared/data".into(),
        std::env::temp_dir(),
        1,
    ))?
    .architecture;
    let r = skelact::train::mmcl::Mmcl::new(
        &arch,
        Benchmark::NwuclaCrossView,
        Path::new("../shared/data"),
        &[],
        &Default::default(),
        &std::env::temp_dir(),
        &Device::Cpu,
        1,
    );
    assert!(matches!(r, Err(Error::Config { .. })));
    Ok(())
}

/// The two MMCL terms enter the objective with the configured weights
/// (the paper's 0.2 and 0.1 by default; 0 removes a term for an
/// ablation), and a negative or non-finite weight is refused.
#[test]
fn mmcl_terms_take_their_configured_weights() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let terms = skelact::train::mmcl::MmclLoss {
        refined_ce: Tensor::new(1.5f32, &dev)?,
        align: Tensor::new(3.0f32, &dev)?,
    };
    let mut cfg = skelact::train::mmcl::MmclConfig::default();
    assert!((scalar(&terms.weighted(&cfg)?) - (0.2 * 1.5 + 0.1 * 3.0)).abs() < EXACT);
    cfg.align_weight = 0.0;
    assert!((scalar(&terms.weighted(&cfg)?) - 0.3).abs() < EXACT);
    cfg.refine_weight = 0.0;
    cfg.align_weight = 0.5;
    assert!((scalar(&terms.weighted(&cfg)?) - 1.5).abs() < EXACT);
    cfg.validate()?;
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        cfg.refine_weight = bad;
        assert!(matches!(cfg.validate(), Err(Error::Config { .. })));
    }
    // a config written before the weights existed reads the paper's
    let old: skelact::train::mmcl::MmclConfig = toml::from_str("depth_frames = 6")?;
    assert_eq!(old, skelact::train::mmcl::MmclConfig::default());
    Ok(())
}

#[test]
fn mmcl_method_trains_two_steps_and_exports_a_skeleton_only_model() -> anyhow::Result<()> {
    let Some(root) = utd_root() else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    let mut cfg = TrainConfig::nwucla(root, work.path().join("run"), 1);
    cfg.benchmark = Benchmark::UtdCrossSubject;
    cfg.method = Method::Mmcl;
    cfg.mmcl.depth_frames = 4;
    cfg.limit = Some(10);
    cfg.frames = 16;
    cfg.repeat = 1;
    cfg.progress = false;
    cfg.out = Some(work.path().join("model"));
    cfg.command = "tests/mmcl.rs".into();
    let split = data::load(Benchmark::UtdCrossSubject, &cfg.data_root, cfg.limit)?;
    cfg.batch_size = split.train.len().div_ceil(2);
    let out = trainer::train_on(&cfg, &split, &Device::Cpu)?;
    assert_eq!(out.history.len(), 1);
    assert!(out.history[0].train_loss.is_finite());
    // The inertial teacher was written into the run folder and the MMCL
    // modules checkpointed beside the model.
    let teacher = TeacherFeatures::read(&work.path().join("run/mmcl-teacher.safetensors"))?;
    assert_eq!(teacher.dim(), 3);
    assert_eq!(teacher.by_clip.len(), 861);
    let modules =
        candle_core::safetensors::load(work.path().join("run/mmcl.safetensors"), &Device::Cpu)?;
    assert!(modules.keys().any(|k| k.starts_with("depth.")));
    // The export is a normal model directory without any MMCL tensor.
    let dir = ModelDir::open(work.path().join("model"))?;
    assert!(dir.card().provenance.notes.contains("Objective: MMCL"));
    let weights = candle_core::safetensors::load(
        work.path().join("model/weights.safetensors"),
        &Device::Cpu,
    )?;
    assert!(!weights.is_empty());
    for k in weights.keys() {
        assert!(
            !(k.starts_with("depth.") || k.starts_with("frm.") || k.starts_with("skeleton_proj")),
            "training-only tensor `{k}` exported"
        );
    }
    let top1 = common::reloaded_top1(&dir, &split.test, Some(DType::F32))?;
    assert_eq!(top1, out.evaluation.top1);
    Ok(())
}

#[test]
fn the_seed_decides_the_mmcl_modules_initial_weights() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let draw = |seed| -> anyhow::Result<Vec<(String, Vec<f32>)>> {
        common::varmap_values(&build_modules(24, 5, 4, 3, &dev, seed)?.0)
    };
    let (a, b, c) = (draw(3)?, draw(3)?, draw(4)?);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_ne!(a, c);
    Ok(())
}

/// The shipped stream model (`models/ctrgcn-edge-utd-window`): trained on
/// what the runtime feeds it (window sampling, recorded in its card), f16,
/// and evaluated the stream's way it scores its card on the test subjects.
#[test]
fn shipped_window_model_scores_its_card() -> anyhow::Result<()> {
    use skelact::model::card::{Precision, Sampling};
    let dir = ModelDir::open("models/ctrgcn-edge-utd-window")?;
    let card = dir.card();
    assert_eq!(card.temporal.sampling, Sampling::Window);
    assert_eq!(card.precision, Precision::F16);
    assert!(card
        .provenance
        .command
        .contains("--method mmcl --sampling window"));
    let Some(root) = utd_root() else {
        return Ok(());
    };
    let split = data::load(Benchmark::UtdCrossSubject, &root, None)?;
    assert_eq!(split.test.len(), 430);
    let dev = Device::Cpu;
    let loaded = dir.load(&dev, Some(DType::F32))?;
    let e = trainer::evaluate(loaded.encoder.as_ref(), card, &split.test, 64, &dev)?;
    assert!(
        (e.top1 - card.provenance.metrics["top1"]).abs() < 1e-9,
        "{} vs card {}",
        e.top1,
        card.provenance.metrics["top1"]
    );
    Ok(())
}
