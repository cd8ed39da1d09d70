//! Helpers shared by the integration tests: named tolerances, tensor
//! comparison, seeded model weights, and the one place that finds
//! `../shared/data`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use skelact::model::directory::build_encoder;
use skelact::model::ModelCard;

/// f32 against the PyTorch reference: relative error (max abs difference
/// over max abs reference value).
pub const F32_REL: f64 = 1e-4;
/// f16 storage and compute against the f32 reference.
pub const F16_REL: f64 = 1e-2;
/// Batch-norm folding against the unfolded model, both f32.
pub const FOLD_REL: f64 = 1e-5;

/// `max|got - want| / max|want|` (with a floor of 1e-12 on the divisor).
pub fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
    let g = got.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let w = want.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    assert_eq!(g.dims(), w.dims(), "element counts differ");
    let diff = (g - &w)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let scale = w.abs().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
    diff / scale.max(1e-12)
}

/// Asserts `got` matches `want` in shape and within `tol` relative error,
/// naming the layer in the message.
pub fn assert_close(name: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.dims(), want.dims(), "{name}: shape differs");
    let e = rel_err(got, want);
    assert!(e <= tol, "{name}: relative error {e:.3e} > {tol:.0e}");
}

/// The test fixtures folder (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The shared data folder: `$SKELACT_DATA`, else `../shared/data` beside
/// the repository. Returns `None` — after saying so on stderr — when the
/// requested entry is missing, so a test can return early with a clear
/// message instead of failing obscurely.
pub fn shared_data(entry: &str) -> Option<PathBuf> {
    let root = std::env::var_os("SKELACT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let p = root.join(entry);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found (set SKELACT_DATA to the shared data folder)",
            p.display()
        );
        None
    }
}

/// Deterministic pseudo-random values in [-1, 1) (xorshift64*), so that a
/// test's numbers are the same on every run.
pub fn uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (r as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Weights for `card`'s encoder with the names and shapes its builder
/// creates, but values drawn from `seed` (not candle's unseeded
/// initializers): tensors of two or more dimensions uniform in
/// ±1/sqrt(fan-in), batch-norm running means in ±0.1 and variances in
/// [0.5, 1.5) (so that folding them changes the weights), other vectors
/// uniform in ±1/sqrt(len) unless the builder made them constant (BN
/// gammas and betas, CTR-GCN's alpha), which keep that constant.
pub fn seeded_weights(card: &ModelCard, seed: u64) -> HashMap<String, Tensor> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    build_encoder(&card.architecture, vb).unwrap();
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let t = data[name].as_tensor();
            let n = t.elem_count();
            let name_seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            }) ^ seed;
            let u = uniform(name_seed, n);
            let orig: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let constant = orig.iter().all(|&x| x == orig[0]);
            let v: Vec<f32> = if name.ends_with("running_var") {
                u.iter().map(|x| 1.0 + 0.5 * x).collect()
            } else if name.ends_with("running_mean") {
                u.iter().map(|x| 0.1 * x).collect()
            } else if t.rank() >= 2 {
                let fan_in = (n / t.dims()[0]).max(1) as f32;
                u.iter().map(|x| x / fan_in.sqrt()).collect()
            } else if constant {
                orig
            } else {
                u.iter().map(|x| x / (n as f32).sqrt()).collect()
            };
            let v = Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap();
            (name.clone(), v)
        })
        .collect()
}

