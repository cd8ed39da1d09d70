//! Reader for the NTU RGB+D 60 and 120 skeleton files (Shahroudy, Liu, Ng
//! and Wang, "NTU RGB+D: A large scale dataset for 3D human activity
//! analysis", CVPR 2016; Liu et al., "NTU RGB+D 120", TPAMI 2019): Kinect v2
//! bodies of 25 joints at 30 frames per second, one `.skeleton` text file
//! per clip.
//!
//! The text format, as the data set's own reader and the reference
//! preprocessing scripts (ST-GCN / 2s-AGCN `ntu_gendata.py`) read it: the
//! first line holds the frame count; each frame starts with its body count;
//! each body is a line of 10 values (bodyID, clipedEdges,
//! handLeftConfidence, handLeftState, handRightConfidence, handRightState,
//! isResticted, leanX, leanY, trackingState), a line with the joint count
//! (25), then one line of 12 values per joint (x, y, z in metres, depthX,
//! depthY, colorX, colorY, orientationW, X, Y, Z, trackingState).
//!
//! [`read_clip`] turns a file into a [`Clip`] the way that reference
//! preprocessing does: bodies fill slots by their order within each frame
//! (at most [`MAX_BODY_SLOTS`]), frames without bodies stay in the clip as
//! zeros, and the [`MAX_PERSONS`] slots with the most motion energy (the sum
//! over x, y, z of the standard deviation over the frames where the slot is
//! non-zero) are kept, most energetic first. Exact energy ties keep the
//! lower slot first (numpy's reversed argsort would put the higher slot
//! first; the difference shows only when two slots tie exactly).
//!
//! File names are `SsssCcccPpppRrrrAaaa` (setup, camera, performer,
//! replication, action); the label is `A - 1`. The official benchmarks are
//! in [`Benchmark`]. Class names live with the models that use them.

use std::path::Path;

use super::{malformed, Clip, ClipMeta};
use crate::skeleton::Layout;
use crate::Result;

/// The format name in errors.
pub const FORMAT: &str = "NTU .skeleton";

/// The Kinect v2 frame rate (30 frames per second).
pub const FPS: f32 = 30.0;

/// Joints per body.
pub const NUM_JOINTS: usize = 25;

/// Body slots read per frame, as in the reference preprocessing
/// (`max_body_kinect = 4`); bodies past the fourth in a frame are ignored.
pub const MAX_BODY_SLOTS: usize = 4;

/// Persons kept per clip (`max_body_true = 2`).
pub const MAX_PERSONS: usize = 2;

/// The largest `.skeleton` file read (256 MiB; real ones are under 5 MB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// NTU RGB+D 60 cross-subject training performers (the other 20 of the 40
/// test).
pub const TRAIN_SUBJECTS_60: [u32; 20] = [
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,
];

/// NTU RGB+D 120 cross-subject training performers: 53 of the 106 (Liu et
/// al., TPAMI 2019; the list in the authors' evaluation code and in
/// CTR-GCN's `data/ntu120/seq_transformation.py`).
pub const TRAIN_SUBJECTS_120: [u32; 53] = [
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50,
    52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95,
    97, 98, 100, 103,
];

/// NTU RGB+D 60 cross-view training cameras (camera 1 tests).
pub const TRAIN_CAMERAS: [u32; 2] = [2, 3];

/// The official NTU evaluation protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Benchmark {
    /// NTU-60 cross-subject: performers in [`TRAIN_SUBJECTS_60`] train.
    CrossSubject60,
    /// NTU-60 cross-view: cameras 2 and 3 train, camera 1 tests.
    CrossView60,
    /// NTU-120 cross-subject: performers in [`TRAIN_SUBJECTS_120`] train.
    CrossSubject120,
    /// NTU-120 cross-setup: even setup ids train, odd ones test.
    CrossSetup120,
}

impl Benchmark {
    /// The short name used in the literature and model cards
    /// (`"xsub60"`, `"xview60"`, `"xsub120"`, `"xset120"`).
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::CrossSubject60 => "xsub60",
            Benchmark::CrossView60 => "xview60",
            Benchmark::CrossSubject120 => "xsub120",
            Benchmark::CrossSetup120 => "xset120",
        }
    }

    /// Whether a clip belongs to the training side. A meta that lacks the
    /// field the protocol splits on is not a training clip.
    pub fn is_train(self, meta: &ClipMeta) -> bool {
        match self {
            Benchmark::CrossSubject60 => {
                meta.subject.is_some_and(|s| TRAIN_SUBJECTS_60.contains(&s))
            }
            Benchmark::CrossView60 => meta.camera.is_some_and(|c| TRAIN_CAMERAS.contains(&c)),
            Benchmark::CrossSubject120 => meta
                .subject
                .is_some_and(|s| TRAIN_SUBJECTS_120.contains(&s)),
            Benchmark::CrossSetup120 => meta.setup.is_some_and(|s| s % 2 == 0),
        }
    }

    /// Whether the protocol uses only NTU-60 clips (actions 1..=60, setups
    /// 1..=17).
    pub fn is_ntu60(self) -> bool {
        matches!(self, Benchmark::CrossSubject60 | Benchmark::CrossView60)
    }
}

