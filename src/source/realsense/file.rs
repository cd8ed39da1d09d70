//! What a recording holds: device, streams with their intrinsics, depth
//! scale, duration and the number of frames of each stream (read through
//! once, sensor by sensor, with real-time mode off).

use std::collections::BTreeSet;
use std::path::Path;

use realsense_sys as sys;

use std::time::{Duration, Instant};

use super::ffi::{
    c_path, call, non_null, Context, Device, FrameQueue, FrameRef, Sensor, SensorList,
    StreamProfileList,
};
use super::stream::{frame_profile, ProfileData, StreamInfo};
use crate::{Error, Result};

/// How long a summary keeps reading after the playback reports `STOPPED`
/// and no frame arrives (frames still in the sensor pipeline reach the
/// queue late when the CPU is busy).
const STOP_GRACE: Duration = Duration::from_millis(1000);

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

/// Opens a recording as a playback device with real-time mode off; also
/// returns the context that owns it.
fn open_playback(path: &Path) -> Result<(Context, Device)> {
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such recording"),
        ));
    }
    let context = Context::new()?;
    let c = c_path(path)?;
    // SAFETY: live context; the device is owned by the returned handle.
    unsafe {
        let d = call("rs2_context_add_device", |e| {
            sys::rs2_context_add_device(context.ptr(), c.as_ptr(), e)
        })?;
        let device = Device(non_null("rs2_context_add_device", d)?);
        call("rs2_playback_device_set_real_time", |e| {
            sys::rs2_playback_device_set_real_time(device.ptr(), 0, e)
        })?;
        Ok((context, device))
    }
}

