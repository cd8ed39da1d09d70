//! CTR-GCN against the PyTorch reference, layer by layer.
//!
//! The fixture `tests/fixtures/ctrgcn.safetensors` holds the published
//! network for NTU-25 (60 classes) with every parameter and buffer
//! randomized, an input (N, C, T, V, M) = (2, 3, 16, 25, 2) and the
//! reference's output at every traced point; `gen_ctrgcn.py` beside it made
//! it (`python3 tests/fixtures/gen_ctrgcn.py`) and its weights load into
//! the authors' `Model` with `strict=True`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use skelact::model::ctrgcn::{BlockSpec, Config, CtrGcn};
use skelact::model::{flops, Encoder, Trace};
use skelact::skeleton::{graph, Layout};

/// Parameters of the published model with 60 classes, as PyTorch counts
/// them (`gen_ctrgcn.py` prints it; the paper's "1.46 M" is the 120-class
/// model: + 256 * 60 + 60 = 1 462 092).
const PUBLISHED_PARAMS_NTU60: usize = 1_446_672;
/// Parameters of `Config::edge("kinect20-ucla", 10)`.
const EDGE_PARAMS_UCLA10: usize = 137_164;

struct Fixture {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn fixture() -> Fixture {
    let path = common::fixtures().join("ctrgcn.safetensors");
    let bytes = std::fs::read(&path).expect("read fixture (run tests/fixtures/gen_ctrgcn.py)");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("fixture header");
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("fixture tensors");
    Fixture {
        path,
        tensors,
        meta,
    }
}

impl Fixture {
    fn config(&self) -> Config {
        toml::from_str(&self.meta["config_toml"]).expect("config_toml parses as ctrgcn::Config")
    }

    fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"))
    }

    fn vb(&self, dtype: DType) -> VarBuilder<'static> {
        // SAFETY: the fixture file is not modified while the test runs.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&self.path], dtype, &Device::Cpu).unwrap()
        };
        vb.pp("weight")
    }

    fn traces(&self) -> BTreeSet<String> {
        self.tensors
            .keys()
            .filter_map(|k| k.strip_prefix("trace.").map(str::to_string))
            .collect()
    }
}

fn run_traced(model: &dyn Encoder, x: &Tensor) -> Trace {
    let mut trace = Trace::on();
    let logits = model.forward_traced(x, false, &mut trace).unwrap();
    assert_eq!(trace.get("logits").unwrap().dims(), logits.dims());
    trace
}

/// Compares every traced point with `want(name)`, returns the worst error.
fn compare_all(
    label: &str,
    trace: &Trace,
    names: &BTreeSet<String>,
    want: impl Fn(&str) -> Tensor,
    tol: f64,
) -> f64 {
    let mut worst = (0.0f64, String::new());
    for name in names {
        let got = trace
            .get(name)
            .unwrap_or_else(|| panic!("{label}: trace lacks {name}"));
        let want = want(name);
        common::assert_close(&format!("{label} {name}"), got, &want, tol);
        let e = common::rel_err(got, &want);
        if e > worst.0 {
            worst = (e, name.clone());
        }
    }
    println!(
        "{label}: {} traced points, worst relative error {:.3e} at {}",
        names.len(),
        worst.0,
        worst.1
    );
    worst.0
}

#[test]
fn config_in_fixture_is_the_published_one() {
    let f = fixture();
    let cfg = f.config();
    assert_eq!(cfg, Config::published("ntu25", 60).unwrap());
    assert_eq!(cfg.blocks.len(), 10);
    assert_eq!(
        cfg.blocks[4],
        BlockSpec {
            out_channels: 128,
            stride: 2
        }
    );
    // A typed config refuses keys it does not know.
    let bad = format!("width_mult = 2\n{}", &f.meta["config_toml"]);
    assert!(toml::from_str::<Config>(&bad).is_err());
}

#[test]
fn every_layer_matches_reference() {
    let f = fixture();
    let model = CtrGcn::new(&f.config(), f.vb(DType::F32)).unwrap();
    let trace = run_traced(&model, f.get("input"));
    let recorded: BTreeSet<String> = trace.entries().iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        recorded,
        f.traces(),
        "trace names differ from the fixture's"
    );
    assert_eq!(recorded.len(), 1 + 2 * 10 + 2);
    compare_all(
        "f32",
        &trace,
        &f.traces(),
        |n| f.get(&format!("trace.{n}")).clone(),
        common::F32_REL,
    );
}