/// Parses `SsssCcccPpppRrrrAaaa` (an optional `.skeleton` is ignored).
/// Returns `None` unless the name has exactly that form with an action in
/// 1..=120.
pub fn parse_name(name: &str) -> Option<ClipMeta> {
    let stem = name.strip_suffix(".skeleton").unwrap_or(name);
    let b = stem.as_bytes();
    if b.len() != 20 {
        return None;
    }
    let field = |i: usize, letter: u8| -> Option<u32> {
        let chunk = b.get(i * 4..i * 4 + 4)?;
        if chunk[0] != letter || !chunk[1..].iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            chunk[1..]
                .iter()
                .fold(0, |n, &d| n * 10 + u32::from(d - b'0')),
        )
    };
    let meta = ClipMeta {
        setup: Some(field(0, b'S')?),
        camera: Some(field(1, b'C')?),
        subject: Some(field(2, b'P')?),
        repetition: Some(field(3, b'R')?),
        action: Some(field(4, b'A')?),
    };
    if !meta.action.is_some_and(|a| (1..=120).contains(&a)) {
        return None;
    }
    Some(meta)
}

/// One joint of one body, as the file gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Joint {
    /// Camera-space position in metres.
    pub xyz_m: [f32; 3],
    /// Position in the depth image, pixels.
    pub depth_xy_px: [f32; 2],
    /// Position in the colour image, pixels.
    pub color_xy_px: [f32; 2],
    /// Orientation quaternion (w, x, y, z).
    pub orientation_wxyz: [f32; 4],
    /// Kinect tracking state: 0 not tracked, 1 inferred, 2 tracked.
    pub tracking_state: u32,
}

/// One body in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The Kinect tracking id (stable while the body is tracked).
    pub id: u64,
    /// Kinect `ClippedEdges` bit flags.
    pub clipped_edges: u32,
    /// Left hand confidence (0 low, 1 high).
    pub hand_left_confidence: u32,
    /// Left hand state (0 unknown .. 4 lasso).
    pub hand_left_state: u32,
    /// Right hand confidence.
    pub hand_right_confidence: u32,
    /// Right hand state.
    pub hand_right_state: u32,
    /// Kinect `IsRestricted`.
    pub is_restricted: bool,
    /// Lean (x, y), -1..1.
    pub lean_xy: [f32; 2],
    /// Body tracking state.
    pub tracking_state: u32,
    /// The 25 joints, Kinect v2 order (layout `"ntu25"`).
    pub joints: Vec<Joint>,
}

/// A whole `.skeleton` file: per frame, the bodies in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequence {
    /// One entry per frame (possibly empty).
    pub frames: Vec<Vec<Body>>,
}

/// Reads and parses a `.skeleton` file.
pub fn read_sequence(path: &Path) -> Result<Sequence> {
    let bytes = super::read_capped(path, FORMAT, MAX_FILE_BYTES)?;
    parse_sequence(&bytes, path)
}

/// Reads a `.skeleton` file into a clip of at most [`MAX_PERSONS`] persons
/// (see the module documentation); the label and meta come from the file
/// name, which must be `SsssCcccPpppRrrrAaaa.skeleton`.
pub fn read_clip(path: &Path) -> Result<Clip> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .trim_end_matches(".skeleton");
    if parse_name(name).is_none() {
        return Err(malformed(
            FORMAT,
            path,
            "file name is not SsssCcccPpppRrrrAaaa.skeleton with A in 1..=120",
        ));
    }
    let seq = read_sequence(path)?;
    clip_from_sequence(&seq, name, MAX_PERSONS, path)
}