/// Streams every profile of every sensor of `sensors_of` (the playback
/// device itself) until `playback` stops,
/// calling `on_frame(stream index, frame number)` (a frame may come twice);
/// returns the streams.
fn play_through(
    sensors_of: &Device,
    playback: &Device,
    path: &Path,
    mut on_frame: impl FnMut(usize, u64),
) -> Result<Vec<StreamInfo>> {
    // SAFETY: every handle below is owned by a value that frees it once;
    // profile pointers belong to their list, which outlives their use;
    // sensors are stopped and closed before they are dropped.
    unsafe {
        let duration_ns = call("rs2_playback_get_duration", |e| {
            sys::rs2_playback_get_duration(playback.ptr(), e)
        })?;
        let q = call("rs2_create_frame_queue", |e| {
            sys::rs2_create_frame_queue(64, e)
        })?;
        let queue = FrameQueue(non_null("rs2_create_frame_queue", q)?);
        let list = call("rs2_query_sensors", |e| {
            sys::rs2_query_sensors(sensors_of.ptr(), e)
        })?;
        let list = SensorList(non_null("rs2_query_sensors", list)?);
        let n = call("rs2_get_sensors_count", |e| {
            sys::rs2_get_sensors_count(list.ptr(), e)
        })?;
        let mut streams = Vec::new();
        let mut open: Vec<(Sensor, StreamProfileList)> = Vec::new();
        let mut result = Ok(());
        for i in 0..n {
            let s = call("rs2_create_sensor", |e| {
                sys::rs2_create_sensor(list.ptr(), i, e)
            })?;
            let sensor = Sensor(non_null("rs2_create_sensor", s)?);
            let pl = call("rs2_get_stream_profiles", |e| {
                sys::rs2_get_stream_profiles(sensor.ptr(), e)
            })?;
            let profiles = StreamProfileList(non_null("rs2_get_stream_profiles", pl)?);
            let k = call("rs2_get_stream_profiles_count", |e| {
                sys::rs2_get_stream_profiles_count(profiles.ptr(), e)
            })?;
            let mut ptrs = Vec::new();
            for j in 0..k {
                let p = call("rs2_get_stream_profile", |e| {
                    sys::rs2_get_stream_profile(profiles.ptr(), j, e)
                })?;
                streams.push(StreamInfo::from_profile(p)?);
                ptrs.push(p);
            }
            if k > 0 {
                result = call("rs2_open_multiple", |e| {
                    sys::rs2_open_multiple(sensor.ptr(), ptrs.as_mut_ptr(), k, e)
                })
                .and_then(|()| {
                    call("rs2_start_queue", |e| {
                        sys::rs2_start_queue(sensor.ptr(), queue.ptr(), e)
                    })
                });
                open.push((sensor, profiles));
                if result.is_err() {
                    break;
                }
            }
        }
        // The reader starts with the first sensor, so frames of a sensor
        // started later may already be gone: with every sensor running,
        // read the file again from its start (callers count distinct
        // frame numbers, so frames seen twice count once).
        if result.is_ok() {
            result = call("rs2_playback_seek", |e| {
                sys::rs2_playback_seek(playback.ptr(), 0, e)
            });
        }
        let uids: Vec<i32> = streams.iter().map(|s| s.unique_id).collect();
        // A recording plays in about its duration or faster; allow ample.
        let deadline = Instant::now()
            + Duration::from_nanos(duration_ns.saturating_mul(4))
            + Duration::from_secs(10);
        if result.is_ok() {
            result = (|| -> Result<()> {
                // Once the reader reports STOPPED, frames may still be on
                // their way to the queue (on a busy machine, seconds):
                // keep waiting until none came for STOP_GRACE.
                let mut stopped: Option<Instant> = None;
                loop {
                    let mut f: *mut sys::rs2_frame = std::ptr::null_mut();
                    let got = call("rs2_try_wait_for_frame", |e| {
                        sys::rs2_try_wait_for_frame(queue.ptr(), 100, &mut f, e)
                    })?;
                    if got != 0 {
                        let f = FrameRef(non_null("rs2_try_wait_for_frame", f)?);
                        let (_, ProfileData { uid, .. }) = frame_profile(f.ptr())?;
                        let num = call("rs2_get_frame_number", |e| {
                            sys::rs2_get_frame_number(f.ptr(), e)
                        })?;
                        if let Some(k) = uids.iter().position(|&u| u == uid) {
                            on_frame(k, num);
                        }
                        if stopped.is_some() {
                            stopped = Some(Instant::now());
                        }
                        continue;
                    }
                    if let Some(since) = stopped {
                        if since.elapsed() >= STOP_GRACE {
                            return Ok(());
                        }
                        continue;
                    }
                    let status = call("rs2_playback_device_get_current_status", |e| {
                        sys::rs2_playback_device_get_current_status(playback.ptr(), e)
                    })?;
                    if status == sys::rs2_playback_status_RS2_PLAYBACK_STATUS_STOPPED {
                        stopped = Some(Instant::now());
                    } else if Instant::now() > deadline {
                        return Err(Error::RealSense {
                            function: "playback".to_string(),
                            message: format!("{} did not finish playing", path.display()),
                        });
                    }
                }
            })();
        }
        for (sensor, _) in &open {
            let _ = call("rs2_stop", |e| sys::rs2_stop(sensor.ptr(), e));
            let _ = call("rs2_close", |e| sys::rs2_close(sensor.ptr(), e));
        }
        result.map(|()| streams)
    }
}

/// Reads a whole recording (`.bag`, `.db3`) through its sensors, without
/// the pipeline's syncer (which may leave frames out of framesets), and
/// counts the distinct frames of every stream.
pub fn summarize_file(path: &Path) -> Result<FileSummary> {
    let (_context, device) = open_playback(path)?;
    let info = |i| device.info(i).unwrap_or_default();
    let name = info(sys::rs2_camera_info_RS2_CAMERA_INFO_NAME);
    let serial = info(sys::rs2_camera_info_RS2_CAMERA_INFO_SERIAL_NUMBER);
    let firmware = info(sys::rs2_camera_info_RS2_CAMERA_INFO_FIRMWARE_VERSION);
    let depth_scale_m = device.depth_scale_m()?;
    // SAFETY: live playback device.
    let duration_ns = call("rs2_playback_get_duration", |e| unsafe {
        sys::rs2_playback_get_duration(device.ptr(), e)
    })?;
    let mut seen: Vec<BTreeSet<u64>> = Vec::new();
    let streams = play_through(&device, &device, path, |k, num| {
        if seen.len() <= k {
            seen.resize(k + 1, BTreeSet::new());
        }
        seen[k].insert(num);
    })?;
    seen.resize(streams.len(), BTreeSet::new());
    let streams = streams
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
