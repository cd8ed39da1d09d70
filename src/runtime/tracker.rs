//! The tracker and windower: stable per-person ids across frames, gap
//! filling, per-track ring buffers, and a window every `stride` frames.
//!
//! - **Assignment**: each frame's poses are matched to the live tracks by
//!   the mean distance between corresponding joints, greedily from the
//!   closest pair, within a gate ([`TrackerConfig::gate_m`]). That is the
//!   Hungarian assignment whenever people are further apart than the gate
//!   — the normal case for a few people in a room — at a fraction of the
//!   code.
//! - **Birth and expiry**: an unmatched pose starts a track (while fewer
//!   than `max_people` are live); a track unseen for more than
//!   `max_gap_frames` frames ends.
//! - **Gap filling**: frames in which a live track is missed are filled
//!   when the person is seen again, by linear interpolation between the
//!   last pose before the gap and the first one after it (capture times
//!   kept); a missing joint (NaN or confidence 0) keeps its last position.
//!   Nothing is guessed ahead: a window's newest frame is always a seen
//!   one, and a track that ends in a gap ends at its last seen frame. A
//!   pose with fewer than half its joints seen is dropped and counted.
//! - **Windows**: each track owns a preallocated ring of the model's `T`
//!   frames; the first window is due as soon as the ring is full, the next
//!   ones every `stride` frames. A track that ends (or a stream that ends)
//!   before its first full window yields one shorter window if it has at
//!   least `min_frames` frames; the model's temporal contract then decides
//!   how it is read (zero padding or resampling, see
//!   [`crate::window::input`]); a track that ends after yielding windows
//!   yields an end marker (no frames) so that decisions can close it.
//! - **Floor and hip height** (for the fall rule): the floor is the lowest
//!   foot or ankle seen so far (y up, as Kinect reports); each window
//!   carries the hip height above it and how long the hip has been low.
//!
//! Steady state allocates nothing: rings, assignment scratch and windows
//! are sized at construction.

use super::one_euro::{OneEuro, OneEuroState};
use crate::skeleton::mapping::{mapping, Mapping};
use crate::skeleton::Layout;
use crate::source::Frame;
use crate::Result;

/// Tracker and windower settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Most people tracked at once; further poses are ignored (counted).
    pub max_people: usize,
    /// Largest mean joint distance (metres) at which a pose continues a
    /// track.
    pub gate_m: f32,
    /// Frames a track may go unseen (filled with its last pose) before it
    /// ends.
    pub max_gap_frames: usize,
    /// Frames per window (`T`, the model's temporal contract).
    pub window: usize,
    /// Frames between windows of one track.
    pub stride: usize,
    /// Fewest frames of a short window emitted when a track ends early.
    pub min_frames: usize,
    /// Hip height above the floor (m) below which a person counts as low.
    pub low_hip_m: f32,
    /// Hip height above the floor (m) above which a person counts as
    /// upright.
    pub high_hip_m: f32,
    /// One-Euro smoothing of the joints that enter the windows (`None`:
    /// raw joints, as the models were trained).
    pub smoothing: Option<OneEuro>,
}

impl TrackerConfig {
    /// Defaults for a model window of `window` frames.
    pub fn new(window: usize) -> Self {
        Self {
            max_people: 8,
            gate_m: 0.5,
            max_gap_frames: 10,
            window,
            stride: 8,
            min_frames: (window / 2).max(1),
            low_hip_m: 0.35,
            high_hip_m: 0.7,
            smoothing: None,
        }
    }
}

