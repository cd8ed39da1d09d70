//! What a RealSense stream is: type, index, pixel format, rate, size and
//! intrinsics, read from an SDK stream profile.

use realsense_sys as sys;

use super::ffi::{call, format_name, stream_name};
use crate::lift::{Distortion, Intrinsics};
use crate::Result;

/// One stream of a device or recording.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The SDK's stream type name (`Depth`, `Color`, `Infrared`, ...).
    pub kind: String,
    /// The SDK's stream type value (`rs2_stream`).
    pub kind_id: u32,
    /// Index among streams of the same type (infrared 1 and 2).
    pub index: i32,
    /// Unique id of the stream profile.
    pub unique_id: i32,
    /// The SDK's pixel format name (`Z16`, `RGB8`, ...).
    pub format: String,
    /// The SDK's format value (`rs2_format`).
    pub format_id: u32,
    /// Nominal frame rate, Hz.
    pub fps: i32,
    /// Image intrinsics (size included); `None` for motion or pose streams.
    pub intrinsics: Option<Intrinsics>,
}

impl StreamInfo {
    /// Reads a stream profile the SDK owns.
    ///
    /// # Safety
    /// `profile` must be a live `rs2_stream_profile`.
    pub(crate) unsafe fn from_profile(profile: *const sys::rs2_stream_profile) -> Result<Self> {
        let ProfileData {
            stream,
            format,
            index,
            uid,
            fps,
        } = profile_data(profile)?;
        let is_video = call("rs2_stream_profile_is", |e| {
            sys::rs2_stream_profile_is(profile, sys::rs2_extension_RS2_EXTENSION_VIDEO_PROFILE, e)
        })?;
        let intrinsics = if is_video != 0 {
            let mut raw = std::mem::zeroed::<sys::rs2_intrinsics>();
            // Some recorded profiles carry no calibration: leave it out.
            match call("rs2_get_video_stream_intrinsics", |e| {
                sys::rs2_get_video_stream_intrinsics(profile, &mut raw, e)
            }) {
                Ok(()) => Some(intrinsics_from_rs2(&raw)?),
                Err(_) => None,
            }
        } else {
            None
        };
        Ok(Self {
            kind: stream_name(stream),
            kind_id: stream,
            index,
            unique_id: uid,
            format: format_name(format),
            format_id: format,
            fps,
            intrinsics,
        })
    }
}

/// What `rs2_get_stream_profile_data` reports of a stream profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProfileData {
    pub stream: sys::rs2_stream,
    pub format: sys::rs2_format,
    pub index: i32,
    pub uid: i32,
    pub fps: i32,
}

/// Reads a stream profile's type, format, index, unique id and rate.
///
/// # Safety
/// `profile` must be a live `rs2_stream_profile`.
pub(crate) unsafe fn profile_data(profile: *const sys::rs2_stream_profile) -> Result<ProfileData> {
    let (mut stream, mut format, mut index, mut uid, mut fps) = (0, 0, 0, 0, 0);
    call("rs2_get_stream_profile_data", |e| {
        sys::rs2_get_stream_profile_data(
            profile,
            &mut stream,
            &mut format,
            &mut index,
            &mut uid,
            &mut fps,
            e,
        )
    })?;
    Ok(ProfileData {
        stream,
        format,
        index,
        uid,
        fps,
    })
}

/// A frame's stream profile (owned by the frame) and what it reports.
///
/// # Safety
/// `frame` must be a live `rs2_frame`.
pub(crate) unsafe fn frame_profile(
    frame: *const sys::rs2_frame,
) -> Result<(*const sys::rs2_stream_profile, ProfileData)> {
    let p = call("rs2_get_frame_stream_profile", |e| {
        sys::rs2_get_frame_stream_profile(frame, e)
    })?;
    Ok((p, profile_data(p)?))
}

/// skelact's intrinsics from the SDK's struct.
pub fn intrinsics_from_rs2(raw: &sys::rs2_intrinsics) -> Result<Intrinsics> {
    Ok(Intrinsics {
        width: raw.width.max(0) as usize,
        height: raw.height.max(0) as usize,
        ppx: raw.ppx,
        ppy: raw.ppy,
        fx: raw.fx,
        fy: raw.fy,
        model: Distortion::from_rs2(raw.model)?,
        coeffs: raw.coeffs,
    })
}

/// The SDK's struct from skelact's intrinsics (for calling the SDK's own
/// projection functions).
pub fn intrinsics_to_rs2(i: &Intrinsics) -> sys::rs2_intrinsics {
    sys::rs2_intrinsics {
        width: i.width as i32,
        height: i.height as i32,
        ppx: i.ppx,
        ppy: i.ppy,
        fx: i.fx,
        fy: i.fy,
        model: i.model.to_rs2(),
        coeffs: i.coeffs,
    }
}
