//! `skelact run`, `skelact record` and `skelact bench pipeline`: argument
//! handling and printing over [`skelact::runtime`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use skelact::board::Board;
use skelact::model::{builtin, Ensemble, LoadedModel, ModelDir};
use skelact::runtime::sink::{JsonLines, UdpJson};
use skelact::runtime::{
    DecisionConfig, Event, EventKind, Pace, Report, Runtime, RuntimeBuilder, Sink,
};
use skelact::skeleton::Layout;
use skelact::source::recording::{RecordingSource, RecordingWriter};
use skelact::source::replay::{ReplaySource, Segment};
use skelact::source::synthetic::SyntheticSource;
use skelact::source::udp::UdpSource;
use skelact::source::{Frame, JointSource};
use skelact::window::input::{clip_windows_input, PoseSeq};

/// The model `skelact run` uses when none is given.
pub const DEFAULT_MODEL: &str = "models/ctrgcn-edge-nwucla";

/// Options of `skelact run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Where joints come from: `synthetic`, `replay:nwucla[:DIR]`,
    /// `replay:utd[:DIR]`, `replay:ntu:DIR`, `recording:FILE`,
    /// `udp:ADDR[@LAYOUT]`, `realsense` (a camera) or `realsense:FILE`
    /// (a `.bag` / `.db3` recording; feature `realsense`).
    #[arg(long, default_value = "synthetic")]
    pub source: String,
    /// 2D landmark model directory (BlazePose) for `--source realsense`.
    #[arg(long)]
    pub pose_model: Option<PathBuf>,
    /// Model directory, or `builtin:NAME` for an architecture with fresh
    /// (untrained) weights. Default: the shipped model. Repeat it to fuse
    /// several models on every window (one per input stream, for example:
    /// joint, bone, joint-motion, bone-motion), their logits summed with
    /// `--weights`.
    #[arg(long)]
    pub model: Vec<String>,
    /// Fusion weights, one per `--model` (default: CTR-GCN's, 0.6 for joint
    /// and bone models, 0.4 for motion models, shared equally by models of
    /// the same stream).
    #[arg(long, value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,
    /// Board profile name (x86-cpu, jetson-orin-nano, jetson-agx-orin,
    /// jetson-xavier-nx) or a .toml file.
    #[arg(long, default_value = "x86-cpu")]
    pub board: String,
    /// Where events go: `stdout`, `file:PATH`, `udp:ADDR`, `none`
    /// (repeatable).
    #[arg(long, default_value = "stdout")]
    pub sink: Vec<String>,
    /// People in the synthetic scene.
    #[arg(long, default_value_t = 3)]
    pub people: usize,
    /// Seconds of synthetic scene.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f32,
    /// Pace a replay or recording at its recorded rate (the synthetic scene
    /// always is, unless --fast).
    #[arg(long)]
    pub realtime: bool,
    /// Do not pace: read the source as fast as it goes.
    #[arg(long, conflicts_with = "realtime")]
    pub fast: bool,
    /// NW-UCLA view to replay (1..3; the cross-view test view is 3).
    #[arg(long, default_value_t = 3)]
    pub view: u32,
    /// UTD-MHAD performers to replay: `test` (the cross-subject test
    /// subjects 2, 4, 6, 8), `train` (1, 3, 5, 7) or `all`.
    #[arg(long, default_value = "test")]
    pub subjects: String,
    /// Most clips to replay.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
    /// Seconds of empty frames between replayed clips.
    #[arg(long, default_value_t = 1.0)]
    pub gap: f32,
    /// Frames between windows of one person (default: the board's).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Most people tracked (default: the board's).
    #[arg(long)]
    pub max_people: Option<usize>,
    /// Fewest frames of the short window a person who leaves before a full
    /// window yields (default: half the model's window).
    #[arg(long)]
    pub min_frames: Option<usize>,
    /// Also emit every window's class probabilities.
    #[arg(long)]
    pub scores: bool,
    /// Write the run's report as JSON to this file (`-` for stdout).
    #[arg(long)]
    pub report_json: Option<String>,
    /// Run a model even if it needs more compute than the board has.
    #[arg(long)]
    pub no_fit_check: bool,
    /// One-Euro smoothing of the tracked joints: `MIN_CUTOFF_HZ,BETA`
    /// (e.g. `1,1`), or `default`. Off unless given (models are trained on
    /// raw joints).
    #[arg(long)]
    pub smooth: Option<String>,
}

