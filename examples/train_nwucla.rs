//! Train the CTR-GCN edge model on NW-UCLA cross-view through the library
//! API — the recipe of the shipped `models/ctrgcn-edge-nwucla` (the CTR-GCN
//! authors' schedule, what `skelact train --epochs 65 --repeat 5
//! --eval-every 1` does: 325 passes, warm-up 5 epochs, lr 0.1 → 0.01 at
//! epoch 50; fewer epochs scale the warm-up and the step), without the
//! command line.
//!
//! ```sh
//! cargo run --release --features train --example train_nwucla -- \
//!     EPOCHS [WORK_DIR [OUT_DIR [TIME_BUDGET_S [LIMIT]]]]
//! ```
//!
//! A work directory with a checkpoint is resumed.

#[cfg(feature = "train")]
fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().collect();
    let epochs = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let work = args.get(2).map_or("runs/example-nwucla", |s| s.as_str());
    let data = std::env::var_os("SKELACT_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "../shared/data".into());
    let mut cfg = skelact::train::TrainConfig::nwucla(data, work.into(), epochs);
    cfg.out = args.get(3).map(Into::into);
    cfg.time_budget_s = args.get(4).map(|s| s.parse()).transpose()?;
    cfg.limit = args.get(5).map(|s| s.parse()).transpose()?;
    cfg.eval_every = 1;
    cfg.progress = false;
    cfg.command = args.join(" ");
    let out = skelact::train::train(&cfg)?;
    println!("{}", out.evaluation.report(&out.card.classes));
    Ok(())
}

#[cfg(not(feature = "train"))]
fn main() {
    eprintln!("this example needs `--features train`");
}
