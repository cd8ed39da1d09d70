//! Reader for Northwestern-UCLA Multiview Action 3D (Wang, Nie, Xia, Wu and
//! Zhu, "Cross-view action modeling, learning and recognition", CVPR 2014):
//! 10 actions by 10 subjects, filmed at once by three Kinect v1 cameras.
//!
//! The skeletons come as one JSON file per clip, in the form the CTR-GCN
//! authors redistribute (`all_sqe/`): `{"file_name": "a01_s01_e00_v01",
//! "skeletons": [T][20][3], "label": 1..10}`, metres in the Kinect v1 camera
//! frame. The file name encodes action, subject, repetition (`e`) and view
//! (`v`); the JSON label must agree with the action id (actions a07 and a10
//! are not in the data set, so label and action id differ from a08 on).
//! Joints follow the Kinect SDK v1 order, layout `"kinect20-ucla"`.
//!
//! The files carry no timestamps; [`FPS`] is the Kinect v1's nominal 30
//! frames per second. Some clips are a single frame.
//!
//! Standard protocol (cross-view): views 1 and 2 train (1,020 clips), view
//! 3 tests (464 clips).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::clip::finite_f32;
use super::{malformed, Clip, ClipMeta};
use crate::skeleton::Layout;
use crate::Result;

/// The format name in errors.
pub const FORMAT: &str = "NW-UCLA JSON";

/// The nominal frame rate of the Kinect v1 skeleton stream (the files carry
/// no timestamps).
pub const FPS: f32 = 30.0;

/// Joints per skeleton.
pub const NUM_JOINTS: usize = 20;

/// The largest clip file read (64 MiB; real ones are under 200 KB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The 10 action names, in label order.
pub const CLASSES: [&str; 10] = [
    "pick up with one hand",
    "pick up with two hands",
    "drop trash",
    "walk around",
    "sit down",
    "stand up",
    "donning",
    "doffing",
    "throw",
    "carry",
];

/// The data set's action ids (`aNN` in file names) in label order.
pub const ACTION_IDS: [u32; 10] = [1, 2, 3, 4, 5, 6, 8, 9, 11, 12];

/// The 0-based label of action id `action` (`a08` is label 6), or `None`
/// for an id that is not in the data set.
pub fn label_of_action(action: u32) -> Option<usize> {
    ACTION_IDS.iter().position(|&a| a == action)
}

/// Parses a clip name `aAA_sSS_eEE_vVV` (an optional `.json` is ignored)
/// into its action, subject, repetition and view (in `camera`).
pub fn parse_name(name: &str) -> Option<ClipMeta> {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let mut parts = stem.split('_');
    let mut field = |prefix: char| -> Option<u32> {
        let digits = parts.next()?.strip_prefix(prefix)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let meta = ClipMeta {
        action: Some(field('a')?),
        subject: Some(field('s')?),
        repetition: Some(field('e')?),
        camera: Some(field('v')?),
        setup: None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(meta)
}

/// The standard cross-view protocol: views 1 and 2 train, view 3 tests. A
/// meta without a view is not a training clip.
pub fn is_train_cross_view(meta: &ClipMeta) -> bool {
    matches!(meta.camera, Some(1) | Some(2))
}

/// The `.json` files directly inside `dir`, sorted by path.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    super::list_files(dir, |name| name.ends_with(".json"))
}

#[derive(Deserialize)]
struct RawClip {
    file_name: String,
    skeletons: Vec<Vec<Vec<f64>>>,
    label: i64,
}

/// Reads one clip file; its name must match the `file_name` inside.
pub fn read_clip(path: &Path) -> Result<Clip> {
    let bytes = super::read_capped(path, FORMAT, MAX_FILE_BYTES)?;
    let clip = parse_clip(&bytes, path)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != clip.name {
        return Err(malformed(
            FORMAT,
            path,
            format!("file_name `{}` differs from the file's name", clip.name),
        ));
    }
    Ok(clip)
}

/// Parses the JSON of one clip held in memory (`path` only names it in
/// errors).
pub fn parse_clip(bytes: &[u8], path: &Path) -> Result<Clip> {
    let raw: RawClip = serde_json::from_slice(bytes)
        .map_err(|e| malformed(FORMAT, path, format!("invalid JSON: {e}")))?;
    let meta = parse_name(&raw.file_name).ok_or_else(|| {
        malformed(
            FORMAT,
            path,
            format!("file_name `{}` is not aAA_sSS_eEE_vVV", raw.file_name),
        )
    })?;
    let action = meta.action.unwrap_or(0);
    let label = label_of_action(action)
        .ok_or_else(|| malformed(FORMAT, path, format!("unknown action id a{action:02}")))?;
    if raw.label != label as i64 + 1 {
        return Err(malformed(
            FORMAT,
            path,
            format!(
                "label {} disagrees with action a{action:02} (label {})",
                raw.label,
                label + 1
            ),
        ));
    }
    let t = raw.skeletons.len();
    if t == 0 {
        return Err(malformed(FORMAT, path, "no frames"));
    }
    let mut joints = Vec::with_capacity(t * NUM_JOINTS * 3);
    for (f, frame) in raw.skeletons.iter().enumerate() {
        if frame.len() != NUM_JOINTS {
            return Err(malformed(
                FORMAT,
                path,
                format!("frame {f} has {} joints, want {NUM_JOINTS}", frame.len()),
            ));
        }
        for (j, p) in frame.iter().enumerate() {
            if p.len() != 3 {
                return Err(malformed(
                    FORMAT,
                    path,
                    format!("frame {f}, joint {j} has {} coordinates, want 3", p.len()),
                ));
            }
            for (k, &x) in p.iter().enumerate() {
                joints.push(finite_f32(x, FORMAT, path, || {
                    format!("frame {f}, joint {j}, axis {k}")
                })?);
            }
        }
    }
    Ok(Clip {
        name: raw.file_name,
        label,
        layout: Layout::kinect20_ucla().name(),
        fps: FPS,
        num_frames: t,
        num_persons: 1,
        num_joints: NUM_JOINTS,
        joints,
        meta,
    })
}
