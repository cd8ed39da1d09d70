//! The live runtime end to end: windows cut while streaming equal windows
//! cut offline, recorded input gives the expected events, and bad input,
//! backpressure and early ends are counted — never a panic or a hang.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use candle_core::Device;
use proptest::prelude::*;
use skelact::board::Board;
use skelact::model::{builtin, ModelCard, ModelDir};
use skelact::runtime::input::window_tensor;
use skelact::runtime::{
    DecisionConfig, Event, EventKind, Pace, Report, Runtime, TrackWindow, Tracker, TrackerConfig,
};
use skelact::skeleton::Layout;
use skelact::source::recording::{RecordingSource, RecordingWriter};
use skelact::source::synthetic::SyntheticSource;
use skelact::source::{Frame, JointSource};
use skelact::window::input::{model_input, PoseSeq, PrepareOptions};
use skelact::window::Stream;
use skelact::Error;

/// A model directory of the edge CTR-GCN with fresh weights (made once per
/// test binary run).
fn fresh_model_dir() -> PathBuf {
    static DIR: Mutex<Option<(tempfile::TempDir, PathBuf)>> = Mutex::new(None);
    let mut g = DIR.lock().unwrap();
    if let Some((_, p)) = g.as_ref() {
        return p.clone();
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ctrgcn-edge-fresh");
    let card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    let weights = common::seeded_weights(&card, 5);
    ModelDir::create(&path, &card, &weights).unwrap();
    *g = Some((tmp, path.clone()));
    path
}

/// Runs `rt` on a thread and fails the test if it takes longer than
/// `limit` (a hang), returning the report and the events.
fn run_bounded(
    b: skelact::runtime::RuntimeBuilder,
    limit: Duration,
) -> (skelact::Result<Report>, Vec<Event>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let b = b.on_event(move |e| ev.lock().unwrap().push(e.clone()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = match b.build() {
            Ok(rt) => rt.run(),
            Err(e) => Err(e),
        };
        let _ = tx.send(r);
    });
    let r = rx.recv_timeout(limit).expect("runtime hangs");
    let ev = events.lock().unwrap().clone();
    (r, ev)
}

#[test]
fn synthetic_scene_end_to_end() {
    let b = Runtime::builder()
        .source(SyntheticSource::new(3, 6.0, 0))
        .model_dir(fresh_model_dir())
        .board(Board::builtin("x86-cpu").unwrap())
        .stride(15)
        .pace(Pace::Fast);
    let (r, events) = run_bounded(b, Duration::from_secs(300));
    let r = r.unwrap();
    assert_eq!(r.frames, 180);
    assert!(r.tracks >= 3, "{r}");
    // each of 3 people: first window at frame 52, then every 15 frames
    assert!(r.windows >= 3 * 8, "{r}");
    assert_eq!(r.drops.queue_total(), 0, "Fast pacing is lossless");
    assert_eq!(r.latency.end_to_end.count, r.windows);
    assert!(r.latency.end_to_end.p50_ms > 0.0);
    assert!(events.iter().all(|e| e.end_ns >= e.start_ns));
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert!(json["latency"]["end_to_end"]["p99_ms"].is_number());
}

/// The card used by the streaming property: the edge CTR-GCN's contract
/// with a short window and several streams.
fn short_card(t: usize) -> ModelCard {
    let mut c = builtin::card("ctrgcn-edge").unwrap().unwrap();
    c.temporal.frames = t;
    c.input.streams = vec![Stream::Joint, Stream::Bone, Stream::JointMotion];
    c
}

/// A deterministic random walk of one person, `(frames, 20, 3)`.
fn walk(seed: u64, frames: usize) -> Vec<[f32; 3]> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut pose: Vec<[f32; 3]> = (0..20)
        .map(|j| [next(), j as f32 * 0.08 - 0.8, 3.0 + next()])
        .collect();
    let mut out = Vec::with_capacity(frames * 20);
    for _ in 0..frames {
        for p in pose.iter_mut() {
            for a in p.iter_mut() {
                *a += 0.04 * next();
            }
        }
        out.extend_from_slice(&pose);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn streaming_windows_equal_offline_windows(
        seed in any::<u64>(),
        len in 4usize..50,
        t in 2usize..10,
        stride in 1usize..6,
    ) {
        let layout = Layout::kinect20_ucla();
        let card = short_card(t);
        let seq = walk(seed, len);
        let mut cfg = TrackerConfig::new(t);
        cfg.stride = stride;
        cfg.min_frames = 1;
        let mut tracker = Tracker::new(cfg, layout, layout).unwrap();
        let mut frame = Frame::new(layout, 2);
        let mut w = TrackWindow::with_capacity(t, 20);
        let mut got = Vec::new();
        for n in 0..len {
            frame.clear();
            frame.captured_at_ns = n as u64 * 1000;
            frame.push_pose().joints.copy_from_slice(&seq[n * 20..(n + 1) * 20]);
            tracker.push(&frame, 0);
            while tracker.take_due(&mut w) {
                got.push((n, w.clone()));
            }
        }
        tracker.finish();
        while tracker.take_due(&mut w) {
            got.push((len - 1, w.clone()));
        }
        // the end marker closes a track that yielded windows
        let markers = got.iter().filter(|g| g.1.frames == 0).count();
        prop_assert_eq!(markers, usize::from(len >= t));
        got.retain(|g| g.1.frames > 0);
        // offline: windows end at t-1, t-1+stride, ...; a sequence shorter
        // than t yields one short window of everything
        let mut want_ends: Vec<usize> = (t - 1..len).step_by(stride).collect();
        if len < t {
            want_ends = vec![len - 1];
        }
        prop_assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), want_ends.clone());
        for (end, w) in &got {
            let start = (end + 1).saturating_sub(t);
            let cut: Vec<f32> = seq[start * 20..(end + 1) * 20].iter().flatten().copied().collect();
            prop_assert_eq!(&w.joints, &cut);
            prop_assert_eq!(w.captured_at_ns, *end as u64 * 1000);
            prop_assert_eq!(w.first_captured_at_ns, start as u64 * 1000);
            // and the model input is the one the training path builds
            let live = window_tensor(&[w], &card, &Device::Cpu).unwrap();
            let off = model_input(PoseSeq::new(&cut, end + 1 - start, 1, 20).unwrap(), &card, &Device::Cpu).unwrap();
            let d = (live - off).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            prop_assert_eq!(d, 0.0);
        }
    }
}