/// Every tensor of `vm` as `(name, f32 values)`, sorted by name: two weight
/// maps compare equal exactly when their tensors do.
pub fn varmap_values(vm: &VarMap) -> anyhow::Result<Vec<(String, Vec<f32>)>> {
    let data = vm.data().lock().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::with_capacity(data.len());
    for (name, var) in data.iter() {
        out.push((name.clone(), var.as_tensor().flatten_all()?.to_vec1()?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// BlazePose's folder from `$SKELACT_POSE_MODEL`, or `None` after printing
/// SKIPPED (a failure under CI, which fetches it).
pub fn pose_model() -> Option<PathBuf> {
    let env = skelact::pose::POSE_MODEL_ENV;
    match std::env::var_os(env).filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{env} is not set under CI: .ci/run fetches it with .ci/fetch-blazepose.sh"
            );
            eprintln!("SKIPPED: no BlazePose model ({env} unset; see .ci/fetch-blazepose.sh)");
            None
        }
    }
}

/// Runs `source` through the model directory `model` on the x86-cpu board,
/// as fast as the source gives frames, and returns the run's report.
pub fn run_fast(
    source: impl skelact::source::JointSource + 'static,
    model: &Path,
) -> skelact::runtime::Report {
    skelact::runtime::Runtime::builder()
        .source(source)
        .model_dir(model.to_path_buf())
        .board(skelact::board::Board::builtin("x86-cpu").unwrap())
        .pace(skelact::runtime::Pace::Fast)
        .build()
        .unwrap()
        .run()
        .unwrap()
}

/// A PyTorch fixture's traces (`trace.<name>` tensors), keyed by name.
pub fn reference_traces(ts: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    ts.iter()
        .filter_map(|(k, v)| k.strip_prefix("trace.").map(|n| (n.to_string(), v.clone())))
        .collect()
}

/// Asserts that `trace` records exactly the reference's names and that
/// every layer is within `tol` of it; returns the worst relative error.
pub fn assert_trace_matches(
    trace: &skelact::model::Trace,
    want: &HashMap<String, Tensor>,
    tol: f64,
) -> f64 {
    let mut got: Vec<&str> = trace.entries().iter().map(|(n, _)| n.as_str()).collect();
    let mut expected: Vec<&str> = want.keys().map(String::as_str).collect();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected, "traced names differ from the reference's");
    let mut worst = 0f64;
    for (name, t) in trace.entries() {
        assert_close(name, t, &want[name], tol);
        worst = worst.max(rel_err(t, &want[name]));
    }
    worst
}

/// Top-1 of the model directory `dir` on `clips`, loaded in `dtype`
/// (`None`: as stored) and scored by the trainer's evaluation path on the
/// CPU, as a user's `skelact eval` would.
#[cfg(feature = "train")]
pub fn reloaded_top1(
    dir: &skelact::model::ModelDir,
    clips: &[skelact::source::Clip],
    dtype: Option<DType>,
) -> anyhow::Result<f64> {
    let loaded = dir.load(&Device::Cpu, dtype)?;
    let e = skelact::train::trainer::evaluate(
        loaded.encoder.as_ref(),
        dir.card(),
        clips,
        64,
        &Device::Cpu,
    )?;
    Ok(e.top1)
}

/// Every tensor of the fixture file `file` (in `tests/fixtures/`).
pub fn fixture_tensors(file: &str) -> anyhow::Result<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load(
        fixtures().join(file),
        &Device::Cpu,
    )?)
}

/// A builder over the `weight.*` tensors of the fixture file `file`, as
/// the PyTorch generators store a reference's state dict.
pub fn fixture_weights(file: &str, dtype: DType) -> anyhow::Result<VarBuilder<'static>> {
    // SAFETY: the fixture is not modified while the test runs.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[fixtures().join(file)], dtype, &Device::Cpu)?
    };
    Ok(vb.pp("weight"))
}

/// Asserts that `path` is a `width x height` PNG with something drawn on
/// it (more than one colour): a plot the trainer wrote.
#[cfg(feature = "train")]
pub fn assert_plot(path: &Path, width: usize, height: usize) {
    let img =
        skelact::pose::image::read_png(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        (img.width, img.height),
        (width, height),
        "{}",
        path.display()
    );
    let first = &img.rgb[..3];
    assert!(
        img.rgb.chunks(3).any(|p| p != first),
        "{} is one colour",
        path.display()
    );
}
