//! EfficientGCN-B0 with the authors' real NTU-60 checkpoint against the
//! independent PyTorch re-implementation in `tests/fixtures/gen_efficientgcn.py`
//! (which loads the same checkpoint with strict key matching).
//!
//! The fixture holds a synthetic NTU-25 sequence (raw and preprocessed) and,
//! per traced layer, its first 8 and last 4 frames plus its means per
//! channel and per frame (the full traces at 288 frames would be tens of
//! MB); `pooled` and `logits` are stored whole. The weights come from
//! `../shared/data/efficientgcn/`; without them the tests that need them say
//! so and return.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use skelact::model::efficientgcn::checkpoint::{check_state_dict, expected_shapes};
use skelact::model::efficientgcn::model::hop_partition;
use skelact::model::efficientgcn::preprocess::{preprocess, NUM_FRAMES};
use skelact::model::efficientgcn::{import_checkpoint, Config, EfficientGcn, NTU60_CLASSES};
use skelact::model::{flops, Encoder, Trace};
use skelact::skeleton::Layout;
use skelact::Error;

const CHECKPOINT: &str = "efficientgcn/2001_EfficientGCN-B0_ntu-xsub.pth.tar";
/// Parameters excluding the adjacency `A` and the edge masks (the paper's
/// 0.32 M; also printed by the fixture script).
const PARAMS: usize = 324_708;
/// 11 graph layers with a (3, 25, 25) edge mask each.
const EDGE_PARAMS: usize = 11 * 3 * 25 * 25;
/// The preprocessing is the same arithmetic in f64 on both sides.
const PREPROCESS_REL: f64 = 1e-6;

struct Fixture {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn fixture() -> Fixture {
    let path = common::fixtures().join("efficientgcn.safetensors");
    let bytes = std::fs::read(&path).expect("read fixture");
    let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).expect("fixture header");
    let meta = md.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("load fixture");
    Fixture { tensors, meta }
}

impl Fixture {
    fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no `{name}`"))
    }

    fn traces(&self) -> Vec<String> {
        self.meta["traces"].split(',').map(str::to_string).collect()
    }
}

fn checkpoint() -> Option<PathBuf> {
    common::shared_data(CHECKPOINT)
}

fn load_model(state: &HashMap<String, Tensor>, dtype: DType) -> EfficientGcn {
    let vb = VarBuilder::from_tensors(state.clone(), dtype, &Device::Cpu);
    EfficientGcn::new(&Config::default(), vb).expect("build model")
}

/// Compares one traced tensor with the fixture and returns the worst
/// relative error among its stored parts.
fn compare(fx: &Fixture, name: &str, got: &Tensor, tol: f64) -> f64 {
    let got = got.to_dtype(DType::F32).unwrap();
    let mut parts: Vec<(String, Tensor)> = Vec::new();
    if got.rank() == 4 {
        let t = got.dim(2).unwrap();
        parts.push(("head".into(), got.narrow(2, 0, 8.min(t)).unwrap()));
        parts.push((
            "tail".into(),
            got.narrow(2, t - 4.min(t), 4.min(t)).unwrap(),
        ));
        parts.push((
            "mean_c".into(),
            got.mean(3).unwrap().mean(2).unwrap().mean(0).unwrap(),
        ));
        parts.push((
            "mean_t".into(),
            got.mean(3).unwrap().mean(1).unwrap().mean(0).unwrap(),
        ));
    } else {
        parts.push((String::new(), got.clone()));
    }
    let mut worst = 0f64;
    for (part, g) in parts {
        let key = if part.is_empty() {
            format!("trace.{name}")
        } else {
            format!("trace.{name}.{part}")
        };
        let want = fx.get(&key);
        common::assert_close(&key, &g, want, tol);
        worst = worst.max(common::rel_err(&g, want));
    }
    worst
}

fn top5(logits: &Tensor) -> Vec<usize> {
    let v = logits.i(0).unwrap().to_vec1::<f32>().unwrap();
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(5);
    idx
}

#[test]
fn fixture_config_is_the_default() {
    let fx = fixture();
    let cfg: Config = toml::from_str(&fx.meta["config_toml"]).expect("config_toml parses");
    assert_eq!(cfg, Config::default());
}

#[test]
fn preprocessing_matches_reference() {
    let fx = fixture();
    let raw = fx.get("raw");
    let want = fx.get("input");
    let got = preprocess(raw).unwrap();
    assert_eq!(got.dims(), &[1, 18, NUM_FRAMES, 25, 2]);
    common::assert_close("input", &got, want, PREPROCESS_REL);
    eprintln!(
        "preprocessing: relative error {:.2e}",
        common::rel_err(&got, want)
    );
}