/// One-Euro smoothing (opt-in) takes the jitter out of a still person's
/// windows; without it the windows carry the raw joints.
#[test]
fn one_euro_smoothing_reduces_jitter_in_windows() {
    let layout = Layout::kinect20_ucla();
    let window = 30;
    let jitter = |smoothing: Option<skelact::runtime::OneEuro>| {
        let mut cfg = TrackerConfig::new(window);
        cfg.smoothing = smoothing;
        let mut tr = Tracker::new(cfg, layout, layout).unwrap();
        let mut f = Frame::new(layout, 1);
        let mut w = TrackWindow::with_capacity(window, 20);
        let base = walk(5, 1);
        let mut last = None;
        for n in 0..90u64 {
            f.clear();
            f.captured_at_ns = n * 33_333_333;
            let pose = f.push_pose();
            for (j, dst) in pose.joints.iter_mut().enumerate() {
                let sign = if (n + j as u64) % 2 == 0 { 1.0 } else { -1.0 };
                *dst = [base[j][0] + 0.01 * sign, base[j][1], base[j][2]];
            }
            tr.push(&f, 0);
            while tr.take_due(&mut w) {
                last = Some(w.joints.clone());
            }
        }
        // mean |x_t - x_{t-1}| over the last window
        let x = last.expect("a window");
        let d: f32 = (1..window)
            .flat_map(|t| (0..20).map(move |j| (t, j)))
            .map(|(t, j)| (x[(t * 20 + j) * 3] - x[((t - 1) * 20 + j) * 3]).abs())
            .sum();
        d / ((window - 1) * 20) as f32
    };
    let raw = jitter(None);
    let smooth = jitter(Some(skelact::runtime::OneEuro::default()));
    assert!((raw - 0.02).abs() < 1e-4, "raw frame-to-frame step {raw}");
    assert!(smooth < raw * 0.3, "smoothed {smooth} vs raw {raw}");
}

