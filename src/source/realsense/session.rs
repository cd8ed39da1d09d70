//! A started SDK pipeline: context, config, pipeline, its active profile
//! and device, with a playback device switched to non-real-time reading.
//!
//! Reading a file with real-time mode off makes the SDK hand out every
//! recorded frame, however slowly the caller takes them (in real-time mode
//! it drops frames to keep the recorded pace). The end of a file shows as a
//! wait that times out while the playback status is `STOPPED` (for a
//! second, as the syncer may still hold the last frameset); a camera
//! that is unplugged shows as `rs2_device_is_connected` = 0. Both end the
//! stream instead of failing it.

use std::path::Path;
use std::time::{Duration, Instant};

use realsense_sys as sys;

use super::ffi::{
    c_path, call, non_null, Config, Context, Device, FrameRef, Pipeline, PipelineProfile,
    StreamProfileList,
};
use super::stream::StreamInfo;
use crate::{Error, Result};

/// What waiting for the next frameset gave.
pub(crate) enum Wait {
    /// A frameset.
    Frames(FrameRef),
    /// Nothing yet (a camera between frames).
    Pending,
    /// The file ended or the camera went away.
    End,
}

/// A running pipeline.
pub(crate) struct Session {
    // Fields drop in this order after `Drop::drop` stopped the pipeline.
    pub(crate) device: Device,
    _profile: PipelineProfile,
    pipeline: Pipeline,
    _config: Config,
    _context: Context,
    pub(crate) playback: bool,
    pub(crate) streams: Vec<StreamInfo>,
    stopped_at: Option<Instant>,
}

/// How long frames may still arrive after a playback reports `STOPPED`.
const END_GRACE: Duration = Duration::from_millis(1000);

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: live pipeline; stopping twice or a stopped pipeline only
        // sets the error, which is ignored here.
        let _ = call("rs2_pipeline_stop", |e| unsafe {
            sys::rs2_pipeline_stop(self.pipeline.ptr(), e)
        });
    }
}

impl Session {
    /// A config to fill; `file` (when given) is played back once, or over
    /// and over with `repeat`.
    pub(crate) fn config(file: Option<&Path>, repeat: bool) -> Result<(Context, Config)> {
        let context = Context::new()?;
        // SAFETY: constructor; error checked.
        let cfg = call("rs2_create_config", |e| unsafe {
            sys::rs2_create_config(e)
        })?;
        let config = Config(non_null("rs2_create_config", cfg)?);
        if let Some(path) = file {
            if !path.is_file() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such recording"),
                ));
            }
            let c = c_path(path)?;
            // SAFETY: live config, NUL-terminated path copied by the SDK.
            call("rs2_config_enable_device_from_file", |e| unsafe {
                sys::rs2_config_enable_device_from_file_repeat_option(
                    config.ptr(),
                    c.as_ptr(),
                    i32::from(repeat),
                    e,
                )
            })?;
        }
        Ok((context, config))
    }

    /// Starts the pipeline of `config`.
    pub(crate) fn start(context: Context, config: Config) -> Result<Self> {
        // SAFETY: live context and config; every returned handle is owned
        // by the Session and freed once.
        unsafe {
            let p = call("rs2_create_pipeline", |e| {
                sys::rs2_create_pipeline(context.ptr(), e)
            })?;
            let pipeline = Pipeline(non_null("rs2_create_pipeline", p)?);
            let prof = call("rs2_pipeline_start_with_config", |e| {
                sys::rs2_pipeline_start_with_config(pipeline.ptr(), config.ptr(), e)
            })?;
            let profile = PipelineProfile(non_null("rs2_pipeline_start_with_config", prof)?);
            let dev = call("rs2_pipeline_profile_get_device", |e| {
                sys::rs2_pipeline_profile_get_device(profile.ptr(), e)
            })?;
            let device = Device(non_null("rs2_pipeline_profile_get_device", dev)?);
            let playback = device.is_playback()?;
            if playback {
                call("rs2_playback_device_set_real_time", |e| {
                    sys::rs2_playback_device_set_real_time(device.ptr(), 0, e)
                })?;
            }
            let list = call("rs2_pipeline_profile_get_streams", |e| {
                sys::rs2_pipeline_profile_get_streams(profile.ptr(), e)
            })?;
            let list = StreamProfileList(non_null("rs2_pipeline_profile_get_streams", list)?);
            let n = call("rs2_get_stream_profiles_count", |e| {
                sys::rs2_get_stream_profiles_count(list.ptr(), e)
            })?;
            let mut streams = Vec::new();
            for i in 0..n {
                let sp = call("rs2_get_stream_profile", |e| {
                    sys::rs2_get_stream_profile(list.ptr(), i, e)
                })?;
                streams.push(StreamInfo::from_profile(sp)?);
            }
            Ok(Self {
                device,
                _profile: profile,
                pipeline,
                _config: config,
                _context: context,
                playback,
                streams,
                stopped_at: None,
            })
        }
    }

    /// Waits up to `timeout_ms` for the next frameset.
    pub(crate) fn wait(&mut self, timeout_ms: u32) -> Result<Wait> {
        let mut frame: *mut sys::rs2_frame = std::ptr::null_mut();
        // SAFETY: live pipeline; a returned frame is owned by the FrameRef.
        let got = call("rs2_pipeline_try_wait_for_frames", |e| unsafe {
            sys::rs2_pipeline_try_wait_for_frames(self.pipeline.ptr(), &mut frame, timeout_ms, e)
        });
        match got {
            Ok(0) => {}
            Ok(_) => {
                return Ok(Wait::Frames(FrameRef(non_null(
                    "rs2_pipeline_try_wait_for_frames",
                    frame,
                )?)))
            }
            Err(e) => {
                if self.playback || self.connected() {
                    return Err(e);
                }
                log::warn!("RealSense camera disconnected: {e}");
                return Ok(Wait::End);
            }
        }
        if self.playback {
            // SAFETY: live playback device.
            let status = call("rs2_playback_device_get_current_status", |e| unsafe {
                sys::rs2_playback_device_get_current_status(self.device.ptr(), e)
            })?;
            if status == sys::rs2_playback_status_RS2_PLAYBACK_STATUS_STOPPED {
                // The reader may stop before the syncer has handed out the
                // last frameset: keep waiting a little before the end.
                let since = *self.stopped_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= END_GRACE {
                    return Ok(Wait::End);
                }
            }
        } else if !self.connected() {
            log::warn!("RealSense camera disconnected");
            return Ok(Wait::End);
        }
        Ok(Wait::Pending)
    }

    fn connected(&self) -> bool {
        // SAFETY: live device.
        call("rs2_device_is_connected", |e| unsafe {
            sys::rs2_device_is_connected(self.device.ptr(), e)
        })
        .map(|c| c != 0)
        .unwrap_or(false)
    }
}
