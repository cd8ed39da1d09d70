//! Helpers shared by the integration tests: named tolerances, tensor
//! comparison, and the one place that finds `../shared/data`.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Tensor};

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