#[test]
fn tracker_keeps_ids_through_short_gaps_and_expires_long_ones() {
    let layout = Layout::kinect20_ucla();
    let mut cfg = TrackerConfig::new(4);
    cfg.max_gap_frames = 3;
    let mut tr = Tracker::new(cfg, layout, layout).unwrap();
    let mut f = Frame::new(layout, 2);
    let mut w = TrackWindow::with_capacity(4, 20);
    let a = walk(1, 40);
    let mut b = walk(2, 40);
    for p in b.iter_mut() {
        p[0] += 2.0; // two metres apart
    }
    let mut ids = Vec::new();
    for n in 0..40 {
        f.clear();
        f.captured_at_ns = n as u64;
        // person b vanishes for 2 frames (kept), then for 6 (expired)
        f.push_pose()
            .joints
            .copy_from_slice(&a[n * 20..(n + 1) * 20]);
        if !(10..12).contains(&n) && !(20..26).contains(&n) {
            f.push_pose()
                .joints
                .copy_from_slice(&b[n * 20..(n + 1) * 20]);
        }
        tr.push(&f, 0);
        while tr.take_due(&mut w) {
            ids.push(w.track);
        }
    }
    // a, b, and b again after the long gap
    assert_eq!(tr.counts().tracks_started, 3);
    assert!(ids.contains(&1) && ids.contains(&2) && ids.contains(&3));
}

/// A missed frame is filled, once the person is seen again, by linear
/// interpolation between the poses either side of the gap, with its own
/// capture time; and a track that ends in a gap yields its short window
/// ending at its last seen frame, not at a guessed one.
#[test]
fn gaps_are_interpolated_and_a_track_ends_at_its_last_seen_frame() {
    let layout = Layout::kinect20_ucla();
    let mut cfg = TrackerConfig::new(8);
    cfg.max_gap_frames = 3;
    cfg.stride = 100;
    cfg.min_frames = 2;
    let mut tr = Tracker::new(cfg, layout, layout).unwrap();
    let mut f = Frame::new(layout, 1);
    let mut w = TrackWindow::with_capacity(8, 20);
    let pose = |x: f32| -> Vec<[f32; 3]> { (0..20).map(|j| [x, j as f32 * 0.1, 3.0]).collect() };
    let mut windows = Vec::new();
    // seen at frames 0..=4 (x = 0.0 .. 0.04), missed at 5 and 6, seen at 7
    // (x = 0.1), then gone for good after frame 8
    for n in 0..14u64 {
        f.clear();
        f.captured_at_ns = 1000 + n;
        let x = match n {
            0..=4 => Some(n as f32 * 0.01),
            7 => Some(0.1),
            8 => Some(0.11),
            _ => None,
        };
        if let Some(x) = x {
            f.push_pose().joints.copy_from_slice(&pose(x));
        }
        tr.push(&f, 0);
        while tr.take_due(&mut w) {
            windows.push((
                w.frames,
                w.first_captured_at_ns,
                w.captured_at_ns,
                w.joints.clone(),
            ));
        }
    }
    // frames 0..=8 are nine frames; the window of 8 came due at frame 7
    // (the gap was filled then), the rest ended with the track
    assert_eq!(tr.counts().tracks_started, 1);
    let (frames, first, last, joints) = &windows[0];
    assert_eq!((*frames, *first, *last), (8, 1000, 1007));
    // x of joint 0 per frame: seen 0..0.04, filled 0.06 and 0.08, seen 0.1
    let xs: Vec<f32> = (0..8).map(|t| joints[t * 60]).collect();
    let want = [0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1];
    for (a, b) in xs.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{xs:?} vs {want:?}");
    }

    // a track seen for 5 frames, then missed until it expires: one short
    // window of the 5 seen frames, ending at the last one seen
    let mut tr = Tracker::new(
        TrackerConfig {
            max_gap_frames: 6,
            min_frames: 2,
            ..TrackerConfig::new(8)
        },
        layout,
        layout,
    )
    .unwrap();
    let mut windows = Vec::new();
    for n in 0..20u64 {
        f.clear();
        f.captured_at_ns = 2000 + n;
        if n < 5 {
            f.push_pose().joints.copy_from_slice(&pose(n as f32 * 0.01));
        }
        tr.push(&f, 0);
        while tr.take_due(&mut w) {
            windows.push((w.frames, w.captured_at_ns));
        }
    }
    assert_eq!(windows, vec![(5, 2004)]);
}

