//! Reader for UTD-MHAD, the UTD Multimodal Human Action Dataset (Chen,
//! Jafari and Kehtarnavaz, "UTD-MHAD: A multimodal dataset for human action
//! recognition utilizing a depth camera and a wearable inertial sensor",
//! ICIP 2015): 27 actions, 8 subjects, 4 trials, recorded with a Kinect v1
//! (skeletons and depth, 30 frames per second) and a wearable inertial
//! sensor (50 Hz).
//!
//! Each trial is three MATLAB v5 files, read with [`super::mat5`]:
//! `aA_sS_tT_skeleton.mat` (`d_skel`, 20 x 3 x T double, metres),
//! `aA_sS_tT_depth.mat` (`d_depth`, 240 x 320 x T, depth in millimetres;
//! stored as a double array of uint16 values) and `aA_sS_tT_inertial.mat`
//! (`d_iner`, N x 6 double: accelerometer in g, gyroscope in degrees per
//! second). Skeleton and depth frames are synchronized (same T).
//!
//! The joint order is the data set's own (head, shoulder centre, spine, hip
//! centre, ...), layout `"kinect20-utd"`, which differs from NW-UCLA's.
//! The usual protocol is cross-subject: odd subjects train, even test.

use std::path::{Path, PathBuf};

use super::clip::finite_f32;
use super::mat5::MatFile;
use super::{malformed, Clip, ClipMeta};
use crate::skeleton::Layout;
use crate::Result;

/// The format name in errors about the content of UTD-MHAD files (the
/// MAT-file structure itself reports as [`super::mat5::FORMAT`]).
pub const FORMAT: &str = "UTD-MHAD";

/// The Kinect v1 frame rate of the skeleton and depth streams (UTD-MHAD
/// paper: 30 frames per second).
pub const SKELETON_FPS: f32 = 30.0;

/// The sampling rate of the inertial sensor (UTD-MHAD paper: 50 Hz).
pub const INERTIAL_HZ: f32 = 50.0;

/// Joints per skeleton.
pub const NUM_JOINTS: usize = 20;

/// Depth frame width in pixels.
pub const DEPTH_WIDTH: usize = 320;

/// Depth frame height in pixels.
pub const DEPTH_HEIGHT: usize = 240;

/// The 27 action names, in label order (label = action id - 1).
pub const CLASSES: [&str; 27] = [
    "right arm swipe to the left",
    "right arm swipe to the right",
    "right hand wave",
    "two hand front clap",
    "right arm throw",
    "cross arms in the chest",
    "basketball shoot",
    "right hand draw x",
    "right hand draw circle (clockwise)",
    "right hand draw circle (counter clockwise)",
    "draw triangle",
    "bowling (right hand)",
    "front boxing",
    "baseball swing from right",
    "tennis right hand forehand swing",
    "arm curl (two arms)",
    "tennis serve",
    "two hand push",
    "right hand knock on door",
    "right hand catch an object",
    "right hand pick up and throw",
    "jogging in place",
    "walking in place",
    "sit to stand",
    "stand to sit",
    "forward lunge (left foot forward)",
    "squat (two arms stretch out)",
];

/// Which sensor a UTD-MHAD file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modality {
    /// `*_skeleton.mat`, variable `d_skel`.
    Skeleton,
    /// `*_depth.mat`, variable `d_depth`.
    Depth,
    /// `*_inertial.mat`, variable `d_iner`.
    Inertial,
}

impl Modality {
    /// The file name suffix (`"skeleton"`, `"depth"`, `"inertial"`).
    pub fn suffix(self) -> &'static str {
        match self {
            Modality::Skeleton => "skeleton",
            Modality::Depth => "depth",
            Modality::Inertial => "inertial",
        }
    }

    /// The MATLAB variable that holds the data.
    pub fn variable(self) -> &'static str {
        match self {
            Modality::Skeleton => "d_skel",
            Modality::Depth => "d_depth",
            Modality::Inertial => "d_iner",
        }
    }
}

/// One recording: action, subject and trial, all 1-based as in the file
/// names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Trial {
    /// Action id, 1..=27.
    pub action: u32,
    /// Subject id, 1..=8.
    pub subject: u32,
    /// Trial (repetition), 1..=4.
    pub trial: u32,
}

impl Trial {
    /// Parses `aA_sS_tT_<modality>.mat` (or the name without `.mat`).
    /// Returns the trial and the modality, or `None` when the name does not
    /// follow the pattern or the action is outside 1..=27.
    pub fn parse(file_name: &str) -> Option<(Trial, Modality)> {
        let stem = file_name.strip_suffix(".mat").unwrap_or(file_name);
        let mut parts = stem.split('_');
        let action = number_after(parts.next()?, 'a')?;
        let subject = number_after(parts.next()?, 's')?;
        let trial = number_after(parts.next()?, 't')?;
        let modality = match parts.next()? {
            "skeleton" => Modality::Skeleton,
            "depth" => Modality::Depth,
            "inertial" => Modality::Inertial,
            _ => return None,
        };
        if parts.next().is_some() || !(1..=CLASSES.len() as u32).contains(&action) {
            return None;
        }
        Some((
            Trial {
                action,
                subject,
                trial,
            },
            modality,
        ))
    }