/// Parses `--smooth`.
fn parse_smoothing(s: &str) -> Result<skelact::runtime::OneEuro> {
    let mut p = skelact::runtime::OneEuro::default();
    if s != "default" {
        let parts: Vec<&str> = s.split(',').collect();
        let num = |x: &str| -> Result<f32> {
            x.trim()
                .parse::<f32>()
                .map_err(|_| anyhow::anyhow!("--smooth: bad number {x:?}"))
        };
        match parts.as_slice() {
            [c, b] => {
                p.min_cutoff_hz = num(c)?;
                p.beta = num(b)?;
            }
            _ => anyhow::bail!("--smooth takes MIN_CUTOFF_HZ,BETA or `default`, got {s:?}"),
        }
    }
    p.validate()?;
    Ok(p)
}

/// The shared data folder (`../shared/data`, or `$SKELACT_DATA`).
fn data_dir() -> PathBuf {
    std::env::var_os("SKELACT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
}

fn open_source(a: &RunArgs) -> Result<(Box<dyn JointSource>, Vec<Segment>)> {
    let s = a.source.as_str();
    if s == "synthetic" {
        return Ok((
            Box::new(SyntheticSource::new(a.people, a.seconds, 0)),
            Vec::new(),
        ));
    }
    if let Some(rest) = s.strip_prefix("replay:") {
        let (set, dir) = match rest.split_once(':') {
            Some((set, dir)) => (set, Some(PathBuf::from(dir))),
            None => (rest, None),
        };
        let r = match set {
            "nwucla" => {
                let dir = dir.unwrap_or_else(|| data_dir().join("nw-ucla/all_sqe"));
                if !dir.is_dir() {
                    bail!(
                        "NW-UCLA clips not found at {} (set SKELACT_DATA or give replay:nwucla:DIR)",
                        dir.display()
                    );
                }
                ReplaySource::nwucla(&dir, Some(a.view), a.limit, a.gap)?
            }
            "utd" => {
                let dir = dir.unwrap_or_else(|| data_dir().join("utd-mhad/skeleton"));
                if !dir.is_dir() {
                    bail!(
                        "UTD-MHAD skeletons not found at {} (set SKELACT_DATA or give replay:utd:DIR)",
                        dir.display()
                    );
                }
                ReplaySource::utd(&dir, utd_subjects(&a.subjects)?, a.limit, a.gap)?
            }
            "ntu" => {
                let dir = dir.unwrap_or_else(|| data_dir().join("ntu/nturgb+d_skeletons"));
                if !dir.is_dir() {
                    bail!(
                        "NTU .skeleton files not found at {} (give replay:ntu:DIR)",
                        dir.display()
                    );
                }
                ReplaySource::ntu(&dir, a.limit, a.gap)?
            }
            other => bail!("unknown replay data set `{other}` (nwucla, utd, ntu)"),
        };
        let seg = r.segments().to_vec();
        return Ok((Box::new(r), seg));
    }
    if let Some(path) = s.strip_prefix("recording:") {
        return Ok((Box::new(RecordingSource::open(path)?), Vec::new()));
    }
    if let Some(rest) = s.strip_prefix("udp:") {
        let (addr, layout) = match rest.split_once('@') {
            Some((a, l)) => (a, Layout::by_name(l)?),
            None => (rest, Layout::kinect20_ucla()),
        };
        let addr: SocketAddr = addr.parse().with_context(|| format!("address `{addr}`"))?;
        return Ok((Box::new(UdpSource::bind(addr, layout, 30.0)?), Vec::new()));
    }
    if s == "realsense" || s.starts_with("realsense:") {
        return open_realsense(s.strip_prefix("realsense:"), a.pose_model.as_deref());
    }
    bail!("unknown source `{s}` (synthetic, replay:nwucla, replay:utd, recording:FILE, udp:ADDR, realsense[:FILE])")
}

#[cfg(feature = "realsense")]
fn open_realsense(
    file: Option<&str>,
    pose_model: Option<&Path>,
) -> Result<(Box<dyn JointSource>, Vec<Segment>)> {
    Ok((crate::realsense::open_source(file, pose_model)?, Vec::new()))
}

#[cfg(not(feature = "realsense"))]
fn open_realsense(
    _file: Option<&str>,
    _pose_model: Option<&Path>,
) -> Result<(Box<dyn JointSource>, Vec<Segment>)> {
    bail!("--source realsense needs a build with `--features realsense` (see README: RealSense)")
}

/// What `--model` names.
pub enum Resolved {
    /// A built-in architecture with fresh weights.
    Fresh(Box<LoadedModel>),
    /// Model directories (one, or several to fuse).
    Dirs(Vec<PathBuf>),
}

impl Resolved {
    /// Hands the model(s) to a runtime builder; `weights` fuse several.
    fn into_builder(self, b: RuntimeBuilder, weights: Option<Vec<f64>>) -> RuntimeBuilder {
        match self {
            Resolved::Fresh(m) => b.model(*m),
            Resolved::Dirs(d) => b.model_dirs(d, weights),
        }
    }
}

/// Resolves `--model` (repeatable): directories, one `builtin:NAME`, or
/// the shipped default.
pub fn resolve_models(models: &[String], board: &Board) -> Result<Resolved> {
    if models.is_empty() {
        let p = Path::new(DEFAULT_MODEL);
        if !p.join("model.toml").is_file() {
            bail!(
                "the shipped model {DEFAULT_MODEL} is not there (yet); \
                 pass --model DIR, or --model builtin:ctrgcn-edge for untrained weights"
            );
        }
        return Ok(Resolved::Dirs(vec![p.to_path_buf()]));
    }
    if let Some(b) = models.iter().find_map(|m| m.strip_prefix("builtin:")) {
        if models.len() > 1 {
            bail!("--model builtin:{b} cannot be fused with other models");
        }
        let Some(card) = builtin::card(b) else {
            bail!(
                "no built-in architecture `{b}` ({})",
                builtin::NAMES.join(", ")
            );
        };
        log::warn!("model builtin:{b} has fresh, untrained weights: its events mean nothing");
        return Ok(Resolved::Fresh(Box::new(builtin::fresh(
            &card?,
            &board.device()?,
        )?)));
    }
    Ok(Resolved::Dirs(models.iter().map(PathBuf::from).collect()))
}

/// A stdout/file/UDP sink that leaves out per-window scores unless asked.
struct Filtered {
    inner: Box<dyn Sink>,
    scores: bool,
}

impl Sink for Filtered {
    fn emit(&mut self, e: &Event) -> skelact::Result<()> {
        if e.kind == EventKind::Scores && !self.scores {
            return Ok(());
        }
        self.inner.emit(e)
    }
    fn flush(&mut self) -> skelact::Result<()> {
        self.inner.flush()
    }
}

fn make_sink(spec: &str) -> Result<Option<Box<dyn Sink>>> {
    Ok(match spec {
        "none" => None,
        "stdout" => Some(Box::new(JsonLines::stdout())),
        s if s.starts_with("file:") => Some(Box::new(JsonLines::file(&s[5..])?)),
        s if s.starts_with("udp:") => {
            let addr: SocketAddr = s[4..].parse().with_context(|| format!("sink `{s}`"))?;
            Some(Box::new(UdpJson::new(addr)?))
        }
        other => bail!("unknown sink `{other}` (stdout, file:PATH, udp:ADDR, none)"),
    })
}

type Scored = Arc<Mutex<Vec<(u64, u64, Vec<f32>)>>>;

/// Applies the board's thread count to candle's pools unless the user set
/// them: matmul threads = the board's, element-wise pool 1 (its spinning
/// workers cost more than they give on a small, busy CPU; CANDLE-NOTES).
/// Must run before the first tensor operation.
fn apply_threads(board: &Board) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", board.threads.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

pub fn run(a: &RunArgs) -> Result<()> {
    let board = Board::by_name_or_path(&a.board)?;
    apply_threads(&board);
    let (source, segments) = open_source(a)?;
    let realtime = if a.fast {
        false
    } else {
        a.realtime || a.source == "synthetic"
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::Relaxed))
            .context("installing the Ctrl-C handler")?;
    }
    let scored: Scored = Arc::new(Mutex::new(Vec::new()));
    let want_scores = a.scores || !segments.is_empty();
    let decisions = DecisionConfig {
        emit_scores: want_scores,
        ..DecisionConfig::default()
    };
    let b = Runtime::builder()
        .source_boxed(source)
        .board(board.clone())
        .decisions(decisions)
        .pace(if realtime { Pace::Realtime } else { Pace::Fast })
        .stop_flag(stop)
        .check_fit(!a.no_fit_check);
    let mut b = resolve_models(&a.model, &board)?.into_builder(b, a.weights.clone());
    if let Some(s) = a.stride {
        b = b.stride(s);
    }
    if let Some(n) = a.max_people {
        b = b.max_people(n);
    }
    if let Some(n) = a.min_frames {
        b = b.min_window_frames(n);
    }
    if let Some(s) = &a.smooth {
        b = b.smoothing(Some(parse_smoothing(s)?));
    }
    for s in &a.sink {
        if let Some(sink) = make_sink(s)? {
            b = b.sink(Box::new(Filtered {
                inner: sink,
                scores: a.scores,
            }));
        }
    }
    if !segments.is_empty() {
        let scored = scored.clone();
        b = b.on_event(move |e| {
            if let (EventKind::Scores, Some(s)) = (e.kind, &e.scores) {
                if let Ok(mut v) = scored.lock() {
                    v.push((e.start_ns, e.end_ns, s.clone()));
                }
            }
        });
    }
    let rt = b.build()?;
    let card = rt.card().clone();
    eprintln!(
        "skelact run: model {} ({} classes, {} frames/window), board {}, {}",
        rt.model_name(),
        card.classes.len(),
        card.temporal.frames,
        board.name,
        if realtime {
            "real time"
        } else {
            "as fast as possible"
        }
    );
    let report = rt.run()?;
    eprint!("{report}");
    if !segments.is_empty() {
        let scored = scored.lock().map(|v| v.clone()).unwrap_or_default();
        replay_accuracy(a, &segments, &scored, &card)?;
    }
    write_report(a.report_json.as_deref(), &report)?;
    Ok(())
}

