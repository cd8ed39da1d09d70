//! The live runtime: joints in, events out (DESIGN.md, "The path of one
//! frame").
//!
//! ## Usage
//!
//! ```no_run
//! use skelact::board::Board;
//! use skelact::runtime::{Pace, Runtime};
//! use skelact::source::synthetic::SyntheticSource;
//!
//! # fn main() -> skelact::Result<()> {
//! let report = Runtime::builder()
//!     .source(SyntheticSource::new(3, 20.0, 0))
//!     .model_dir("models/ctrgcn-edge-nwucla")
//!     .board(Board::builtin("x86-cpu")?)
//!     .pace(Pace::Realtime)
//!     .on_event(|e| println!("{} {} {}", e.track, e.label, e.confidence))
//!     .build()?
//!     .run()?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! ## Types
//!
//! - [`Runtime`] / [`RuntimeBuilder`]: wiring and threads; [`Report`]: what a
//!   run measured.
//! - [`tracker`]: ids, gap filling, ring buffers, windows.
//! - [`input`]: windows to model input through the training path.
//! - [`decision`]: smoothing, hysteresis, gestures, the fall rule.
//! - [`sink`]: JSON Lines, UDP, callback; [`event`]: what they receive.
//! - [`latency`]: fixed-bucket histograms; [`report`]: counts, drops and
//!   latencies of a run.
//!
//! Several models (one per input stream, say) can score every window
//! together: [`RuntimeBuilder::model_dirs`] or [`RuntimeBuilder::ensemble`]
//! with a [`crate::model::Ensemble`]; their weighted logits are summed
//! before the softmax, and the tracker cuts one window for all of them.
//!
//! ## Threads and channels
//!
//! ```text
//! source ──frames──▶ tracker ──windows──▶ inference ──scores──▶ decisions ─▶ sinks
//! ```
//!
//! Four threads joined by bounded crossbeam channels. When a queue is full
//! the oldest message is dropped and the newest goes in (a live system
//! wants the freshest data); every drop is counted in the [`Report`].
//! Frames and windows travel in buffers that are returned to pools, so the
//! frame path allocates nothing at steady state. The inference thread owns
//! the device and batches the windows that are ready (up to the board's
//! `batch`). Shutdown: the source ends (or the stop flag is set, e.g. by
//! Ctrl-C), each stage drains its queue and closes the next, all threads
//! are joined.
//!
//! ## Latency
//!
//! Each stage records the time from a message entering its queue to the
//! stage being done with it; end to end is from a frame entering the
//! pipeline (processing clock, not the sensor's) to the decision on the
//! window it completed.

pub mod decision;
pub mod event;
pub mod input;
pub mod latency;
pub mod one_euro;
pub mod report;
pub mod sink;
pub mod tracker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::board::Board;
use crate::model::{Ensemble, LoadedModel, ModelDir};
use crate::source::live::NO_FRAME;
use crate::source::{Frame, JointSource};
use crate::window::input::mean_probs;
use crate::window::to_input;
use crate::{Error, Result};

pub use decision::{DecisionConfig, Decisions};
pub use event::{Event, EventKind};
pub use latency::{Histogram, Summary};
pub use one_euro::OneEuro;
pub use report::{Drops, Latencies, Report};
pub use sink::Sink;
pub use tracker::{TrackWindow, Tracker, TrackerConfig};

/// How the source is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Frames are released at their capture times (a file replayed as if
    /// live).
    Realtime,
    /// As fast as the pipeline takes them: every stage waits for the next
    /// (no drops; offline evaluation of a file).
    Fast,
    /// As fast as the source gives them, with the live drop policy (newest
    /// wins): a source faster than inference, for backpressure tests.
    Flood,
}