#[test]
fn checkpoint_adjacency_is_the_hop_partition() {
    let Some(pth) = checkpoint() else { return };
    let (cfg, state) = import_checkpoint(&pth).unwrap();
    let want = hop_partition(Layout::ntu25(), cfg.graph_max_hop, cfg.num_subsets())
        .to_tensor(&Device::Cpu)
        .unwrap();
    let mut n = 0;
    for (name, a) in &state {
        if name.ends_with(".conv.A") {
            let d = (a - &want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-6, "{name} differs from the hop partition by {d}");
            n += 1;
        }
    }
    assert_eq!(n, 11);
    // The trap: the code default max_hop = 10 gives another matrix.
    let wrong = hop_partition(Layout::ntu25(), 10, 3)
        .to_tensor(&Device::Cpu)
        .unwrap();
    assert!(common::rel_err(&wrong, &want) > 0.1);
}

#[test]
fn parity_with_reference_f32_folded_f16() {
    let Some(pth) = checkpoint() else { return };
    let fx = fixture();
    let (_, state) = import_checkpoint(&pth).unwrap();
    let x = fx.get("input");

    // f32, unfolded: every traced layer against the reference.
    let model = load_model(&state, DType::F32);
    let mut trace = Trace::on();
    let logits = model.forward_traced(x, false, &mut trace).unwrap();
    let names = fx.traces();
    let recorded: Vec<&str> = trace.entries().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        recorded,
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let mut report = Vec::new();
    for name in &names {
        let got = trace.get(name).unwrap();
        report.push((name.clone(), compare(&fx, name, got, common::F32_REL)));
    }

    // BN folded: against the unfolded model and the reference.
    let folded = model.fold_batch_norm().unwrap();
    let mut ftrace = Trace::on();
    let flogits = folded.forward_traced(x, false, &mut ftrace).unwrap();
    common::assert_close(
        "folded logits vs unfolded",
        &flogits,
        &logits,
        common::FOLD_REL,
    );
    for (name, got) in ftrace.entries() {
        let unfolded = trace.get(name).unwrap();
        common::assert_close(
            &format!("folded {name} vs unfolded"),
            got,
            unfolded,
            common::FOLD_REL,
        );
        compare(&fx, name, got, common::F32_REL);
    }

    // f16 weights and input, folded, against the reference.
    let model16 = load_model(&state, DType::F16);
    let folded16 = model16.fold_batch_norm().unwrap();
    let mut t16 = Trace::on();
    let logits16 = folded16
        .forward_traced(&x.to_dtype(DType::F16).unwrap(), false, &mut t16)
        .unwrap();
    assert_eq!(logits16.dtype(), DType::F16);
    let e16_logits = compare(&fx, "logits", &logits16, common::F16_REL);
    let e16_pooled = compare(&fx, "pooled", t16.get("pooled").unwrap(), common::F16_REL);

    for (name, e) in &report {
        eprintln!("f32 {name:<22} worst relative error {e:.2e}");
    }
    eprintln!(
        "f32 folded logits vs unfolded {:.2e}",
        common::rel_err(&flogits, &logits)
    );
    eprintln!("f16 folded: pooled {e16_pooled:.2e}, logits {e16_logits:.2e}");

    // Same decision as the reference.
    let want_top5: Vec<usize> = fx.meta["top5"]
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let got = top5(&logits);
    assert_eq!(got, want_top5);
    assert_eq!(top5(&flogits), want_top5);
    assert_eq!(
        top5(&logits16.to_dtype(DType::F32).unwrap())[0],
        want_top5[0]
    );
    let probs = candle_nn::ops::softmax(&logits, 1).unwrap().i(0).unwrap();
    for c in got {
        let p = probs.i(c).unwrap().to_scalar::<f32>().unwrap();
        eprintln!("top-5: {c:2} {:<40} p = {p:.4}", NTU60_CLASSES[c]);
    }
}

#[test]
fn parameter_count_is_pinned() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    EfficientGcn::new(&Config::default(), vb).unwrap();
    let data = vm.data().lock().unwrap();
    let mut params = 0;
    let mut edges = 0;
    for (name, var) in data.iter() {
        let n = var.elem_count();
        if name.ends_with(".edge") {
            edges += n;
        } else if !name.ends_with("running_mean") && !name.ends_with("running_var") {
            params += n;
        }
        assert!(
            !name.ends_with(".A"),
            "A is a constant, not a variable: {name}"
        );
    }
    assert_eq!(params, PARAMS);
    assert_eq!(edges, EDGE_PARAMS);
    let fx = fixture();
    assert_eq!(fx.meta["param_count"], PARAMS.to_string());
}