    /// The file name for `modality`: `aA_sS_tT_<suffix>.mat`.
    pub fn file_name(&self, modality: Modality) -> String {
        format!(
            "a{}_s{}_t{}_{}.mat",
            self.action,
            self.subject,
            self.trial,
            modality.suffix()
        )
    }

    /// The 0-based label.
    pub fn label(&self) -> usize {
        self.action as usize - 1
    }

    /// The clip metadata (`repetition` holds the trial).
    pub fn meta(&self) -> ClipMeta {
        ClipMeta {
            action: Some(self.action),
            subject: Some(self.subject),
            camera: None,
            repetition: Some(self.trial),
            setup: None,
        }
    }
}

fn number_after(part: &str, prefix: char) -> Option<u32> {
    let digits = part.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The `modality` files directly inside `dir` that follow the naming
/// pattern, sorted by (action, subject, trial). Other files (such as
/// `Skeleton_joint_order.txt`) are ignored.
pub fn list(dir: &Path, modality: Modality) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(Trial, PathBuf)> = super::list_files(
        dir,
        |name| matches!(Trial::parse(name), Some((_, m)) if m == modality),
    )?
    .into_iter()
    .filter_map(|p| {
        let name = p.file_name()?.to_str()?;
        Some((Trial::parse(name)?.0, p))
    })
    .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// The usual UTD-MHAD protocol (cross-subject): subjects 1, 3, 5, 7 train,
/// 2, 4, 6, 8 test. A meta without a subject is not a training clip.
pub fn is_train_cross_subject(meta: &ClipMeta) -> bool {
    meta.subject.is_some_and(|s| s % 2 == 1)
}

fn trial_of(path: &Path, want: Modality) -> Result<Trial> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match Trial::parse(name) {
        Some((t, m)) if m == want => Ok(t),
        _ => Err(malformed(
            FORMAT,
            path,
            format!(
                "file name is not aA_sS_tT_{}.mat with A in 1..=27",
                want.suffix()
            ),
        )),
    }
}

/// Reads a skeleton file (`aA_sS_tT_skeleton.mat`) into a one-person clip
/// of layout `"kinect20-utd"`; the label and meta come from the file name.
pub fn read_skeleton(path: &Path) -> Result<Clip> {
    let trial = trial_of(path, Modality::Skeleton)?;
    let mut mat = MatFile::read(path)?;
    skeleton_from_mat(&mut mat, trial, path)
}

/// Builds the clip of `trial` from a parsed skeleton MAT-file (`path` only
/// names it in errors).
pub fn skeleton_from_mat(mat: &mut MatFile, trial: Trial, path: &Path) -> Result<Clip> {
    let a = mat.take(Modality::Skeleton.variable(), path)?;
    let [v, c, t] = a
        .dims_as::<3>()
        .filter(|&[v, c, t]| v == NUM_JOINTS && c == 3 && t > 0)
        .ok_or_else(|| {
            malformed(
                FORMAT,
                path,
                format!("d_skel has dims {:?}, want (20, 3, T) with T > 0", a.dims),
            )
        })?;
    let values = a.to_f64();
    // (V, C, T) column-major -> (T, M=1, V, C) row-major
    let mut joints = vec![0.0f32; t * v * c];
    for f in 0..t {
        for j in 0..v {
            for k in 0..c {
                let x = values[j + v * (k + c * f)];
                joints[(f * v + j) * c + k] = finite_f32(x, FORMAT, path, || {
                    format!("frame {f}, joint {j}, axis {k}")
                })?;
            }
        }
    }
    Ok(Clip {
        name: trial
            .file_name(Modality::Skeleton)
            .trim_end_matches(".mat")
            .to_string(),
        label: trial.label(),
        layout: Layout::kinect20_utd().name(),
        fps: SKELETON_FPS,
        num_frames: t,
        num_persons: 1,
        num_joints: v,
        joints,
        meta: trial.meta(),
    })
}

/// A depth video: `frames` frames of `height` x `width` depths.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthVideo {
    /// Pixels per row (320).
    pub width: usize,
    /// Rows per frame (240).
    pub height: usize,
    /// Number of frames (T, the same as the trial's skeleton).
    pub frames: usize,
    /// Depth in millimetres, `(T, H, W)` row-major; 0 where the sensor has
    /// no reading.
    pub depth_mm: Vec<u16>,
}