fn write_report(to: Option<&str>, report: &Report) -> Result<()> {
    match to {
        None => {}
        Some("-") => println!("{}", report.to_json()),
        Some(p) => {
            std::fs::write(p, report.to_json() + "\n").with_context(|| format!("writing {p}"))?
        }
    }
    Ok(())
}

/// Scores each replayed clip by the windows that ended inside it (their
/// probabilities summed), and compares with the model (or the fused
/// models) run offline on the whole clip (a window-trained model: on every
/// window the stream cuts from the clip, probabilities averaged).
// The input closure returns the library's `Result`, whose error is large by
// design (it names files, fields and shapes); it is built once per clip.
#[allow(clippy::result_large_err)]
fn replay_accuracy(
    a: &RunArgs,
    segments: &[Segment],
    scored: &[(u64, u64, Vec<f32>)],
    card: &skelact::model::ModelCard,
) -> Result<()> {
    let k = card.classes.len();
    let (mut right, mut decided) = (0usize, 0usize);
    for s in segments {
        let mut sum = vec![0.0f32; k];
        let mut n = 0;
        for (_, end, p) in scored {
            if *end >= s.start_ns && *end <= s.end_ns {
                for (a, b) in sum.iter_mut().zip(p) {
                    *a += b;
                }
                n += 1;
            }
        }
        if n > 0 {
            decided += 1;
            if argmax(&sum) == s.label {
                right += 1;
            }
        }
    }
    eprintln!(
        "stream decisions: {right} of {} clips right ({:.1} %), {decided} clips got a window",
        segments.len(),
        100.0 * right as f64 / segments.len().max(1) as f64
    );
    // offline: the same model on whole clips
    if a.model.iter().any(|m| m.starts_with("builtin:")) {
        eprintln!("offline clips:    skipped (fresh builtin weights differ from run to run)");
        return Ok(());
    }
    let board = Board::by_name_or_path(&a.board)?;
    let dev = Device::Cpu;
    let Resolved::Dirs(dirs) = resolve_models(&a.model, &board)? else {
        return Ok(());
    };
    let mut members = Vec::with_capacity(dirs.len());
    for d in &dirs {
        members.push(ModelDir::open(d)?.load(&dev, None)?);
    }
    let model = Ensemble::new(members, a.weights.clone())?;
    let clips = match a.source.as_str() {
        s if s.starts_with("replay:nwucla") => {
            let dir = s
                .strip_prefix("replay:nwucla:")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir().join("nw-ucla/all_sqe"));
            let mut out = Vec::new();
            for p in skelact::source::nwucla::list(&dir)? {
                if out.len() >= a.limit {
                    break;
                }
                let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                if skelact::source::nwucla::parse_name(name).and_then(|m| m.camera) == Some(a.view)
                {
                    out.push(skelact::source::nwucla::read_clip(&p)?);
                }
            }
            out
        }
        s if s.starts_with("replay:utd") => {
            let dir = s
                .strip_prefix("replay:utd:")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir().join("utd-mhad/skeleton"));
            skelact::source::replay::utd_clips(&dir, utd_subjects(&a.subjects)?, a.limit)?
        }
        _ => return Ok(()),
    };
    // A window-trained model sees each clip as the stream cuts it: the
    // mean class probability of its windows at the run's stride.
    let stride = a.stride.unwrap_or(board.stride);
    let mut right_off = 0;
    for c in &clips {
        let seq = PoseSeq::from_clip(c)?;
        let logits =
            model.logits(|card| clip_windows_input(seq, card, stride, &card.input.views, &dev))?; // (W, K)
        let probs = candle_nn::ops::softmax(&logits.to_dtype(candle_core::DType::F32)?, 1)?
            .mean(0)?
            .to_vec1::<f32>()?;
        if argmax(&probs) == c.label {
            right_off += 1;
        }
    }
    eprintln!(
        "offline clips:    {right_off} of {} clips right ({:.1} %)",
        clips.len(),
        100.0 * right_off as f64 / clips.len().max(1) as f64
    );
    Ok(())
}

