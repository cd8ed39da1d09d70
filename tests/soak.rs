//! Memory soak of the live runtime, alone in its own test binary: RSS is a
//! process-wide number, so any other test running beside it (cargo runs the
//! tests of one binary on parallel threads) would be counted as growth.
//!
//! The runtime is run several times in one process under the binary's
//! allocator (mimalloc), wrapped to count the bytes the program holds. A
//! leak is memory still held after a run has ended: after the first run
//! has warmed the lazily built caches (rayon's pool, thread-locals), the
//! bytes held between runs must not grow. RSS is reported too, but only
//! bounded loosely: it moves by a hundred MiB from run to run with how much
//! freed memory the allocator keeps cached per thread, so it cannot tell a
//! leak from a busy machine. `SKELACT_SOAK_S` sets the length of each run
//! (seconds of 30 fps input), `SKELACT_SOAK_RUNS` the number of runs.

use std::alloc::{GlobalAlloc, Layout as AllocLayout};
use std::sync::atomic::{AtomicI64, Ordering};

/// mimalloc, counting the bytes currently allocated.
struct Counted;

static HELD: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        HELD.fetch_add(l.size() as i64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: AllocLayout) -> *mut u8 {
        HELD.fetch_add(l.size() as i64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        HELD.fetch_sub(l.size() as i64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, n: usize) -> *mut u8 {
        HELD.fetch_add(n as i64 - l.size() as i64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counted = Counted;

mod common;

use std::path::Path;

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
    let weights = common::seeded_weights(&card, 5);
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

    let mut held = Vec::new();
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
        held.push(HELD.load(Ordering::Relaxed) as f64 / 1024.0);
        rss.push(rss_kib().map_or(0.0, |k| k as f64 / 1024.0));
    }
    eprintln!("held between runs (KiB): {held:.0?}");
    eprintln!("RSS after each run (MiB): {rss:.0?}");
    // Run 1 builds the lazy caches; from run 2 on, nothing may stay behind.
    let grew = held[held.len() - 1] - held[1];
    assert!(
        grew < 256.0,
        "{grew:.0} KiB more held after run {} than after run 2 (per run: {held:.0?} KiB)",
        held.len()
    );
    let peak = rss.iter().cloned().fold(0.0, f64::max);
    assert!(
        peak < 2048.0,
        "RSS reached {peak:.0} MiB (per run: {rss:.0?})"
    );
}