/// Builds the clip called `name` (which gives label and meta) from a parsed
/// sequence, keeping at most `max_persons` bodies by motion energy.
pub fn clip_from_sequence(
    seq: &Sequence,
    name: &str,
    max_persons: usize,
    path: &Path,
) -> Result<Clip> {
    let meta = parse_name(name).ok_or_else(|| {
        malformed(
            FORMAT,
            path,
            format!("clip name `{name}` is not SsssCcccPpppRrrrAaaa"),
        )
    })?;
    let t = seq.frames.len();
    if t == 0 {
        return Err(malformed(FORMAT, path, "no frames"));
    }
    let slots = select_bodies(seq, max_persons);
    if slots.is_empty() {
        return Err(malformed(FORMAT, path, "no bodies in any frame"));
    }
    let m = slots.len();
    let mut joints = vec![0.0f32; t * m * NUM_JOINTS * 3];
    for (f, bodies) in seq.frames.iter().enumerate() {
        for (p, &slot) in slots.iter().enumerate() {
            let Some(body) = bodies.get(slot) else {
                continue;
            };
            for (v, joint) in body.joints.iter().take(NUM_JOINTS).enumerate() {
                let i = ((f * m + p) * NUM_JOINTS + v) * 3;
                if let Some(dst) = joints.get_mut(i..i + 3) {
                    dst.copy_from_slice(&joint.xyz_m);
                }
            }
        }
    }
    Ok(Clip {
        name: name.to_string(),
        label: meta.action.map_or(0, |a| a as usize - 1),
        layout: Layout::ntu25().name(),
        fps: FPS,
        num_frames: t,
        num_persons: m,
        num_joints: NUM_JOINTS,
        joints,
        meta,
    })
}

/// The body slots (positions within a frame, below [`MAX_BODY_SLOTS`]) to
/// keep, most motion energy first, at most `max_persons` of them and no more
/// than the largest body count of any frame.
///
/// A slot's energy is the sum over x, y, z of the population standard
/// deviation of that coordinate over all joints of the frames in which the
/// slot holds a body whose coordinates do not sum to zero (the reference
/// `get_nonzero_std`).
pub fn select_bodies(seq: &Sequence, max_persons: usize) -> Vec<usize> {
    let used = seq
        .frames
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .min(MAX_BODY_SLOTS);
    let mut energy: Vec<(usize, f64)> = (0..used).map(|s| (s, slot_energy(seq, s))).collect();
    // Descending energy; a stable sort keeps the lower slot first on ties.
    energy.sort_by(|a, b| b.1.total_cmp(&a.1));
    energy
        .into_iter()
        .take(max_persons)
        .map(|(s, _)| s)
        .collect()
}

fn slot_energy(seq: &Sequence, slot: usize) -> f64 {
    let mut n = 0usize;
    let mut sum = [0.0f64; 3];
    let mut sum_sq = [0.0f64; 3];
    let valid = seq
        .frames
        .iter()
        .filter_map(|bodies| bodies.get(slot))
        .filter(|b| {
            b.joints
                .iter()
                .map(|j| j.xyz_m.iter().map(|&x| f64::from(x)).sum::<f64>())
                .sum::<f64>()
                != 0.0
        });
    // Two passes would be more accurate; mean-shifted sums by the first
    // valid value keep the one-pass variance well conditioned.
    let mut shift: Option<[f64; 3]> = None;
    for body in valid {
        for j in &body.joints {
            let s = *shift.get_or_insert([
                f64::from(j.xyz_m[0]),
                f64::from(j.xyz_m[1]),
                f64::from(j.xyz_m[2]),
            ]);
            for c in 0..3 {
                let d = f64::from(j.xyz_m[c]) - s[c];
                sum[c] += d;
                sum_sq[c] += d * d;
            }
            n += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    (0..3)
        .map(|c| {
            let mean = sum[c] / n;
            (sum_sq[c] / n - mean * mean).max(0.0).sqrt()
        })
        .sum()
}

/// Line-by-line access with 1-based line numbers for errors.
struct Lines<'a> {
    rest: &'a [u8],
    line: usize,
    path: &'a Path,
}

impl<'a> Lines<'a> {
    fn next_line(&mut self, what: &str) -> Result<&'a str> {
        if self.rest.is_empty() {
            return Err(malformed(
                FORMAT,
                self.path,
                format!(
                    "file ends at line {} where {what} was expected",
                    self.line + 1
                ),
            ));
        }
        let end = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.rest.len());
        let (raw, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or(&[]);
        self.line += 1;
        std::str::from_utf8(raw)
            .map(str::trim)
            .map_err(|_| self.err(format!("line is not text where {what} was expected")))
    }

    fn err(&self, reason: String) -> crate::Error {
        malformed(FORMAT, self.path, format!("line {}: {reason}", self.line))
    }

    fn count(&mut self, what: &str) -> Result<usize> {
        let s = self.next_line(what)?;
        s.parse::<usize>()
            .map_err(|_| self.err(format!("`{}` is not a {what}", clip_text(s))))
    }

    /// The next line split into exactly `N` fields.
    fn fields<const N: usize>(&mut self, what: &str) -> Result<[&'a str; N]> {
        let s = self.next_line(what)?;
        let mut out = [""; N];
        let mut it = s.split_ascii_whitespace();
        for o in out.iter_mut() {
            *o = it
                .next()
                .ok_or_else(|| self.err(format!("{what} needs {N} values: `{}`", clip_text(s))))?;
        }
        if it.next().is_some() {
            return Err(self.err(format!(
                "{what} has more than {N} values: `{}`",
                clip_text(s)
            )));
        }
        Ok(out)
    }
}

