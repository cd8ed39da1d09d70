//! Aligned frames from a capture written to a recording: `skelact
//! realsense convert` (a file) and `skelact realsense record` (a camera).
//!
//! librealsense 2.59 reads ROS 1 `.bag` files but writes only ROS 2
//! `.db3`, and it cannot record a playback. [`rerecord`] reads frames
//! through [`Capture`] (from a file: every colour frame paired with its
//! nearest depth frame; from a camera: the pipeline's framesets; depth
//! aligned to colour either way) and writes each aligned frame with
//! [`RgbdWriter`]: the result holds what skelact's runtime reads from the
//! source, in the SDK's current format, optionally cut to its first
//! frames. A camera and a file go through the same code, so what the tests
//! check on files holds for a camera but for the capture itself.

use std::path::Path;

use super::capture::{Capture, CaptureConfig, Next};
use super::rgbd::RgbdFrame;
use super::writer::{RgbdSpec, RgbdWriter};
use crate::{Error, Result};

/// What [`rerecord`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rerecorded {
    /// Aligned frames written.
    pub frames: u64,
    /// Colour frames left out for lack of a depth frame (a file: none
    /// near them in time; a camera: framesets missing one stream).
    pub incomplete: u64,
}

/// Captures from `input` until it ends (a file) or `max_frames` were
/// written, writing every aligned frame to `output` (`.db3`). A camera
/// needs `max_frames`.
pub fn rerecord(
    input: &CaptureConfig,
    output: &Path,
    max_frames: Option<u64>,
) -> Result<Rerecorded> {
    let mut capture = Capture::open(input)?;
    if !capture.is_playback() && max_frames.is_none() {
        return Err(Error::config(
            "frames",
            "a camera never ends: give the number of frames to record",
        ));
    }
    let fps = capture
        .color_stream()
        .map(|s| s.fps.max(1) as u32)
        .ok_or_else(|| Error::mismatch("capture", "a colour stream", "none"))?;
    let (name, serial) = capture.device_name_and_serial();
    let mut frame = RgbdFrame::default();
    let mut writer: Option<RgbdWriter> = None;
    let limit = max_frames.unwrap_or(u64::MAX);
    while writer.as_ref().map_or(0, |w| w.frames()) < limit {
        match capture.next_frame(&mut frame)? {
            Next::Frame => {}
            Next::Pending => continue,
            Next::End => break,
        }
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(RgbdWriter::create(
                output,
                RgbdSpec::of_frame(&frame, fps, &name, &serial)?,
            )?),
        };
        w.write(&frame)?;
    }
    let frames = match writer {
        Some(w) => w.finish()?,
        None => {
            return Err(Error::mismatch(
                capture.describe().to_string(),
                "at least one colour frame with depth",
                "none",
            ))
        }
    };
    Ok(Rerecorded {
        frames,
        incomplete: capture.incomplete(),
    })
}

/// Plays the recording `input` once and writes its aligned frames (at most
/// `max_frames`) to `output` (`.db3`).
pub fn convert(input: &Path, output: &Path, max_frames: Option<u64>) -> Result<Rerecorded> {
    rerecord(&CaptureConfig::file(input), output, max_frames)
}