#[test]
fn folded_model_matches_unfolded_and_reference() {
    let f = fixture();
    let model = CtrGcn::new(&f.config(), f.vb(DType::F32)).unwrap();
    let folded = model.fold_batch_norm().unwrap();
    let x = f.get("input");
    let plain = run_traced(&model, x);
    let fast = run_traced(folded.as_ref(), x);
    let names = f.traces();
    compare_all(
        "folded vs unfolded",
        &fast,
        &names,
        |n| plain.get(n).unwrap().clone(),
        common::FOLD_REL,
    );
    compare_all(
        "folded vs reference",
        &fast,
        &names,
        |n| f.get(&format!("trace.{n}")).clone(),
        common::F32_REL,
    );
    // A folded network has no batch statistics to train.
    assert!(folded.forward_t(x, true).is_err());
}

#[test]
fn folded_f16_matches_reference() {
    let f = fixture();
    let model = CtrGcn::new(&f.config(), f.vb(DType::F16)).unwrap();
    let folded = model.fold_batch_norm().unwrap();
    let x = f.get("input").to_dtype(DType::F16).unwrap();
    let trace = run_traced(folded.as_ref(), &x);
    assert_eq!(trace.get("logits").unwrap().dtype(), DType::F16);
    // Every point, the logits included, within the f16 tolerance.
    let names = f.traces();
    compare_all(
        "f16 folded vs reference",
        &trace,
        &names,
        |n| f.get(&format!("trace.{n}")).clone(),
        common::F16_REL,
    );
}

#[test]
fn weight_names_and_shapes_equal_the_reference_state_dict() {
    let f = fixture();
    let vm = VarMap::new();
    CtrGcn::new(
        &f.config(),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let ours: BTreeSet<(String, Vec<usize>)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    let theirs: BTreeSet<(String, Vec<usize>)> = f
        .tensors
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("weight.")
                .map(|k| (k.to_string(), v.dims().to_vec()))
        })
        .collect();
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only in skelact: {only_ours:?}\nonly in the reference: {only_theirs:?}"
    );
}

#[test]
fn parameter_count_and_macs() {
    let f = fixture();
    let dev = Device::Cpu;
    let count = |cfg: &Config| -> (usize, CtrGcn) {
        let vm = VarMap::new();
        let model = CtrGcn::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        // Trainable parameters as PyTorch counts them: BN running
        // statistics are buffers, not parameters.
        let n = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
            .map(|(_, v)| v.elem_count())
            .sum();
        (n, model)
    };
    let macs_of =
        |model: &CtrGcn, x: &Tensor| flops::measure(|| model.forward_t(x, false).unwrap()).1;

    // Published, NTU-25, 60 classes, one sample of T = 64, M = 2.
    let cfg = Config::published("ntu25", 60).unwrap();
    let (params, model) = count(&cfg);
    let x = Tensor::zeros((1, 3, 64, 25, 2), DType::F32, &dev).unwrap();
    let macs = macs_of(&model, &x);
    let reference_macs: u64 = f.meta["macs_ntu_t64_m2"].parse().unwrap();
    // skelact averages over time before the relation convs conv1/conv2 (1x1,
    // so the result is the same); the reference convolves every frame.
    let mut saved = 0u64;
    let (mut c_in, mut t) = (cfg.in_channels, 64usize);
    for b in &cfg.blocks {
        let rel = cfg.rel_channels(c_in);
        saved += (3 * 2 * 2 * rel * c_in * (t - 1) * 25) as u64;
        c_in = b.out_channels;
        t = t.div_ceil(b.stride);
    }
    println!(
        "published CTR-GCN (ntu25, 60 classes): {params} parameters (reference {}); \
         {:.4} GMACs per NTU sample (T=64, M=2), reference as written {:.4} G \
         (paper ~1.94 G; {:.4} G saved by averaging before conv1/conv2)",
        f.meta["param_count"],
        macs as f64 / 1e9,
        reference_macs as f64 / 1e9,
        saved as f64 / 1e9
    );
    assert_eq!(params, PUBLISHED_PARAMS_NTU60);
    assert_eq!(params.to_string(), f.meta["param_count"]);
    assert_eq!(macs + saved, reference_macs);

    // Edge variant, NW-UCLA layout, 10 classes, one person, 52 frames.
    let cfg = Config::edge("kinect20-ucla", 10).unwrap();
    let (params, model) = count(&cfg);
    let x = Tensor::zeros((1, 3, 52, 20, 1), DType::F32, &dev).unwrap();
    let edge_macs = macs_of(&model, &x);
    let published = Config::published("kinect20-ucla", 10).unwrap();
    let (pub_params, pub_model) = count(&published);
    let pub_macs = macs_of(&pub_model, &x);
    println!(
        "edge CTR-GCN (kinect20-ucla, 10 classes): {params} parameters, {:.4} GMACs per sample \
         (T=52, M=1); published on the same input: {pub_params} parameters, {:.4} GMACs ({:.1}x)",
        edge_macs as f64 / 1e9,
        pub_macs as f64 / 1e9,
        pub_macs as f64 / edge_macs as f64
    );
    assert_eq!(params, EDGE_PARAMS_UCLA10);
    assert!(edge_macs * 9 < pub_macs);
}

