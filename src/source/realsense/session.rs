//! A started SDK pipeline on a camera: context, config, pipeline, its
//! active profile and device.
//!
//! A camera that is unplugged shows as `rs2_device_is_connected` = 0, which
//! ends the stream instead of failing it. Recordings do not go through the
//! pipeline (it starts them in real-time mode, which may drop frames before
//! it can be switched off): see [`super::playback`].

use realsense_sys as sys;

use super::ffi::{
    call, non_null, Config, Context, Device, FrameRef, Pipeline, PipelineProfile, StreamProfileList,
};
use super::stream::StreamInfo;
use crate::Result;

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
    pub(crate) streams: Vec<StreamInfo>,
}

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
    /// A config to fill.
    pub(crate) fn config() -> Result<(Context, Config)> {
        let context = Context::new()?;
        // SAFETY: constructor; error checked.
        let cfg = call("rs2_create_config", |e| unsafe {
            sys::rs2_create_config(e)
        })?;
        let config = Config(non_null("rs2_create_config", cfg)?);
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
            let list = call("rs2_pipeline_profile_get_streams", |e| {
                sys::rs2_pipeline_profile_get_streams(profile.ptr(), e)
            })?;
            let list = StreamProfileList(non_null("rs2_pipeline_profile_get_streams", list)?);
            let streams = list
                .profiles()?
                .into_iter()
                .map(|p| StreamInfo::from_profile(p))
                .collect::<Result<Vec<_>>>()?;
            Ok(Self {
                device,
                _profile: profile,
                pipeline,
                _config: config,
                _context: context,
                streams,
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
                if self.connected() {
                    return Err(e);
                }
                log::warn!("RealSense camera disconnected: {e}");
                return Ok(Wait::End);
            }
        }
        if !self.connected() {
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