/// A window of one track: raw joint coordinates `(frames, V, 3)` in the
/// model's layout, oldest first, plus what the decision stage needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackWindow {
    /// The track.
    pub track: u64,
    /// Valid frames in `joints` (`T`, or fewer for a short final window).
    pub frames: usize,
    /// Joints per pose.
    pub num_joints: usize,
    /// `(frames, V, 3)` metres, capacity `T * V * 3`.
    pub joints: Vec<f32>,
    /// Capture time of the oldest frame.
    pub first_captured_at_ns: u64,
    /// Capture time of the newest frame.
    pub captured_at_ns: u64,
    /// Runtime clock when the newest frame entered the pipeline (for
    /// end-to-end latency).
    pub received_ns: u64,
    /// Hip height above the estimated floor at the newest frame (m; NaN
    /// when unknown).
    pub hip_height_m: f32,
    /// Capture time since which the hip has been low, if it is.
    pub low_since_ns: Option<u64>,
    /// Capture time the hip was last upright.
    pub last_high_ns: Option<u64>,
    /// Whether the track ended with this window. A window with `frames ==
    /// 0` and `last` is an end marker: the track ended after windows
    /// already sent; it carries no joints and is not run through the model.
    pub last: bool,
}

impl TrackWindow {
    /// An empty window with room for `frames` frames of `v` joints.
    pub fn with_capacity(frames: usize, v: usize) -> Self {
        Self {
            track: 0,
            frames: 0,
            num_joints: v,
            joints: Vec::with_capacity(frames * v * 3),
            first_captured_at_ns: 0,
            captured_at_ns: 0,
            received_ns: 0,
            hip_height_m: f32::NAN,
            low_since_ns: None,
            last_high_ns: None,
            last: false,
        }
    }
}

/// A fixed-capacity ring of poses with their capture times.
#[derive(Debug, Clone)]
pub struct FrameRing {
    cap: usize,
    v: usize,
    data: Vec<f32>,
    stamps: Vec<u64>,
    head: usize,
    len: usize,
}

impl FrameRing {
    /// A ring of `cap` frames of `v` joints.
    pub fn new(cap: usize, v: usize) -> Self {
        Self {
            cap,
            v,
            data: vec![0.0; cap * v * 3],
            stamps: vec![0; cap],
            head: 0,
            len: 0,
        }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the ring.
    pub fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
    }

    /// Appends a pose, evicting the oldest when full.
    pub fn push(&mut self, pose: &[[f32; 3]], captured_at_ns: u64) {
        let n = self.v * 3;
        let slot = &mut self.data[self.head * n..(self.head + 1) * n];
        for (d, s) in slot.chunks_exact_mut(3).zip(pose) {
            d.copy_from_slice(s);
        }
        self.stamps[self.head] = captured_at_ns;
        self.head = (self.head + 1) % self.cap;
        self.len = (self.len + 1).min(self.cap);
    }

    /// Capture time of the newest frame (0 when empty).
    pub fn newest_stamp(&self) -> u64 {
        if self.len == 0 {
            0
        } else {
            self.stamps[(self.head + self.cap - 1) % self.cap]
        }
    }

    /// Copies the held frames, oldest first, into `out` (cleared first);
    /// returns the capture times of the oldest and newest.
    pub fn copy_into(&self, out: &mut Vec<f32>) -> (u64, u64) {
        out.clear();
        let n = self.v * 3;
        let start = (self.head + self.cap - self.len) % self.cap;
        for k in 0..self.len {
            let i = (start + k) % self.cap;
            out.extend_from_slice(&self.data[i * n..(i + 1) * n]);
        }
        let oldest = self.stamps[start];
        let newest = self.stamps[(self.head + self.cap - 1) % self.cap];
        (oldest, newest)
    }
}

impl Track {
    /// The track ends: a short final window if it never yielded one and
    /// has enough frames, else an end marker if it yielded windows (so the
    /// decision stage can close its actions), else nothing.
    fn end_track(&mut self, min_frames: usize) {
        // the frames of the final gap were never filled: the track's last
        // frame is its last seen one
        self.gap_stamps.clear();
        if !self.emitted {
            if self.ring.len() >= min_frames {
                self.due = true;
                self.last_window = true;
            }
        } else {
            self.due = true;
            self.end_marker = true;
        }
    }
}