/// `--subjects` for a UTD-MHAD replay.
fn utd_subjects(s: &str) -> Result<Option<&'static [u32]>> {
    Ok(match s {
        "test" => Some(&[2, 4, 6, 8]),
        "train" => Some(&[1, 3, 5, 7]),
        "all" => None,
        other => bail!("--subjects takes test, train or all, not `{other}`"),
    })
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0
}

/// `skelact record`: writes a source to a recording file.
pub fn record(a: &RunArgs, out: &Path, frames: Option<u64>) -> Result<()> {
    let (mut source, _) = open_source(a)?;
    let mut w = RecordingWriter::create(out, source.layout(), source.fps())?;
    let mut f = Frame::new(source.layout(), 8);
    let mut n = 0u64;
    while frames.is_none_or(|m| n < m) && source.next_frame(&mut f)? {
        if f.seq == skelact::source::live::NO_FRAME {
            continue;
        }
        w.write(&f)?;
        n += 1;
    }
    let written = w.finish()?;
    eprintln!("wrote {written} frames to {}", out.display());
    Ok(())
}

/// `skelact bench pipeline`: the synthetic scene at 30 fps with 1, 4 and 8
/// people, real-time paced; per-stage and end-to-end latency, drops.
pub fn bench_pipeline(
    model: Option<&str>,
    board: &str,
    seconds: f32,
    json: Option<&str>,
) -> Result<()> {
    let board = Board::by_name_or_path(board)?;
    apply_threads(&board);
    let model: Vec<String> = match model {
        Some(m) => vec![m.to_string()],
        None if Path::new(DEFAULT_MODEL).join("model.toml").is_file() => Vec::new(),
        None => {
            eprintln!(
                "(shipped model not found: benchmarking builtin:ctrgcn-edge with fresh weights)"
            );
            vec!["builtin:ctrgcn-edge".to_string()]
        }
    };
    let mut reports = Vec::new();
    println!(
        "{:>6} {:>7} {:>7} | {:>21} | {:>21} | {:>14} | {:>5}",
        "people",
        "frames",
        "windows",
        "end-to-end p50/p99/max",
        "inference p50/p99/max",
        "forward p50/p99",
        "drops"
    );
    for people in [1usize, 4, 8] {
        let b = Runtime::builder()
            .source(SyntheticSource::new(people, seconds, 0))
            .board(board.clone())
            .max_people(people.max(board.max_people))
            .pace(Pace::Realtime);
        let b = resolve_models(&model, &board)?.into_builder(b, None);
        let r = b.build()?.run()?;
        let l = &r.latency;
        println!(
            "{:>6} {:>7} {:>7} | {:>6.1} {:>6.1} {:>7.1} | {:>6.1} {:>6.1} {:>7.1} | {:>6.1} {:>7.1} | {:>5}",
            people,
            r.frames,
            r.windows,
            l.end_to_end.p50_ms,
            l.end_to_end.p99_ms,
            l.end_to_end.max_ms,
            l.inference.p50_ms,
            l.inference.p99_ms,
            l.inference.max_ms,
            l.forward.p50_ms,
            l.forward.p99_ms,
            r.drops.queue_total()
        );
        reports.push((people, r));
    }
    println!(
        "(ms; 30 fps synthetic scene, {seconds} s per row, board {}, real-time paced)",
        board.name
    );
    if let Some(to) = json {
        let v: Vec<serde_json::Value> = reports
            .iter()
            .map(|(p, r)| serde_json::json!({"people": p, "report": r}))
            .collect();
        let text = serde_json::to_string_pretty(&v)?;
        if to == "-" {
            println!("{text}");
        } else {
            std::fs::write(to, text)?;
        }
    }
    Ok(())
}