#[test]
fn macs_per_sample() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let model = EfficientGcn::new(&Config::default(), vb).unwrap();
    let x = Tensor::zeros((1, 18, NUM_FRAMES, 25, 2), DType::F32, &Device::Cpu).unwrap();
    let (y, macs) = flops::measure(|| model.forward_t(&x, false).unwrap());
    assert_eq!(y.dims(), &[1, 60]);
    let fx = fixture();
    let want: u64 = fx.meta["macs_ntu_t288_m2"].parse().unwrap();
    eprintln!("MACs per sample (T=288, M=2): {macs}");
    assert_eq!(macs, want);
    // folding changes no product
    let folded = model.fold_batch_norm().unwrap();
    let (_, fmacs) = flops::measure(|| folded.forward_t(&x, false).unwrap());
    assert_eq!(fmacs, want);
}

#[test]
fn wrong_input_shapes_are_errors() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let model = EfficientGcn::new(&Config::default(), vb).unwrap();
    let dev = Device::Cpu;
    for shape in [
        vec![1, 3, 16, 25, 2],  // raw coordinates, not the 18 stream channels
        vec![1, 18, 16, 20, 2], // wrong joints
        vec![18, 16, 25, 2],    // no batch
        vec![1, 18, 0, 25, 2],  // no frames
    ] {
        let x = Tensor::zeros(shape.as_slice(), DType::F32, &dev).unwrap();
        let r = model.forward_t(&x, false);
        assert!(matches!(r, Err(Error::Shape { .. })), "{shape:?}: {r:?}");
    }
}

#[test]
fn missing_weight_is_named() {
    let Some(pth) = checkpoint() else { return };
    let (cfg, mut state) = import_checkpoint(&pth).unwrap();
    let name = "main_stream.block-1_tcn-0.depth_conv.0.weight";
    state.remove(name);
    let vb = VarBuilder::from_tensors(state.clone(), DType::F32, &Device::Cpu);
    let err = EfficientGcn::new(&cfg, vb).unwrap_err();
    assert!(err.to_string().contains(name), "{err}");
    match check_state_dict(&cfg, &state, &pth) {
        Err(Error::MissingWeight { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected MissingWeight, got {other:?}"),
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("skelact-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn import_errors_are_typed() {
    // missing file
    let r = import_checkpoint(Path::new("/nonexistent/EfficientGCN-B0.pth.tar"));
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    // not a zip (the legacy pickle format starts with 0x80)
    let p = temp_file("legacy.pth.tar", b"\x80\x02\x8a\x0alegacy pickle");
    let r = import_checkpoint(&p);
    std::fs::remove_file(&p).ok();
    assert!(matches!(r, Err(Error::CorruptWeights { .. })), "{r:?}");
    // a zip that is truncated
    let p = temp_file("truncated.pth.tar", b"PK\x03\x04\x14\x00\x00\x00");
    let r = import_checkpoint(&p);
    std::fs::remove_file(&p).ok();
    assert!(matches!(r, Err(Error::CorruptWeights { .. })), "{r:?}");

    let Some(pth) = checkpoint() else { return };
    let (cfg, state) = import_checkpoint(&pth).unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(state.len(), 398 - 52, "tensors without num_batches_tracked");
    assert!(state.values().all(|t| t.dtype() == DType::F32));
    assert_eq!(expected_shapes(&cfg).unwrap().len(), state.len());
    // another configuration: the classifier's shape disagrees
    let other = Config {
        num_class: 120,
        ..Config::default()
    };
    match check_state_dict(&other, &state, &pth) {
        Err(Error::Mismatch { field, .. }) => assert_eq!(field, "classifier.fc.bias"),
        r => panic!("expected Mismatch, got {r:?}"),
    }
    // a tensor the network would not use
    let mut extra = state.clone();
    extra.insert(
        "classifier.fc2.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    match check_state_dict(&cfg, &extra, &pth) {
        Err(Error::Mismatch { field, .. }) => assert_eq!(field, "classifier.fc2.weight"),
        r => panic!("expected Mismatch, got {r:?}"),
    }
    // a wrong shape
    let mut wrong = state.clone();
    wrong.insert(
        "input_branches.1.init_bn.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    match check_state_dict(&cfg, &wrong, &pth) {
        Err(Error::Mismatch { field, .. }) => assert_eq!(field, "input_branches.1.init_bn.weight"),
        r => panic!("expected Mismatch, got {r:?}"),
    }
}