#[test]
fn nan_and_missing_joints_are_filled_or_counted() {
    let layout = Layout::kinect20_ucla();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.skrec");
    let mut src = SyntheticSource::new(2, 3.0, 0);
    let mut wr = RecordingWriter::create(&path, layout, 30.0).unwrap();
    let mut f = Frame::new(layout, 4);
    let mut n = 0;
    while src.next_frame(&mut f).unwrap() {
        // some NaN joints, some unseen joints, and every 10th frame a pose
        // that is mostly NaN
        f.people[0].joints[n % 20] = [f32::NAN; 3];
        f.people[0].confidence[(n + 5) % 20] = 0.0;
        if n % 10 == 0 {
            let p = f.push_pose();
            for j in p.joints.iter_mut().take(15) {
                *j = [f32::NAN; 3];
            }
        }
        wr.write(&f).unwrap();
        n += 1;
    }
    wr.finish().unwrap();
    let b = Runtime::builder()
        .source(RecordingSource::open(&path).unwrap())
        .model_dir(fresh_model_dir())
        .stride(20)
        .pace(Pace::Fast);
    let (r, _) = run_bounded(b, Duration::from_secs(300));
    let r = r.unwrap();
    assert_eq!(r.drops.invalid_poses, 9);
    assert!(r.windows > 0, "{r}");
}

#[test]
fn source_faster_than_inference_drops_and_counts() {
    let b = Runtime::builder()
        .source(SyntheticSource::new(4, 20.0, 0))
        .model_dir(fresh_model_dir())
        .stride(2)
        .queue_capacity(2)
        .pace(Pace::Flood);
    let (r, _) = run_bounded(b, Duration::from_secs(300));
    let r = r.unwrap();
    assert_eq!(r.frames, 600);
    assert!(r.drops.queue_total() > 0, "{r}");
}

#[test]
fn stream_ending_mid_window_yields_one_short_window() {
    // 1 s = 30 frames: fewer than the 52 of a window, more than half of it
    let b = Runtime::builder()
        .source(SyntheticSource::new(1, 1.0, 0))
        .model_dir(fresh_model_dir())
        .pace(Pace::Fast);
    let (r, _) = run_bounded(b, Duration::from_secs(120));
    let r = r.unwrap();
    assert_eq!((r.frames, r.windows), (30, 1));
    // 0.5 s: too short to say anything
    let b = Runtime::builder()
        .source(SyntheticSource::new(1, 0.5, 0))
        .model_dir(fresh_model_dir())
        .pace(Pace::Fast);
    let (r, events) = run_bounded(b, Duration::from_secs(120));
    let r = r.unwrap();
    assert_eq!((r.frames, r.windows), (15, 0));
    assert!(events.is_empty());
    // no frames at all
    let b = Runtime::builder()
        .source(SyntheticSource::new(1, 0.0, 0))
        .model_dir(fresh_model_dir())
        .pace(Pace::Fast);
    let (r, _) = run_bounded(b, Duration::from_secs(120));
    assert_eq!(r.unwrap().frames, 0);
}

/// Golden replay: the synthetic scene recorded to a file and replayed; the
/// fall rule (pose-only, as the NW-UCLA model has no fall class) fires
/// once per person who falls, about 2 s after they hit the floor, and never
/// for sitting or bending.
#[test]
fn golden_replay_raises_one_fall_per_fall_and_none_for_bending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scene.skrec");
    let mut src = SyntheticSource::new(3, 24.0, 0);
    let mut wr = RecordingWriter::create(&path, src.layout(), src.fps()).unwrap();
    let mut f = Frame::new(src.layout(), 4);
    while src.next_frame(&mut f).unwrap() {
        wr.write(&f).unwrap();
    }
    wr.finish().unwrap();
    let b = Runtime::builder()
        .source(RecordingSource::open(&path).unwrap())
        .model_dir(fresh_model_dir())
        .stride(10)
        .decisions(DecisionConfig::default())
        .pace(Pace::Fast);
    let (r, events) = run_bounded(b, Duration::from_secs(600));
    r.unwrap();
    let mut falls: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == EventKind::Fall)
        .map(|e| e.end_ns as f64 / 1e9)
        .collect();
    falls.sort_by(f64::total_cmp);
    // falls begin at 3.9 s (person 2), 11.2 s (person 1), 18.5 s (person 0);
    // the hip is low about 0.7 s later and must stay low 2 s
    let expected = [3.9, 11.2, 18.5];
    assert_eq!(falls.len(), 3, "falls at {falls:?}");
    for (got, start) in falls.iter().zip(expected) {
        assert!(
            *got >= start + 2.5 && *got <= start + 4.0,
            "fall event at {got} s for a fall starting at {start} s"
        );
    }
}

