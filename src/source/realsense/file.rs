//! What a recording holds: device, streams with their intrinsics, depth
//! scale, duration and the number of frames of each stream (read through
//! once, every sensor listening, with real-time mode off: see
//! `playback.rs`).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use realsense_sys as sys;

use super::ffi::call;
use super::playback::{Playback, Streams};
use super::stream::StreamInfo;
use crate::Result;

/// Frames of one stream in a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamCount {
    /// The stream.
    pub stream: StreamInfo,
    /// Distinct frames read (by frame number).
    pub frames: u64,
    /// Smallest and largest frame number.
    pub frame_numbers: Option<(u64, u64)>,
}

/// A recording's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    /// Recorded device name.
    pub device: String,
    /// Recorded serial number.
    pub serial: String,
    /// Recorded firmware version.
    pub firmware: String,
    /// Depth scale, metres per unit (`None` without a depth sensor).
    pub depth_scale_m: Option<f32>,
    /// Duration, ns.
    pub duration_ns: u64,
    /// Every stream and its frame count.
    pub streams: Vec<StreamCount>,
}

/// Reads a whole recording (`.bag`, `.db3`) through its sensors, without
/// the pipeline's syncer (which may leave frames out of framesets), and
/// counts the distinct frames of every stream.
pub fn summarize_file(path: &Path) -> Result<FileSummary> {
    let mut playback = Playback::open(path, Streams::All, false)?;
    let device = &playback.device;
    let info = |i| device.info(i).unwrap_or_default();
    let name = info(sys::rs2_camera_info_RS2_CAMERA_INFO_NAME);
    let serial = info(sys::rs2_camera_info_RS2_CAMERA_INFO_SERIAL_NUMBER);
    let firmware = info(sys::rs2_camera_info_RS2_CAMERA_INFO_FIRMWARE_VERSION);
    let depth_scale_m = device.depth_scale_m()?;
    // SAFETY: live playback device.
    let duration_ns = call("rs2_playback_get_duration", |e| unsafe {
        sys::rs2_playback_get_duration(device.ptr(), e)
    })?;
    let mut seen: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); playback.streams.len()];
    // A recording plays in about its duration or faster; allow ample.
    let deadline = Instant::now()
        + Duration::from_nanos(duration_ns.saturating_mul(4))
        + Duration::from_secs(10);
    while let Some(frame) = playback.next_raw(deadline)? {
        if let Some(k) = playback.stream_of(&frame)? {
            // SAFETY: live frame.
            let num = call("rs2_get_frame_number", |e| unsafe {
                sys::rs2_get_frame_number(frame.ptr(), e)
            })?;
            seen[k].insert(num);
        }
    }
    let streams = std::mem::take(&mut playback.streams)
        .into_iter()
        .zip(&seen)
        .map(|(s, n)| StreamCount {
            stream: s,
            frames: n.len() as u64,
            frame_numbers: n.first().copied().zip(n.last().copied()),
        })
        .collect();
    Ok(FileSummary {
        device: name,
        serial,
        firmware,
        depth_scale_m,
        duration_ns,
        streams,
    })
}