#[derive(Debug, Clone)]
struct Track {
    live: bool,
    id: u64,
    last: Vec<[f32; 3]>,
    missed: usize,
    ring: FrameRing,
    since_emit: usize,
    emitted: bool,
    due: bool,
    last_window: bool,
    end_marker: bool,
    received_ns: u64,
    hip_height_m: f32,
    low_since_ns: Option<u64>,
    last_high_ns: Option<u64>,
    euro: OneEuroState,
    smoothed: Vec<[f32; 3]>,
    /// Capture times of the frames missed since the last seen one
    /// (capacity `max_gap_frames`, so filling never allocates).
    gap_stamps: Vec<u64>,
    /// Scratch for an interpolated pose.
    fill: Vec<[f32; 3]>,
}

impl Track {
    /// Appends the track's current pose to its window ring, smoothed when
    /// `smoothing` is set.
    fn push_pose(&mut self, smoothing: Option<&OneEuro>, ts: u64) {
        push_to_ring(
            &mut self.ring,
            &mut self.euro,
            &mut self.smoothed,
            &self.last,
            smoothing,
            ts,
        );
    }

    /// The person is seen again after `gap_stamps.len()` missed frames:
    /// pushes those frames, each interpolated linearly between `last` (the
    /// pose before the gap) and `next` (the pose now seen; joints with
    /// confidence 0 keep their last position).
    fn fill_gap(&mut self, next: &[[f32; 3]], conf: &[f32], smoothing: Option<&OneEuro>) {
        let n = self.gap_stamps.len();
        for k in 0..n {
            let a = (k + 1) as f32 / (n + 1) as f32;
            for ((f, l), (p, &c)) in self
                .fill
                .iter_mut()
                .zip(&self.last)
                .zip(next.iter().zip(conf))
            {
                *f = if c > 0.0 {
                    [
                        l[0] + a * (p[0] - l[0]),
                        l[1] + a * (p[1] - l[1]),
                        l[2] + a * (p[2] - l[2]),
                    ]
                } else {
                    *l
                };
            }
            push_to_ring(
                &mut self.ring,
                &mut self.euro,
                &mut self.smoothed,
                &self.fill,
                smoothing,
                self.gap_stamps[k],
            );
        }
        self.since_emit += n;
        self.gap_stamps.clear();
    }
}

/// Appends `pose` to `ring`, through the One-Euro filter when `smoothing`
/// is set (the track's fields passed apart, so `pose` may be another of
/// them).
fn push_to_ring(
    ring: &mut FrameRing,
    euro: &mut OneEuroState,
    smoothed: &mut [[f32; 3]],
    pose: &[[f32; 3]],
    smoothing: Option<&OneEuro>,
    ts: u64,
) {
    match smoothing {
        Some(p) => {
            euro.filter(p, pose, ts, smoothed);
            ring.push(smoothed, ts);
        }
        None => ring.push(pose, ts),
    }
}

/// Counters the tracker keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerCounts {
    /// Frames pushed.
    pub frames: u64,
    /// Poses dropped for having too few valid joints.
    pub invalid_poses: u64,
    /// Poses ignored because `max_people` tracks were live.
    pub over_capacity: u64,
    /// Tracks started.
    pub tracks_started: u64,
    /// Windows handed out.
    pub windows: u64,
}

/// The tracker and windower.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    layout: &'static Layout,
    map: Option<Mapping>,
    tracks: Vec<Track>,
    next_id: u64,
    // scratch, sized once
    det: Vec<Vec<[f32; 3]>>,
    det_conf: Vec<Vec<f32>>,
    det_used: Vec<bool>,
    n_det: usize,
    pairs: Vec<(f32, usize, usize)>,
    matched: Vec<bool>,
    floor_y: f32,
    hip: Option<usize>,
    feet: Vec<usize>,
    counts: TrackerCounts,
    /// Next track to look at in [`Tracker::take_due`].
    scan: usize,
}

