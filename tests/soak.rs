//! Memory soak of the live runtime, alone in its own test binary: RSS is a
//! process-wide number, so any other test running beside it (cargo runs the
//! tests of one binary on parallel threads) would be counted as growth.
//!
//! The runtime is run several times in one process under the binary's
//! allocator; after the first run has warmed the allocator and the model
//! caches, RSS must stay flat from run to run. `SKELACT_SOAK_S` sets the
//! length of each run (seconds of 30 fps input), `SKELACT_SOAK_RUNS` the
//! number of runs.

/// The binary's allocator, so the soak measures what a deployment runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use skelact::model::directory::build_encoder;
use skelact::model::{builtin, ModelDir};
use skelact::runtime::{Pace, Runtime};
use skelact::source::synthetic::SyntheticSource;

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn write_fresh_model(path: &Path) {
    let card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    build_encoder(&card.architecture, vb).unwrap();
    let weights: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    ModelDir::create(path, &card, &weights).unwrap();
}

#[test]
fn soak_memory_stays_flat_run_over_run() {
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<f32>().ok());
    let secs = env("SKELACT_SOAK_S").unwrap_or(10.0);
    let runs = env("SKELACT_SOAK_RUNS").unwrap_or(4.0) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ctrgcn-edge-fresh");
    write_fresh_model(&dir);

    let mut rss = Vec::new();
    for _ in 0..runs.max(3) {
        let report = Runtime::builder()
            .source(SyntheticSource::new(4, secs, 3))
            .model_dir(&dir)
            .stride(26)
            .pace(Pace::Fast)
            .build()
            .unwrap()
            .run()
            .unwrap();
        assert!(report.windows > 0, "{report}");
        rss.push(rss_kib());
    }
    let Some(rss): Option<Vec<u64>> = rss.into_iter().collect() else {
        eprintln!("SKIPPED: no /proc/self/status");
        return;
    };
    let mib: Vec<f64> = rss.iter().map(|k| *k as f64 / 1024.0).collect();
    eprintln!("RSS after each run (MiB): {mib:.1?}");
    // Runs 1 and 2 warm the allocator's caches and the model; RSS then
    // moves up and down by tens of MiB as caches are kept or returned. A
    // leak grows it steadily: the last run must not end above the highest of
    // the first two by more than that noise.
    let warm = mib[0].max(mib[1]);
    let grew = mib[mib.len() - 1] - warm;
    assert!(
        grew < 32.0,
        "RSS grew {grew:.1} MiB after warm-up over {} runs (per run: {mib:.1?})",
        mib.len()
    );
}