#[test]
fn fresh_weights_start_from_the_layout_graph() {
    let f = fixture();
    let want = f.get("graph.A");
    // The skeleton module's CTR-GCN graph is the reference's.
    let a = graph::ctrgcn_spatial(Layout::ntu25())
        .to_tensor(&Device::Cpu)
        .unwrap();
    common::assert_close("ctrgcn_spatial(ntu25)", &a, want, 0.0);
    // A fresh model's PA is that graph, alpha is 0, and it runs in
    // training mode.
    let vm = VarMap::new();
    let cfg = Config::published("ntu25", 60).unwrap();
    let model = CtrGcn::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    {
        let data = vm.data().lock().unwrap();
        for k in 1..=10 {
            let pa = data[&format!("l{k}.gcn1.PA")].as_tensor();
            common::assert_close(&format!("l{k}.gcn1.PA"), pa, want, 0.0);
            let alpha = data[&format!("l{k}.gcn1.alpha")].as_tensor();
            assert_eq!(alpha.to_vec1::<f32>().unwrap(), vec![0.0]);
        }
    }
    let logits = model.forward_t(f.get("input"), true).unwrap();
    assert_eq!(logits.dims(), &[2, 60]);
    let feats = model.features(f.get("input"), false).unwrap();
    assert_eq!(feats.dims(), &[4, 256, 4, 25]);
}

#[test]
fn wrong_input_shape_is_an_error() {
    let f = fixture();
    let model = CtrGcn::new(&f.config(), f.vb(DType::F32)).unwrap();
    let dev = Device::Cpu;
    for dims in [
        vec![2, 3, 16, 25],       // rank 4
        vec![2, 3, 16, 25, 2, 1], // rank 6
        vec![2, 6, 16, 25, 2],    // channels
        vec![2, 3, 16, 20, 2],    // joints
        vec![2, 3, 16, 25, 1],    // persons
        vec![2, 3, 0, 25, 2],     // no frames
    ] {
        let x = Tensor::zeros(dims.as_slice(), DType::F32, &dev).unwrap();
        match model.forward_t(&x, false) {
            Err(skelact::Error::Shape { got, .. }) => assert_eq!(got, dims),
            other => panic!("{dims:?}: expected a shape error, got {other:?}"),
        }
        assert!(model.features(&x, false).is_err());
    }
}

#[test]
fn missing_weight_is_an_error_naming_it() {
    let f = fixture();
    let mut weights: HashMap<String, Tensor> = f
        .tensors
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("weight.")
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect();
    for name in ["l3.gcn1.PA", "l5.tcn1.branches.2.4.running_var", "fc.bias"] {
        let removed = weights.remove(name).unwrap();
        let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu);
        let err = CtrGcn::new(&f.config(), vb).unwrap_err();
        assert!(
            err.to_string().contains(name),
            "error does not name {name}: {err}"
        );
        weights.insert(name.to_string(), removed);
    }
}

#[test]
fn config_must_fit_the_layout() {
    let mut cfg = Config::published("ntu25", 60).unwrap();
    cfg.num_point = 20;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    assert!(matches!(
        CtrGcn::new(&cfg, vb.clone()),
        Err(skelact::Error::Mismatch { .. })
    ));
    let mut cfg = Config::published("ntu25", 60).unwrap();
    cfg.blocks[2].out_channels = 66; // not a multiple of 4 branches
    assert!(matches!(
        CtrGcn::new(&cfg, vb),
        Err(skelact::Error::Config { .. })
    ));
    assert!(Config::published("no-such-layout", 60).is_err());
}