impl Tracker {
    /// A tracker for poses of `source` layout feeding a model of `model`
    /// layout (mapped when they differ).
    pub fn new(
        cfg: TrackerConfig,
        source: &'static Layout,
        model: &'static Layout,
    ) -> Result<Self> {
        if cfg.window == 0 || cfg.stride == 0 || cfg.max_people == 0 {
            return Err(crate::Error::config(
                "tracker",
                "window, stride and max_people must be positive",
            ));
        }
        if let Some(p) = &cfg.smoothing {
            p.validate()?;
        }
        let map = if source.name() == model.name() {
            None
        } else {
            Some(mapping(source, model)?)
        };
        let v = model.num_joints();
        let track = Track {
            live: false,
            id: 0,
            last: vec![[0.0; 3]; v],
            missed: 0,
            ring: FrameRing::new(cfg.window, v),
            since_emit: 0,
            emitted: false,
            due: false,
            last_window: false,
            end_marker: false,
            received_ns: 0,
            hip_height_m: f32::NAN,
            low_since_ns: None,
            last_high_ns: None,
            euro: OneEuroState::new(v),
            smoothed: vec![[0.0; 3]; v],
            gap_stamps: Vec::with_capacity(cfg.max_gap_frames),
            fill: vec![[0.0; 3]; v],
        };
        // room for some poses beyond max_people, so extra ones can still be
        // matched and counted
        let max_det = cfg.max_people * 2 + 4;
        let find = |names: &[&str]| names.iter().find_map(|n| model.find(n));
        let hip = find(&["hip_center", "spine_base"]);
        let feet: Vec<usize> = ["left_foot", "right_foot", "left_ankle", "right_ankle"]
            .iter()
            .filter_map(|n| model.find(n))
            .collect();
        Ok(Self {
            tracks: vec![track; cfg.max_people],
            det: vec![vec![[0.0; 3]; v]; max_det],
            det_conf: vec![vec![0.0; v]; max_det],
            det_used: vec![false; max_det],
            n_det: 0,
            pairs: Vec::with_capacity(cfg.max_people * max_det),
            matched: vec![false; cfg.max_people],
            cfg,
            layout: model,
            map,
            next_id: 1,
            floor_y: f32::INFINITY,
            hip,
            feet,
            counts: TrackerCounts::default(),
            scan: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// The model layout poses are kept in.
    pub fn layout(&self) -> &'static Layout {
        self.layout
    }

    /// Counters so far.
    pub fn counts(&self) -> TrackerCounts {
        self.counts
    }

    /// Tracks live now.
    pub fn live_tracks(&self) -> usize {
        self.tracks.iter().filter(|t| t.live).count()
    }

    /// Takes one frame: assignment, births, gap filling, expiry, ring
    /// updates. `received_ns` is the runtime clock when the frame entered
    /// the pipeline. Returns the number of windows now due.
    pub fn push(&mut self, frame: &Frame, received_ns: u64) -> usize {
        self.counts.frames += 1;
        let ts = frame.captured_at_ns;
        self.load_detections(frame);
        self.update_floor();
        // assignment
        self.pairs.clear();
        for (ti, t) in self.tracks.iter().enumerate() {
            if !t.live {
                continue;
            }
            for di in 0..self.n_det {
                let d = mean_distance(&t.last, &self.det[di], &self.det_conf[di]);
                if d <= self.cfg.gate_m {
                    self.pairs.push((d, ti, di));
                }
            }
        }
        self.pairs
            .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        self.matched.iter_mut().for_each(|m| *m = false);
        self.det_used.iter_mut().for_each(|m| *m = false);
        for k in 0..self.pairs.len() {
            let (_, ti, di) = self.pairs[k];
            if self.matched[ti] || self.det_used[di] {
                continue;
            }
            self.matched[ti] = true;
            self.det_used[di] = true;
            self.update_track(ti, di, ts, received_ns);
        }
        // births
        for di in 0..self.n_det {
            if self.det_used[di] {
                continue;
            }
            let Some(ti) = self.tracks.iter().position(|t| !t.live && !t.due) else {
                self.counts.over_capacity += 1;
                continue;
            };
            let id = self.next_id;
            self.next_id += 1;
            self.counts.tracks_started += 1;
            let t = &mut self.tracks[ti];
            t.live = true;
            t.id = id;
            t.missed = 0;
            t.gap_stamps.clear();
            t.ring.clear();
            t.since_emit = 0;
            t.emitted = false;
            t.due = false;
            t.last_window = false;
            t.end_marker = false;
            t.low_since_ns = None;
            t.last_high_ns = None;
            t.euro.reset();
            // a new track has no history: fill missing joints with the mean
            // of the seen ones
            let (det, conf) = (&self.det[di], &self.det_conf[di]);
            let mut mean = [0.0f32; 3];
            let mut n = 0.0;
            for (p, &c) in det.iter().zip(conf) {
                if c > 0.0 {
                    for a in 0..3 {
                        mean[a] += p[a];
                    }
                    n += 1.0;
                }
            }
            for (dst, (p, &c)) in t.last.iter_mut().zip(det.iter().zip(conf)) {
                *dst = if c > 0.0 {
                    *p
                } else {
                    [mean[0] / n, mean[1] / n, mean[2] / n]
                };
            }
            self.matched[ti] = true;
            self.det_used[di] = true;
            self.update_track(ti, di, ts, received_ns);
        }
        // gaps and expiry
        for ti in 0..self.tracks.len() {
            if !self.tracks[ti].live || self.matched[ti] {
                continue;
            }
            let max_gap = self.cfg.max_gap_frames;
            let min_frames = self.cfg.min_frames;
            let t = &mut self.tracks[ti];
            t.missed += 1;
            if t.missed > max_gap {
                t.live = false;
                t.end_track(min_frames);
                continue;
            }
            // filled when the person is seen again (or never)
            t.gap_stamps.push(ts);
        }
        self.tracks.iter().filter(|t| t.due).count()
    }

    /// Copies the poses of the frame into the detection scratch, mapped to
    /// the model layout, dropping poses with too few valid joints.
    fn load_detections(&mut self, frame: &Frame) {
        self.n_det = 0;
        for pose in &frame.people {
            if self.n_det == self.det.len() {
                self.counts.over_capacity += 1;
                continue;
            }
            let (dst, dst_conf) = (&mut self.det[self.n_det], &mut self.det_conf[self.n_det]);
            let ok = match &self.map {
                None if pose.joints.len() == dst.len() && pose.confidence.len() == dst.len() => {
                    dst.copy_from_slice(&pose.joints);
                    dst_conf.copy_from_slice(&pose.confidence);
                    true
                }
                None => false,
                Some(m) => m
                    .apply_with_confidence_into(&pose.joints, &pose.confidence, dst, dst_conf)
                    .is_ok(),
            };
            let mut seen = 0;
            for (p, c) in dst.iter().zip(dst_conf.iter_mut()) {
                if !(c.is_finite() && *c > 0.0 && p.iter().all(|a| a.is_finite())) {
                    *c = 0.0;
                } else {
                    seen += 1;
                }
            }
            if !ok || seen * 2 < dst.len() {
                self.counts.invalid_poses += 1;
                continue;
            }
            self.n_det += 1;
        }
    }

    fn update_floor(&mut self) {
        for di in 0..self.n_det {
            for &f in &self.feet {
                if self.det_conf[di][f] > 0.0 {
                    self.floor_y = self.floor_y.min(self.det[di][f][1]);
                }
            }
        }
    }

    fn update_track(&mut self, ti: usize, di: usize, ts: u64, received_ns: u64) {
        let (window, stride) = (self.cfg.window, self.cfg.stride);
        let (low, high) = (self.cfg.low_hip_m, self.cfg.high_hip_m);
        let floor = self.floor_y;
        let hip = self.hip;
        let smoothing = self.cfg.smoothing;
        let t = &mut self.tracks[ti];
        if !t.gap_stamps.is_empty() {
            t.fill_gap(&self.det[di], &self.det_conf[di], smoothing.as_ref());
        }
        for ((last, p), &c) in t.last.iter_mut().zip(&self.det[di]).zip(&self.det_conf[di]) {
            if c > 0.0 {
                *last = *p;
            }
        }
        t.missed = 0;
        t.push_pose(smoothing.as_ref(), ts);
        t.received_ns = received_ns;
        t.since_emit += 1;
        if let Some(h) = hip {
            let hh = t.last[h][1] - floor;
            t.hip_height_m = if floor.is_finite() { hh } else { f32::NAN };
            if hh.is_finite() {
                if hh < low {
                    t.low_since_ns.get_or_insert(ts);
                } else {
                    t.low_since_ns = None;
                }
                if hh > high {
                    t.last_high_ns = Some(ts);
                }
            }
        }
        if t.ring.len() == window && (t.since_emit >= stride || !t.emitted) {
            t.due = true;
        }
    }

    /// At the end of the stream: every live track ends, yielding a short
    /// window if it never yielded one. Returns the windows now due.
    pub fn finish(&mut self) -> usize {
        for t in &mut self.tracks {
            if t.live {
                t.live = false;
                t.end_track(self.cfg.min_frames);
            }
        }
        self.tracks.iter().filter(|t| t.due).count()
    }

    /// Fills `w` with the next due window; `false` when none is due.
    pub fn take_due(&mut self, w: &mut TrackWindow) -> bool {
        let n = self.tracks.len();
        for k in 0..n {
            let ti = (self.scan + k) % n;
            let t = &mut self.tracks[ti];
            if !t.due {
                continue;
            }
            self.scan = (ti + 1) % n;
            t.due = false;
            w.track = t.id;
            if t.end_marker {
                t.end_marker = false;
                w.frames = 0;
                w.num_joints = t.last.len();
                w.joints.clear();
                w.first_captured_at_ns = t.ring.newest_stamp();
                w.captured_at_ns = t.ring.newest_stamp();
                w.received_ns = t.received_ns;
                w.hip_height_m = t.hip_height_m;
                w.low_since_ns = None;
                w.last_high_ns = None;
                w.last = true;
                return true;
            }
            t.emitted = true;
            t.since_emit = 0;
            w.frames = t.ring.len();
            w.num_joints = t.last.len();
            let (first, newest) = t.ring.copy_into(&mut w.joints);
            w.first_captured_at_ns = first;
            w.captured_at_ns = newest;
            w.received_ns = t.received_ns;
            w.hip_height_m = t.hip_height_m;
            w.low_since_ns = t.low_since_ns;
            w.last_high_ns = t.last_high_ns;
            w.last = t.last_window;
            t.last_window = false;
            self.counts.windows += 1;
            return true;
        }
        false
    }
}

/// Mean distance between the track's last pose and the seen joints of a
/// detection; infinity when no joint was seen.
fn mean_distance(a: &[[f32; 3]], b: &[[f32; 3]], conf: &[f32]) -> f32 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for ((p, q), &c) in a.iter().zip(b).zip(conf) {
        if c > 0.0 {
            let d = [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
            sum += (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            n += 1;
        }
    }
    if n == 0 {
        f32::INFINITY
    } else {
        sum / n as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_newest_in_order() {
        let mut r = FrameRing::new(3, 1);
        for i in 0..5 {
            r.push(&[[i as f32, 0.0, 0.0]], i);
        }
        let mut out = Vec::new();
        let (a, b) = r.copy_into(&mut out);
        assert_eq!((a, b), (2, 4));
        assert_eq!(out, vec![2.0, 0.0, 0.0, 3.0, 0.0, 0.0, 4.0, 0.0, 0.0]);
    }
}
