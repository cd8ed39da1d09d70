//! `skelact` — the command-line front end over the library.
//!
//! Each subcommand is a thin wrapper: parsing and printing here, the work in
//! `skelact::*`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Skeleton-based action recognition on the edge.
#[derive(Parser, Debug)]
#[command(name = "skelact", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a model's card, parameter count and multiply-accumulates per
    /// window. Takes a model directory, or a built-in architecture name
    /// (ctrgcn, ctrgcn-edge, stgcn, stgcn-edge, efficientgcn-b0).
    Inspect {
        /// Model directory or built-in architecture.
        model: String,
    },
    /// List the skeleton layouts with their joints and edge hashes.
    Layouts {
        /// Print every joint with its parent.
        #[arg(long)]
        joints: bool,
    },
    /// Convert a published checkpoint into a skelact model directory.
    Import {
        /// Which checkpoint format.
        #[arg(value_enum)]
        kind: cli::ImportKind,
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The model directory to create.
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match args.command {
        Command::Inspect { model } => cli::inspect(&model).context("inspect"),
        Command::Layouts { joints } => cli::layouts(joints),
        Command::Import {
            kind,
            checkpoint,
            out,
        } => cli::import(kind, &checkpoint, &out).context("import"),
    }
}