enum ModelChoice {
    None,
    Loaded(Box<Ensemble>, DType),
    Dirs(Vec<PathBuf>, Option<Vec<f64>>),
}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    source: Option<Box<dyn JointSource>>,
    model: ModelChoice,
    board: Option<Board>,
    sinks: Vec<Box<dyn Sink>>,
    decisions: DecisionConfig,
    stride: Option<usize>,
    max_people: Option<usize>,
    min_frames: Option<usize>,
    queue: usize,
    pace: Pace,
    stop: Option<Arc<AtomicBool>>,
    check_fit: bool,
    fold_bn: bool,
    smoothing: Option<OneEuro>,
}

/// A wired runtime, ready to [`Runtime::run`].
pub struct Runtime {
    source: Box<dyn JointSource>,
    model: Ensemble,
    dtype: DType,
    device: Device,
    board: Board,
    sinks: Vec<Box<dyn Sink>>,
    tracker: TrackerConfig,
    decisions: DecisionConfig,
    queue: usize,
    pace: Pace,
    stop: Arc<AtomicBool>,
    needed_gmacs: Option<f64>,
}

impl Runtime {
    /// Starts a builder.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            source: None,
            model: ModelChoice::None,
            board: None,
            sinks: Vec::new(),
            decisions: DecisionConfig::default(),
            stride: None,
            max_people: None,
            min_frames: None,
            queue: 8,
            pace: Pace::Fast,
            stop: None,
            check_fit: true,
            fold_bn: true,
            smoothing: None,
        }
    }
}

impl RuntimeBuilder {
    /// The joint source (required).
    pub fn source(mut self, s: impl JointSource + 'static) -> Self {
        self.source = Some(Box::new(s));
        self
    }

    /// The joint source, boxed.
    pub fn source_boxed(mut self, s: Box<dyn JointSource>) -> Self {
        self.source = Some(s);
        self
    }

    /// A loaded model computing in f32 (loaded on the board's device).
    pub fn model(mut self, m: LoadedModel) -> Self {
        self.model = ModelChoice::Loaded(Box::new(Ensemble::single(m)), DType::F32);
        self
    }

    /// A loaded model computing in `dtype`.
    pub fn model_with_dtype(mut self, m: LoadedModel, dtype: DType) -> Self {
        self.model = ModelChoice::Loaded(Box::new(Ensemble::single(m)), dtype);
        self
    }

    /// Several models fused on every window (for example one per input
    /// stream; see [`Ensemble`]), computing in `dtype`.
    pub fn ensemble(mut self, e: Ensemble, dtype: DType) -> Self {
        self.model = ModelChoice::Loaded(Box::new(e), dtype);
        self
    }

    /// Model directories fused on every window with `weights` (default:
    /// [`crate::model::ensemble::default_weights`] of the models' streams),
    /// loaded at [`RuntimeBuilder::build`] on the board's device and dtype.
    pub fn model_dirs(mut self, dirs: Vec<PathBuf>, weights: Option<Vec<f64>>) -> Self {
        self.model = ModelChoice::Dirs(dirs, weights);
        self
    }

