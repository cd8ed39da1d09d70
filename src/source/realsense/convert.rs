//! A recording played and written again: `skelact realsense convert`.
//!
//! librealsense 2.59 reads ROS 1 `.bag` files but writes only ROS 2
//! `.db3`, and it cannot record a playback. [`convert`] reads a recording
//! through [`Capture`] (every colour frame paired with its nearest depth
//! frame, depth aligned to colour) and writes each aligned frame with
//! [`RecordingWriter`]: the result holds what skelact's runtime reads from
//! the original, in the SDK's current format, optionally cut to its first
//! frames.

use std::path::Path;

use super::capture::{Capture, CaptureConfig, Next};
use super::rgbd::RgbdFrame;
use super::writer::{RecordingSpec, RecordingWriter};
use crate::{Error, Result};

/// What [`convert`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    /// Aligned frames written.
    pub frames: u64,
    /// Colour frames of the input left out for lack of a depth frame near
    /// them.
    pub incomplete: u64,
}

/// Plays `input` once and writes its aligned frames (at most `max_frames`)
/// to `output` (`.db3`).
pub fn convert(input: &Path, output: &Path, max_frames: Option<u64>) -> Result<Converted> {
    let mut capture = Capture::open(&CaptureConfig::file(input))?;
    let fps = capture
        .streams()
        .iter()
        .find(|s| s.kind_id == realsense_sys::rs2_stream_RS2_STREAM_COLOR)
        .map(|s| s.fps.max(1) as u32)
        .ok_or_else(|| Error::mismatch("recording", "a colour stream", "none"))?;
    let (name, serial) = capture.device_name_and_serial();
    let mut frame = RgbdFrame::default();
    let mut writer: Option<RecordingWriter> = None;
    let limit = max_frames.unwrap_or(u64::MAX);
    while writer.as_ref().map_or(0, |w| w.frames()) < limit {
        if capture.next_frame(&mut frame)? != Next::Frame {
            break;
        }
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(RecordingWriter::create(
                output,
                RecordingSpec::of_frame(&frame, fps, &name, &serial)?,
            )?),
        };
        w.write(&frame)?;
    }
    let frames = match writer {
        Some(w) => w.finish()?,
        None => {
            return Err(Error::mismatch(
                format!("recording {}", input.display()),
                "at least one colour frame with depth",
                "none",
            ))
        }
    };
    Ok(Converted {
        frames,
        incomplete: capture.incomplete(),
    })
}
