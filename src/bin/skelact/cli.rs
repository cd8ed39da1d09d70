//! Subcommand implementations: argument handling and printing only.

use std::path::Path;

use anyhow::{bail, Result};
use candle_core::Device;
use skelact::model::{builtin, import, ModelCard, ModelDir};
use skelact::skeleton::Layout;

/// Checkpoint formats `skelact import` understands.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImportKind {
    /// The authors' EfficientGCN PyTorch checkpoint (`*.pth.tar`), NTU-60.
    Efficientgcn,
}

pub fn inspect(model: &str) -> Result<()> {
    let dev = Device::Cpu;
    let loaded = if Path::new(model).is_dir() {
        ModelDir::open(model)?.load(&dev, None)?
    } else if let Some(card) = builtin::card(model) {
        println!("(built-in architecture with fresh weights; no trained model)");
        builtin::fresh(&card?, &dev)?
    } else {
        bail!(
            "`{model}` is neither a model directory nor a built-in architecture ({})",
            builtin::NAMES.join(", ")
        );
    };
    let macs = builtin::macs_per_window(&loaded, &dev)?;
    print_card(&loaded.card);
    println!(
        "parameters       {} ({:.3} M)",
        loaded.num_params,
        loaded.num_params as f64 / 1e6
    );
    let c = &loaded.card;
    println!(
        "MACs per window  {:.3} G  (1 window of {} frames x {} joints x {} persons; FLOPs = 2 x MACs)",
        macs as f64 / 1e9,
        c.temporal.frames,
        c.layout()?.num_joints(),
        c.input.persons
    );
    Ok(())
}

fn print_card(c: &ModelCard) {
    println!("name             {}", c.name);
    if !c.description.is_empty() {
        println!("description      {}", c.description);
    }
    println!("architecture     {}", c.architecture.family());
    println!(
        "layout           {} (edge hash {})",
        c.skeleton.layout, c.skeleton.edge_hash
    );
    let streams: Vec<String> = c.input.streams.iter().map(|s| format!("{s:?}")).collect();
    println!(
        "input            {} channels = [{}], {} person(s), center joint {}",
        c.input.channels(),
        streams.join(", "),
        c.input.persons,
        c.input.center_joint
    );
    println!(
        "temporal         {} frames at {} fps, sampling {:?}",
        c.temporal.frames, c.temporal.source_fps, c.temporal.sampling
    );
    println!("normalization    {:?}", c.normalization);
    println!("precision        {:?}", c.precision);
    let shown: Vec<&str> = c.classes.iter().take(6).map(String::as_str).collect();
    println!(
        "classes          {}: {}{}",
        c.classes.len(),
        shown.join(", "),
        if c.classes.len() > shown.len() {
            ", ..."
        } else {
            ""
        }
    );
    let p = &c.provenance;
    if !p.command.is_empty() {
        println!("made by          {}", p.command);
    }
    if !p.data.is_empty() {
        println!("data             {} ({})", p.data, p.split);
    }
    for (k, v) in &p.metrics {
        println!("metric {k:<10} {v:.4}");
    }
    if !p.license.is_empty() {
        println!("license          {}", p.license);
    }
}

pub fn layouts(joints: bool) -> Result<()> {
    for l in Layout::all() {
        println!(
            "{:<14} {:>2} joints  root {:<16} edge hash {}",
            l.name(),
            l.num_joints(),
            l.joint_names()[l.root()],
            l.edge_hash()
        );
        if joints {
            for (i, (name, &p)) in l.joint_names().iter().zip(l.parents()).enumerate() {
                println!("    {i:>2} {name:<20} <- {}", l.joint_names()[p]);
            }
        }
    }
    Ok(())
}

pub fn import(kind: ImportKind, checkpoint: &Path, out: &Path) -> Result<()> {
    match kind {
        ImportKind::Efficientgcn => {
            let dir = import::efficientgcn(checkpoint, out)?;
            println!("wrote {}", dir.path().display());
            inspect(&dir.path().display().to_string())
        }
    }
}