    /// A model directory, loaded at [`RuntimeBuilder::build`] on the board's
    /// device and precision.
    pub fn model_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.model = ModelChoice::Dirs(vec![dir.into()], None);
        self
    }

    /// The board profile (default: `x86-cpu`).
    pub fn board(mut self, b: Board) -> Self {
        self.board = Some(b);
        self
    }

    /// Adds a sink.
    pub fn sink(mut self, s: Box<dyn Sink>) -> Self {
        self.sinks.push(s);
        self
    }

    /// Adds a callback sink.
    pub fn on_event(mut self, f: impl FnMut(&Event) + Send + 'static) -> Self {
        self.sinks.push(Box::new(sink::Callback(f)));
        self
    }

    /// Decision settings.
    pub fn decisions(mut self, d: DecisionConfig) -> Self {
        self.decisions = d;
        self
    }

    /// One-Euro smoothing of the tracked joints (default: none, as the
    /// models were trained).
    pub fn smoothing(mut self, p: Option<OneEuro>) -> Self {
        self.smoothing = p;
        self
    }

    /// Frames between windows (default: the board's).
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = Some(s);
        self
    }

    /// Most people tracked (default: the board's).
    pub fn max_people(mut self, n: usize) -> Self {
        self.max_people = Some(n);
        self
    }

    /// Fewest frames of the one short window a track that ends before its
    /// first full window yields (default: half the model's window).
    pub fn min_window_frames(mut self, n: usize) -> Self {
        self.min_frames = Some(n.max(1));
        self
    }

    /// Capacity of each queue between stages (default 8). The window and
    /// score queues hold at least two messages per tracked person.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }

    /// Source pacing (default [`Pace::Fast`]).
    pub fn pace(mut self, p: Pace) -> Self {
        self.pace = p;
        self
    }

    /// A flag that stops the run when set (Ctrl-C).
    pub fn stop_flag(mut self, f: Arc<AtomicBool>) -> Self {
        self.stop = Some(f);
        self
    }

    /// Whether to refuse a model that exceeds the board's compute (default
    /// true; the window length is always checked).
    pub fn check_fit(mut self, yes: bool) -> Self {
        self.check_fit = yes;
        self
    }

    /// Whether to fold batch norm into convolutions (default true).
    pub fn fold_batch_norm(mut self, yes: bool) -> Self {
        self.fold_bn = yes;
        self
    }

    /// Checks everything against everything: model against board (window,
    /// compute), source layout and rate against the model's contract.
    pub fn build(self) -> Result<Runtime> {
        let source = self
            .source
            .ok_or_else(|| Error::config("runtime.source", "no source given"))?;
        let board = match self.board {
            Some(b) => b,
            None => Board::builtin("x86-cpu")?,
        };
        board.validate()?;
        let device = board.device()?;
        let (mut model, dtype) = match self.model {
            ModelChoice::None => return Err(Error::config("runtime.model", "no model given")),
            ModelChoice::Loaded(m, d) => (*m, d),
            ModelChoice::Dirs(dirs, weights) => {
                let mut members = Vec::with_capacity(dirs.len());
                for p in &dirs {
                    members.push(ModelDir::open(p)?.load_inference(&device, Some(board.dtype()))?);
                }
                (Ensemble::new(members, weights)?, board.dtype())
            }
        };
        let card = model.card().clone();
        if card.temporal.frames > board.max_window {
            return Err(Error::mismatch(
                format!("board {}: temporal.frames", board.name),
                format!("at most {} frames per window", board.max_window),
                format!("{} frames (model {})", card.temporal.frames, card.name),
            ));
        }
        let needed_gmacs = if self.check_fit {
            let members: Vec<&LoadedModel> = model.members().iter().collect();
            Some(board.check_models(&members)?)
        } else {
            None
        };
        let fps = source.fps();
        let want = card.temporal.source_fps;
        if ((fps - want) / want).abs() > 0.05 {
            return Err(Error::mismatch(
                "temporal.source_fps",
                format!("{want} fps (model {})", card.name),
                format!("{fps} fps ({})", source.describe()),
            ));
        }
        if self.fold_bn {
            model = model.fold_batch_norm()?;
        }
        let mut tracker = TrackerConfig::new(card.temporal.frames);
        tracker.stride = self.stride.unwrap_or(board.stride);
        tracker.max_people = self.max_people.unwrap_or(board.max_people);
        if let Some(n) = self.min_frames {
            tracker.min_frames = n;
        }
        tracker.smoothing = self.smoothing;
        // refuses an impossible layout mapping now rather than in a thread
        Tracker::new(tracker.clone(), source.layout(), card.layout()?)?;
        Ok(Runtime {
            source,
            model,
            dtype,
            device,
            board,
            sinks: self.sinks,
            tracker,
            decisions: self.decisions,
            queue: self.queue,
            pace: self.pace,
            stop: self.stop.unwrap_or_default(),
            needed_gmacs,
        })
    }
}

struct FrameMsg {
    frame: Frame,
    received_ns: u64,
}

struct WindowMsg {
    w: TrackWindow,
    queued_ns: u64,
}

struct ScoreMsg {
    w: TrackWindow,
    probs: Vec<f32>,
    queued_ns: u64,
}