#[test]
fn boards_refuse_models_that_do_not_fit() {
    let dev = Device::Cpu;
    // compute: the published CTR-GCN for 8 people at 30 fps on 2 CPU cores
    let big = builtin::fresh(&builtin::card("ctrgcn").unwrap().unwrap(), &dev).unwrap();
    let e = Runtime::builder()
        .source(SyntheticSource::new(1, 1.0, 0))
        .model(big)
        .board(Board::builtin("x86-cpu").unwrap())
        .build()
        .err()
        .expect("refused");
    assert!(
        matches!(&e, Error::Mismatch { field, .. } if field.contains("compute")),
        "{e}"
    );
    // window: 200 frames on a board that takes 128
    let mut card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    card.temporal.frames = 200;
    let long = builtin::fresh(&card, &dev).unwrap();
    let e = Runtime::builder()
        .source(SyntheticSource::new(1, 1.0, 0))
        .model(long)
        .build()
        .err()
        .expect("refused");
    assert!(
        matches!(&e, Error::Mismatch { field, .. } if field.contains("temporal.frames")),
        "{e}"
    );
    // test-time views multiply the compute: one pass per view
    let board = Board::builtin("x86-cpu").unwrap();
    let mut card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    let one = board
        .check_model(&builtin::fresh(&card, &dev).unwrap())
        .unwrap();
    card.input.views = vec![-30.0, 0.0, 30.0];
    let three = board
        .check_model(&builtin::fresh(&card, &dev).unwrap())
        .unwrap();
    assert!((three - 3.0 * one).abs() < 1e-9 * three, "{one} {three}");
    // a CUDA board in a CPU build is an error, not a fallback
    if !candle_core::utils::cuda_is_available() {
        let e = Board::builtin("jetson-orin-nano")
            .unwrap()
            .device()
            .unwrap_err();
        assert!(matches!(e, Error::Device(_)));
    }
}

/// Real NW-UCLA clips replayed as one stream: a clip shorter than the
/// window yields one window covering it, and its scores equal the model's
/// scores on the clip offline.
#[test]
fn nwucla_stream_scores_equal_offline_clip_scores() {
    stream_scores_equal_offline(&[fresh_model_dir()], None, &[1.0]);
}

/// The same with two models fused on every window — a joint and a
/// bone-motion model, CTR-GCN's default weights 0.6 and 0.4 — against the
/// weighted sum of the two models' logits computed offline one by one.
#[test]
fn fused_models_stream_scores_equal_offline_weighted_sums() {
    let mut card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    card.name = "ctrgcn-edge-bone-motion".into();
    card.input.streams = vec![Stream::BoneMotion];
    let tmp = tempfile::tempdir().unwrap();
    let motion = tmp.path().join("bone-motion");
    ModelDir::create(&motion, &card, &common::seeded_weights(&card, 9)).unwrap();
    stream_scores_equal_offline(&[fresh_model_dir(), motion], None, &[0.6, 0.4]);
}

/// A card with test-time views: every window is scored once per view on
/// the live stream, and the mean of the views' probabilities equals the
/// offline mean over the clip rotated by each angle.
#[test]
fn test_time_views_stream_scores_equal_offline_view_means() {
    let mut card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    card.name = "ctrgcn-edge-views".into();
    card.input.views = vec![-30.0, 0.0, 25.0];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("views");
    ModelDir::create(&dir, &card, &common::seeded_weights(&card, 5)).unwrap();
    stream_scores_equal_offline(&[dir], None, &[1.0]);
}

#[test]
fn ensembles_refuse_models_that_cannot_share_a_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let mut card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    card.temporal.frames = 32;
    let short = tmp.path().join("short");
    ModelDir::create(&short, &card, &common::seeded_weights(&card, 3)).unwrap();
    let build = |dirs: Vec<PathBuf>, w: Option<Vec<f64>>| {
        Runtime::builder()
            .source(SyntheticSource::new(1, 1.0, 0))
            .model_dirs(dirs, w)
            .build()
            .err()
            .expect("refused")
    };
    let e = build(vec![fresh_model_dir(), short], None);
    assert!(
        matches!(&e, Error::Mismatch { field, .. } if field.contains("temporal")),
        "{e}"
    );
    let e = build(vec![fresh_model_dir(), fresh_model_dir()], Some(vec![1.0]));
    assert!(matches!(&e, Error::Config { .. }), "{e}");
    let e = build(
        vec![fresh_model_dir(), fresh_model_dir()],
        Some(vec![1.0, f64::NAN]),
    );
    assert!(matches!(&e, Error::Config { .. }), "{e}");
}