#[test]
fn every_parameter_receives_a_gradient() {
    let f = fixture();
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let cfg = Config::published("ntu25", 60).unwrap();
    let model = CtrGcn::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    // Nonzero alpha so that the refinement convs get nonzero gradients too.
    for k in 1..=cfg.blocks.len() {
        let data = vm.data().lock().unwrap();
        data[&format!("l{k}.gcn1.alpha")]
            .set(&Tensor::new(&[0.1f32], &dev).unwrap())
            .unwrap();
    }
    let logits = model.forward_t(f.get("input"), true).unwrap();
    let grads = logits.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let data = vm.data().lock().unwrap();
    let mut missing = Vec::new();
    for (name, var) in data.iter() {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            continue;
        }
        match grads.get(var.as_tensor()) {
            Some(g) => {
                let norm = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                if !(norm > 0.0 && norm.is_finite()) {
                    missing.push(format!("{name} (|g|^2 = {norm})"));
                }
            }
            None => missing.push(name.clone()),
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}

/// The fixture's weights under their state-dict names.
fn state_dict(fx: &Fixture, dtype: DType) -> HashMap<String, Tensor> {
    fx.tensors
        .iter()
        .filter_map(|(k, t)| {
            k.strip_prefix("weight.")
                .map(|n| (n.to_string(), t.to_dtype(dtype).unwrap()))
        })
        .collect()
}

/// The CPU inference plan (folded weights, own kernels) reproduces the
/// reference logits, from f32 and from f16 weights.
#[test]
fn cpu_plan_matches_reference() {
    let fx = fixture();
    let cfg = fx.config();
    let x = fx.get("input");
    let want = fx.get("trace.logits");
    let plan = skelact::model::ctrgcn::CpuCtrGcn::new(&cfg, &state_dict(&fx, DType::F32)).unwrap();
    let got = plan.forward(x).unwrap();
    common::assert_close("cpu plan logits (f32)", &got, want, common::F32_REL);
    eprintln!("cpu plan f32 rel err {:.2e}", common::rel_err(&got, want));
    let plan16 =
        skelact::model::ctrgcn::CpuCtrGcn::new(&cfg, &state_dict(&fx, DType::F16)).unwrap();
    let got16 = plan16.forward(&x.to_dtype(DType::F16).unwrap()).unwrap();
    common::assert_close(
        "cpu plan logits (f16 weights)",
        &got16,
        want,
        common::F16_REL,
    );
    // Batch of one (the single-sample, threaded path) equals the batch.
    let one = plan.forward(&x.narrow(0, 1, 1).unwrap()).unwrap();
    common::assert_close(
        "cpu plan batch-1",
        &one,
        &got.narrow(0, 1, 1).unwrap(),
        common::FOLD_REL,
    );
}

/// The edge variant on a 20-joint layout, odd clip lengths and random
/// trained-like weights: the CPU plan equals the candle model.
#[test]
fn cpu_plan_matches_candle_on_the_edge_variant() {
    let cfg = Config::edge("kinect20-ucla", 10).unwrap();
    let vm = VarMap::new();
    let model = CtrGcn::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    // Perturb every variable so BN, alpha and biases are not at their init
    // (variances stay positive).
    for (name, var) in vm.data().lock().unwrap().iter() {
        let t = var.as_tensor();
        let noise = Tensor::randn(0f32, 0.2, t.dims(), &Device::Cpu).unwrap();
        let mut p = (t + noise).unwrap();
        if name.ends_with("running_var") {
            p = (p.abs().unwrap() + 0.5).unwrap();
        }
        var.set(&p).unwrap();
    }
    let weights: HashMap<String, Tensor> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let plan = skelact::model::ctrgcn::CpuCtrGcn::new(&cfg, &weights).unwrap();
    for t in [13usize, 52] {
        let x = Tensor::randn(0f32, 1.0, (3, 3, t, 20, 1), &Device::Cpu).unwrap();
        let (want, macs) = flops::measure(|| model.forward_t(&x, false).unwrap());
        let (got, plan_macs) = flops::measure(|| plan.forward(&x).unwrap());
        assert_eq!(plan_macs, macs, "MAC count, T={t}");
        common::assert_close(&format!("edge T={t}"), &got, &want, common::F32_REL);
    }
}