#[derive(Default)]
struct Counters {
    frame_drops: AtomicU64,
    window_drops: AtomicU64,
    score_drops: AtomicU64,
}

/// Sends `msg`; when the queue is full, drops the oldest message (handing it
/// to `recycle`) so the newest goes in. `false` when the receiver is gone.
fn send_newest<T>(
    tx: &Sender<T>,
    rx: &Receiver<T>,
    msg: T,
    lossless: bool,
    abort: &AtomicBool,
    drops: &AtomicU64,
    mut recycle: impl FnMut(T),
) -> bool {
    if lossless {
        // wait for room, but notice a failed stage downstream
        let mut msg = msg;
        loop {
            match tx.send_timeout(msg, Duration::from_millis(100)) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
                Err(crossbeam_channel::SendTimeoutError::Timeout(m)) => {
                    if abort.load(Ordering::Relaxed) {
                        return false;
                    }
                    msg = m;
                }
            }
        }
    }
    match tx.try_send(msg) {
        Ok(()) => true,
        Err(TrySendError::Disconnected(_)) => false,
        Err(TrySendError::Full(msg)) => {
            if let Ok(old) = rx.try_recv() {
                drops.fetch_add(1, Ordering::Relaxed);
                recycle(old);
            }
            match tx.try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(m)) => {
                    drops.fetch_add(1, Ordering::Relaxed);
                    recycle(m);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        }
    }
}

/// Runs a stage body, raising `failed` when it returns an error.
fn guard<T>(failed: &AtomicBool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let r = f();
    if r.is_err() {
        failed.store(true, Ordering::Relaxed);
    }
    r
}

fn join<T>(h: thread::JoinHandle<Result<T>>, what: &str) -> Result<T> {
    h.join()
        .map_err(|_| Error::config("runtime", format!("the {what} thread panicked")))?
}

impl Runtime {
    /// The stop flag (set it to end the run early).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The model's name (an ensemble's members joined with ` + `).
    pub fn model_name(&self) -> String {
        self.model.name()
    }

    /// The model card in use (an ensemble's first member: the contract
    /// all its members share).
    pub fn card(&self) -> &crate::model::ModelCard {
        self.model.card()
    }