/// Replays 12 NW-UCLA view-3 clips through a runtime serving `dirs` fused
/// with `weights` (default when `None`), and checks every clip shorter than
/// the window against `softmax(sum_m want_weights[m] * logits_m)` of the
/// whole clip, each model run offline on its own input.
fn stream_scores_equal_offline(dirs: &[PathBuf], weights: Option<Vec<f64>>, want_weights: &[f64]) {
    let root = std::env::var_os("SKELACT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = root.join("nw-ucla/all_sqe");
    if !dir.is_dir() {
        eprintln!("SKIPPED: NW-UCLA not found at {}", dir.display());
        return;
    }
    let src = skelact::source::replay::ReplaySource::nwucla(&dir, Some(3), 12, 1.0).unwrap();
    let segments = src.segments().to_vec();
    let clips: Vec<_> = skelact::source::nwucla::list(&dir)
        .unwrap()
        .into_iter()
        .filter(|p| {
            let n = p.file_stem().unwrap().to_str().unwrap();
            skelact::source::nwucla::parse_name(n).and_then(|m| m.camera) == Some(3)
        })
        .take(12)
        .map(|p| skelact::source::nwucla::read_clip(&p).unwrap())
        .collect();
    let b = Runtime::builder()
        .source(src)
        .model_dirs(dirs.to_vec(), weights)
        .min_window_frames(1)
        .fold_batch_norm(false)
        .decisions(DecisionConfig {
            emit_scores: true,
            ..DecisionConfig::default()
        })
        .pace(Pace::Fast);
    let (r, events) = run_bounded(b, Duration::from_secs(300));
    r.unwrap();
    let models: Vec<_> = dirs
        .iter()
        .map(|d| ModelDir::open(d).unwrap().load(&Device::Cpu, None).unwrap())
        .collect();
    let mut compared = 0;
    for (seg, clip) in segments.iter().zip(&clips) {
        assert_eq!(seg.name, clip.name);
        if clip.num_frames >= 52 {
            continue;
        }
        let scores: Vec<&Vec<f32>> = events
            .iter()
            .filter(|e| {
                e.kind == EventKind::Scores && e.end_ns >= seg.start_ns && e.end_ns <= seg.end_ns
            })
            .filter_map(|e| e.scores.as_ref())
            .collect();
        assert_eq!(scores.len(), 1, "clip {}", clip.name);
        // each test-time view (or none) scored by the weighted sum of the
        // models' logits, then the views' probabilities averaged
        let views: Vec<Option<f32>> = match models[0].card.input.views.as_slice() {
            [] => vec![None],
            v => v.iter().copied().map(Some).collect(),
        };
        let mut p = vec![0.0f32; models[0].card.classes.len()];
        for view in &views {
            let mut logits: Option<candle_core::Tensor> = None;
            for (model, &w) in models.iter().zip(want_weights) {
                let seq = PoseSeq::from_clip(clip).unwrap();
                let x = match view {
                    None => model_input(seq, &model.card, &Device::Cpu).unwrap(),
                    Some(deg) => {
                        let mut rotate = |x: &mut [f32], _: usize, _: usize, _: usize| {
                            skelact::window::input::rotate_y(x, *deg)
                        };
                        let opts = PrepareOptions {
                            frames: None,
                            transform: Some(&mut rotate),
                        };
                        let prepared = skelact::window::prepare(seq, &model.card, opts).unwrap();
                        skelact::window::to_input(&[&prepared], &model.card, &Device::Cpu).unwrap()
                    }
                };
                let l = (model.logits(&x).unwrap() * w).unwrap();
                logits = Some(match logits {
                    None => l,
                    Some(s) => (s + l).unwrap(),
                });
            }
            let pv = candle_nn::ops::softmax_last_dim(&logits.unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (a, b) in p.iter_mut().zip(pv) {
                *a += b / views.len() as f32;
            }
        }
        let d = p
            .iter()
            .zip(scores[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            d < 1e-5,
            "clip {}: stream and offline differ by {d}",
            clip.name
        );
        compared += 1;
    }
    assert!(compared > 0);
}
