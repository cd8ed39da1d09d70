//! Train the CTR-GCN edge model on NW-UCLA cross-view through the library
//! API (what `skelact train` does, without the command line).
//!
//! ```sh
//! cargo run --release --features train --example train_nwucla -- EPOCHS [LIMIT]
//! ```

#[cfg(feature = "train")]
fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().collect();
    let epochs = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let data = std::env::var_os("SKELACT_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "../shared/data".into());
    let mut cfg = skelact::train::TrainConfig::nwucla(data, "runs/example-nwucla".into(), epochs);
    cfg.limit = args.get(2).map(|s| s.parse()).transpose()?;
    cfg.repeat = 1;
    cfg.command = args.join(" ");
    let out = skelact::train::train(&cfg)?;
    println!("{}", out.evaluation.report(&out.card.classes));
    Ok(())
}

#[cfg(not(feature = "train"))]
fn main() {
    eprintln!("this example needs `--features train`");
}