    /// Runs until the source ends or the stop flag is set; returns what was
    /// measured.
    pub fn run(self) -> Result<Report> {
        let Runtime {
            mut source,
            model,
            dtype,
            device,
            board,
            mut sinks,
            tracker: tracker_cfg,
            decisions: decision_cfg,
            queue,
            pace,
            stop,
            needed_gmacs,
        } = self;
        let t0 = Instant::now();
        let now_ns = move || t0.elapsed().as_nanos() as u64;
        let counters = Arc::new(Counters::default());
        let lossless = pace == Pace::Fast;
        // set by a stage that fails, so that the others wind down
        let failed = Arc::new(AtomicBool::new(false));
        let source_desc = source.describe();
        let src_layout = source.layout();
        let card = model.card().clone();
        let model_name = model.name();
        let model_layout = card.layout()?;
        let max_people = tracker_cfg.max_people;
        let (t, v) = (tracker_cfg.window, model_layout.num_joints());
        // One forward pass at the largest batch before the first frame, so
        // that lazy set-up (thread pools, scratch buffers, kernels) is not
        // paid by the first person's first window.
        model.logits(|c| {
            Ok(Tensor::zeros(
                (
                    board.batch.max(1),
                    c.input.channels(),
                    c.temporal.frames,
                    v,
                    c.input.persons,
                ),
                DType::F32,
                &device,
            )?
            .to_dtype(dtype)?)
        })?;

        let (frame_tx, frame_rx) = bounded::<FrameMsg>(queue);
        // Every track can finish a window on the same frame (people who
        // entered together), and a batch's scores arrive at once, possibly
        // while the previous batch's are still queued: the window and
        // score queues hold two such bursts, so that a burst is not
        // mistaken for a backlog.
        let burst = queue.max(2 * max_people);
        let (win_tx, win_rx) = bounded::<WindowMsg>(burst);
        let (score_tx, score_rx) = bounded::<ScoreMsg>(burst);
        let (fpool_tx, fpool_rx) = bounded::<Frame>(queue * 2 + 4);
        let (wpool_tx, wpool_rx) = bounded::<TrackWindow>(burst * 4 + max_people * 2);

        // source
        let src = {
            let (frame_rx, fpool_tx, counters, stop, failed) = (
                frame_rx.clone(),
                fpool_tx.clone(),
                counters.clone(),
                stop.clone(),
                failed.clone(),
            );
            let abort = failed.clone();
            thread::Builder::new()
                .name("skelact-source".into())
                .spawn(move || {
                    guard(
                        &failed,
                        move || -> Result<(u64, u64, bool, Histogram, Histogram)> {
                            let mut frames = 0u64;
                            let mut first_ts: Option<u64> = None;
                            let mut last_ts = 0u64;
                            let mut stopped = false;
                            // capture and pose stages of image sources (RealSense)
                            let (mut cap_hist, mut pose_hist) =
                                (Histogram::new(), Histogram::new());
                            loop {
                                if stop.load(Ordering::Relaxed) {
                                    stopped = true;
                                    break;
                                }
                                if abort.load(Ordering::Relaxed) {
                                    break;
                                }
                                let mut f = fpool_rx
                                    .try_recv()
                                    .unwrap_or_else(|_| Frame::new(src_layout, max_people));
                                if !source.next_frame(&mut f)? {
                                    break;
                                }
                                if f.seq == NO_FRAME {
                                    let _ = fpool_tx.try_send(f);
                                    continue;
                                }
                                if let Some(st) = source.stage_times() {
                                    cap_hist.record(st.capture_ns);
                                    pose_hist.record(st.pose_ns);
                                }
                                let ts = f.captured_at_ns;
                                let first = *first_ts.get_or_insert(ts);
                                last_ts = ts;
                                if pace == Pace::Realtime {
                                    let due = Duration::from_nanos(ts.saturating_sub(first));
                                    let el = t0.elapsed();
                                    if due > el {
                                        // sleep in short steps so a stop is noticed
                                        let mut left = due - el;
                                        while left > Duration::ZERO && !stop.load(Ordering::Relaxed)
                                        {
                                            let step = left.min(Duration::from_millis(50));
                                            thread::sleep(step);
                                            left = left.saturating_sub(step);
                                        }
                                    }
                                }
                                frames += 1;
                                let msg = FrameMsg {
                                    frame: f,
                                    received_ns: now_ns(),
                                };
                                let ok = send_newest(
                                    &frame_tx,
                                    &frame_rx,
                                    msg,
                                    lossless,
                                    &abort,
                                    &counters.frame_drops,
                                    |m| {
                                        let _ = fpool_tx.try_send(m.frame);
                                    },
                                );
                                if !ok {
                                    break;
                                }
                            }
                            let _ = last_ts;
                            log::debug!("source ended after {frames} frames");
                            Ok((frames, source.dropped(), stopped, cap_hist, pose_hist))
                        },
                    )
                })
                .map_err(|e| Error::io("thread", e))?
        };

        // tracker
        let trk = {
            let (win_rx, wpool_rx, counters) = (win_rx.clone(), wpool_rx.clone(), counters.clone());
            let (wpool_tx, fpool_tx, failed) = (wpool_tx.clone(), fpool_tx.clone(), failed.clone());
            let abort = failed.clone();
            let cfg = tracker_cfg.clone();
            thread::Builder::new()
                .name("skelact-tracker".into())
                .spawn(move || {
                    guard(
                        &failed,
                        move || -> Result<(Histogram, tracker::TrackerCounts, u64)> {
                            let mut tracker = Tracker::new(cfg, src_layout, model_layout)?;
                            let mut hist = Histogram::new();
                            let mut span = (None::<u64>, 0u64);
                            let emit = |tracker: &mut Tracker| -> bool {
                                loop {
                                    let mut w = wpool_rx
                                        .try_recv()
                                        .unwrap_or_else(|_| TrackWindow::with_capacity(t, v));
                                    if !tracker.take_due(&mut w) {
                                        let _ = wpool_tx.try_send(w);
                                        return true;
                                    }
                                    let msg = WindowMsg {
                                        w,
                                        queued_ns: now_ns(),
                                    };
                                    if !send_newest(
                                        &win_tx,
                                        &win_rx,
                                        msg,
                                        lossless,
                                        &abort,
                                        &counters.window_drops,
                                        |m| {
                                            let _ = wpool_tx.try_send(m.w);
                                        },
                                    ) {
                                        return false;
                                    }
                                }
                            };
                            for msg in frame_rx.iter() {
                                let ts = msg.frame.captured_at_ns;
                                span.0.get_or_insert(ts);
                                span.1 = ts;
                                tracker.push(&msg.frame, msg.received_ns);
                                let alive = emit(&mut tracker);
                                hist.record(now_ns().saturating_sub(msg.received_ns));
                                let _ = fpool_tx.try_send(msg.frame);
                                if !alive {
                                    return Ok((hist, tracker.counts(), 0));
                                }
                            }
                            tracker.finish();
                            emit(&mut tracker);
                            Ok((
                                hist,
                                tracker.counts(),
                                span.1.saturating_sub(span.0.unwrap_or(0)),
                            ))
                        },
                    )
                })
                .map_err(|e| Error::io("thread", e))?
        };

        // inference
        let inf = {
            let (score_rx, counters) = (score_rx.clone(), counters.clone());
            let max_batch = board.batch;
            let win_rx = win_rx.clone();
            let (wpool_tx, failed) = (wpool_tx.clone(), failed.clone());
            let abort = failed.clone();
            thread::Builder::new()
                .name("skelact-inference".into())
                .spawn(move || {
                    guard(
                        &failed,
                        move || -> Result<(Histogram, Histogram, u64, u64)> {
                            let mut hist = Histogram::new();
                            let mut fwd = Histogram::new();
                            let (mut windows, mut batches) = (0u64, 0u64);
                            let mut batch: Vec<WindowMsg> = Vec::with_capacity(max_batch);
                            while let Ok(first) = win_rx.recv() {
                                batch.push(first);
                                while batch.len() < max_batch {
                                    match win_rx.try_recv() {
                                        Ok(m) => batch.push(m),
                                        Err(_) => break,
                                    }
                                }
                                let start = now_ns();
                                // end markers pass through without the model
                                let refs: Vec<&TrackWindow> = batch
                                    .iter()
                                    .map(|m| &m.w)
                                    .filter(|w| w.frames > 0)
                                    .collect();
                                let mut probs = if refs.is_empty() {
                                    Vec::new()
                                } else {
                                    // normalized once, streams per model
                                    let prepared = input::prepare_windows(&refs, model.card())?;
                                    let prepared: Vec<_> = prepared.iter().collect();
                                    let logits = model.logits(|c| {
                                        Ok(to_input(&prepared, c, &device)?.to_dtype(dtype)?)
                                    })?;
                                    // the mean over each window's test-time views
                                    let views = model.card().input.views.len();
                                    let p = mean_probs(&logits, views)?.to_vec2::<f32>()?;
                                    fwd.record(now_ns().saturating_sub(start));
                                    batches += 1;
                                    p
                                }
                                .into_iter();
                                let done = now_ns();
                                for m in batch.drain(..) {
                                    let p = if m.w.frames > 0 {
                                        windows += 1;
                                        hist.record(done.saturating_sub(m.queued_ns));
                                        probs.next().unwrap_or_default()
                                    } else {
                                        Vec::new()
                                    };
                                    let msg = ScoreMsg {
                                        w: m.w,
                                        probs: p,
                                        queued_ns: done,
                                    };
                                    if !send_newest(
                                        &score_tx,
                                        &score_rx,
                                        msg,
                                        lossless,
                                        &abort,
                                        &counters.score_drops,
                                        |m| {
                                            let _ = wpool_tx.try_send(m.w);
                                        },
                                    ) {
                                        return Ok((hist, fwd, windows, batches));
                                    }
                                }
                            }
                            Ok((hist, fwd, windows, batches))
                        },
                    )
                })
                .map_err(|e| Error::io("thread", e))?
        };
        drop(win_rx);

        // decisions (on this thread's child, so sinks need only be Send)
        let dec = {
            let classes = card.classes.clone();
            let failed = failed.clone();
            thread::Builder::new()
                .name("skelact-decisions".into())
                .spawn(move || {
                    guard(&failed, move || -> Result<(Histogram, Histogram, u64)> {
                        let mut decisions = Decisions::new(decision_cfg, &classes);
                        let mut hist = Histogram::new();
                        let mut e2e = Histogram::new();
                        let mut events = Vec::new();
                        let mut n_events = 0u64;
                        let mut sink_failed = vec![false; sinks.len()];
                        let mut deliver =
                            |events: &mut Vec<Event>, sinks: &mut Vec<Box<dyn Sink>>| {
                                for e in events.drain(..) {
                                    n_events += 1;
                                    for (s, failed) in sinks.iter_mut().zip(sink_failed.iter_mut())
                                    {
                                        if let Err(err) = s.emit(&e) {
                                            if !*failed {
                                                log::warn!("sink failed: {err}");
                                                *failed = true;
                                            }
                                        }
                                    }
                                }
                            };
                        for m in score_rx.iter() {
                            let now = now_ns();
                            let e2e_ns = now.saturating_sub(m.w.received_ns);
                            decisions.update(&m.w, &m.probs, e2e_ns as f64 / 1e6, &mut events);
                            deliver(&mut events, &mut sinks);
                            let done = now_ns();
                            if m.w.frames > 0 {
                                hist.record(done.saturating_sub(m.queued_ns));
                                e2e.record(done.saturating_sub(m.w.received_ns));
                            }
                            let _ = wpool_tx.try_send(m.w);
                        }
                        decisions.finish(&mut events);
                        deliver(&mut events, &mut sinks);
                        for s in &mut sinks {
                            if let Err(err) = s.flush() {
                                log::warn!("sink flush failed: {err}");
                            }
                        }
                        Ok((hist, e2e, n_events))
                    })
                })
                .map_err(|e| Error::io("thread", e))?
        };

        // Join in pipeline order; an error in a later stage closes its
        // queue, which ends the earlier stages, so every join returns.
        let src_r = join(src, "source");
        let trk_r = join(trk, "tracker");
        let inf_r = join(inf, "inference");
        let dec_r = join(dec, "decision");
        let (frames, source_drops, stopped_by_flag, cap_hist, pose_hist) = src_r?;
        let (trk_hist, counts, span_ns) = trk_r?;
        let (inf_hist, fwd_hist, windows, batches) = inf_r?;
        let (dec_hist, e2e_hist, events) = dec_r?;
        let stopped = stopped_by_flag || stop.load(Ordering::Relaxed);
        Ok(Report {
            source: source_desc,
            model: model_name,
            board: board.name.clone(),
            frames,
            tracks: counts.tracks_started,
            windows,
            batches,
            events,
            drops: Drops {
                source: source_drops,
                frames: counters.frame_drops.load(Ordering::Relaxed),
                windows: counters.window_drops.load(Ordering::Relaxed),
                scores: counters.score_drops.load(Ordering::Relaxed),
                invalid_poses: counts.invalid_poses,
                over_capacity: counts.over_capacity,
            },
            latency: Latencies {
                tracker: trk_hist.summary(),
                inference: inf_hist.summary(),
                decision: dec_hist.summary(),
                end_to_end: e2e_hist.summary(),
                forward: fwd_hist.summary(),
                capture: cap_hist.summary(),
                pose: pose_hist.summary(),
            },
            wall_s: t0.elapsed().as_secs_f64(),
            stream_s: span_ns as f64 / 1e9,
            needed_gmacs,
            stopped,
        })
    }
}