fn clip_text(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn int<T: std::str::FromStr>(lines: &Lines, s: &str, what: &str) -> Result<T> {
    s.parse::<T>()
        .map_err(|_| lines.err(format!("{what} `{}` is not an integer", clip_text(s))))
}

fn real(lines: &Lines, s: &str, what: &dyn Fn() -> String) -> Result<f32> {
    let x: f32 = s
        .parse()
        .map_err(|_| lines.err(format!("{} `{}` is not a number", what(), clip_text(s))))?;
    if !x.is_finite() {
        return Err(lines.err(format!("non-finite {} `{}`", what(), clip_text(s))));
    }
    Ok(x)
}

/// Parses the text of a `.skeleton` file held in memory (`path` only names
/// it in errors).
pub fn parse_sequence(bytes: &[u8], path: &Path) -> Result<Sequence> {
    let mut lines = Lines {
        rest: bytes,
        line: 0,
        path,
    };
    let num_frames = lines.count("frame count")?;
    // Every frame takes at least one line: never reserve more than that.
    let bound = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut frames = Vec::with_capacity(num_frames.min(bound));
    for f in 0..num_frames {
        let num_bodies = lines.count(&format!("body count of frame {f}"))?;
        let mut bodies = Vec::with_capacity(num_bodies.min(MAX_BODY_SLOTS * 2));
        for b in 0..num_bodies {
            let what = format!("frame {f}, body {b}");
            let [id, edges, hlc, hls, hrc, hrs, restricted, lean_x, lean_y, state] =
                lines.fields::<10>(&format!("body line of {what}"))?;
            let mut body = Body {
                id: int(&lines, id, "bodyID")?,
                clipped_edges: int(&lines, edges, "clipedEdges")?,
                hand_left_confidence: int(&lines, hlc, "handLeftConfidence")?,
                hand_left_state: int(&lines, hls, "handLeftState")?,
                hand_right_confidence: int(&lines, hrc, "handRightConfidence")?,
                hand_right_state: int(&lines, hrs, "handRightState")?,
                is_restricted: int::<u32>(&lines, restricted, "isResticted")? != 0,
                lean_xy: [
                    real(&lines, lean_x, &|| format!("leanX of {what}"))?,
                    real(&lines, lean_y, &|| format!("leanY of {what}"))?,
                ],
                tracking_state: int(&lines, state, "trackingState")?,
                joints: Vec::with_capacity(NUM_JOINTS),
            };
            let num_joints = lines.count(&format!("joint count of {what}"))?;
            if num_joints != NUM_JOINTS {
                return Err(lines.err(format!("{what} has {num_joints} joints, want {NUM_JOINTS}")));
            }
            for j in 0..NUM_JOINTS {
                let v: [&str; 12] =
                    lines.fields::<12>(&format!("joint line of {what}, joint {j}"))?;
                let mut x = [0.0f32; 11];
                const NAMES: [&str; 11] = [
                    "x",
                    "y",
                    "z",
                    "depthX",
                    "depthY",
                    "colorX",
                    "colorY",
                    "orientationW",
                    "orientationX",
                    "orientationY",
                    "orientationZ",
                ];
                for k in 0..11 {
                    x[k] = real(&lines, v[k], &|| {
                        format!("{} of {what}, joint {j}", NAMES[k])
                    })?;
                }
                body.joints.push(Joint {
                    xyz_m: [x[0], x[1], x[2]],
                    depth_xy_px: [x[3], x[4]],
                    color_xy_px: [x[5], x[6]],
                    orientation_wxyz: [x[7], x[8], x[9], x[10]],
                    tracking_state: int(&lines, v[11], "joint trackingState")?,
                });
            }
            bodies.push(body);
        }
        frames.push(bodies);
    }
    while !lines.rest.is_empty() {
        let s = lines.next_line("end of file")?;
        if !s.is_empty() {
            return Err(lines.err(format!(
                "unexpected data after the {num_frames} frames the header announced: `{}`",
                clip_text(s)
            )));
        }
    }
    Ok(Sequence { frames })
}