impl DepthVideo {
    /// The depth at row `y`, column `x` of frame `t`, in millimetres.
    pub fn depth_mm_at(&self, t: usize, y: usize, x: usize) -> Option<u16> {
        if t >= self.frames || y >= self.height || x >= self.width {
            return None;
        }
        self.depth_mm
            .get((t * self.height + y) * self.width + x)
            .copied()
    }

    /// Frame `t` as `height * width` row-major depths.
    pub fn frame(&self, t: usize) -> Option<&[u16]> {
        let n = self.width * self.height;
        self.depth_mm
            .get(t.checked_mul(n)?..t.checked_add(1)?.checked_mul(n)?)
    }
}

/// Reads a depth file (`aA_sS_tT_depth.mat`, variable `d_depth`).
pub fn read_depth(path: &Path) -> Result<DepthVideo> {
    let mut mat = MatFile::read(path)?;
    depth_from_mat(&mut mat, path)
}

/// Builds the depth video from a parsed depth MAT-file.
pub fn depth_from_mat(mat: &mut MatFile, path: &Path) -> Result<DepthVideo> {
    let a = mat.take(Modality::Depth.variable(), path)?;
    let [h, w, t] = a
        .dims_as::<3>()
        .filter(|&[h, w, t]| h > 0 && w > 0 && t > 0)
        .ok_or_else(|| {
            malformed(
                FORMAT,
                path,
                format!("d_depth has dims {:?}, want (H, W, T), all > 0", a.dims),
            )
        })?;
    let values = a.into_u16().ok_or_else(|| {
        malformed(
            FORMAT,
            path,
            "d_depth holds values that are not depths in 0..=65535 mm",
        )
    })?;
    // (H, W, T) column-major -> (T, H, W) row-major
    let mut depth_mm = vec![0u16; values.len()];
    for f in 0..t {
        let src_frame = &values[f * h * w..(f + 1) * h * w];
        let dst_frame = &mut depth_mm[f * h * w..(f + 1) * h * w];
        for x in 0..w {
            let col = &src_frame[x * h..(x + 1) * h];
            for (y, &d) in col.iter().enumerate() {
                dst_frame[y * w + x] = d;
            }
        }
    }
    Ok(DepthVideo {
        width: w,
        height: h,
        frames: t,
        depth_mm,
    })
}

/// A sequence of wearable inertial samples.
#[derive(Debug, Clone, PartialEq)]
pub struct InertialSeq {
    /// The sampling rate in Hz (50).
    pub rate_hz: f32,
    /// Accelerometer x, y, z in g, one entry per sample.
    pub accel_g: Vec<[f64; 3]>,
    /// Gyroscope x, y, z in degrees per second, one entry per sample.
    pub gyro_deg_s: Vec<[f64; 3]>,
}

impl InertialSeq {
    /// The number of samples (N).
    pub fn len(&self) -> usize {
        self.accel_g.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.accel_g.is_empty()
    }
}

/// Reads an inertial file (`aA_sS_tT_inertial.mat`, variable `d_iner`).
pub fn read_inertial(path: &Path) -> Result<InertialSeq> {
    let mut mat = MatFile::read(path)?;
    inertial_from_mat(&mut mat, path)
}

/// Builds the inertial sequence from a parsed inertial MAT-file.
pub fn inertial_from_mat(mat: &mut MatFile, path: &Path) -> Result<InertialSeq> {
    let a = mat.take(Modality::Inertial.variable(), path)?;
    let [n, _] = a
        .dims_as::<2>()
        .filter(|&[n, c]| n > 0 && c == 6)
        .ok_or_else(|| {
            malformed(
                FORMAT,
                path,
                format!("d_iner has dims {:?}, want (N, 6) with N > 0", a.dims),
            )
        })?;
    let values = a.to_f64();
    let mut accel_g = Vec::with_capacity(n);
    let mut gyro_deg_s = Vec::with_capacity(n);
    for i in 0..n {
        let mut row = [0.0f64; 6];
        for (k, r) in row.iter_mut().enumerate() {
            // (N, 6) column-major
            let x = values[i + n * k];
            if !x.is_finite() {
                return Err(malformed(
                    FORMAT,
                    path,
                    format!("non-finite value {x} at sample {i}, channel {k}"),
                ));
            }
            *r = x;
        }
        accel_g.push([row[0], row[1], row[2]]);
        gyro_deg_s.push([row[3], row[4], row[5]]);
    }
    Ok(InertialSeq {
        rate_hz: INERTIAL_HZ,
        accel_g,
        gyro_deg_s,
    })
}

/// The file of one trial for `modality` under the data set root (the
/// folder holding `skeleton/`, `depth/`, `inertial/`):
/// `root/<suffix>/aA_sS_tT_<suffix>.mat`.
pub fn path_of(root: &Path, trial: Trial, modality: Modality) -> PathBuf {
    root.join(modality.suffix()).join(trial.file_name(modality))
}
