//! The RealSense [`JointSource`]: capture, 2D landmarks, lifting.
//!
//! Per frame: an aligned colour + depth frame from [`Capture`], the people's
//! 2D landmarks from a [`LandmarkDetector`] on the colour image, and the
//! [`Lifter`] to 3D joints of the model's layout. The frame's timestamp is
//! the colour frame's sensor timestamp; the time spent waiting for and
//! copying the frame (capture) and finding landmarks (pose) is kept per
//! frame in [`StageTimes`]; the runtime's latency report shows them as the
//! `capture` and `pose` stages.

use std::time::Instant;

use super::capture::{Capture, CaptureConfig, Next};
use super::rgbd::RgbdFrame;
use crate::lift::{DepthLookup, LandmarkDetector, Lifter};
use crate::skeleton::Layout;
use crate::source::live::{StageTimes, NO_FRAME};
use crate::source::{Frame, JointSource};
use crate::{Error, Result};

/// Joints from a RealSense camera or recording.
pub struct RealSenseSource {
    capture: Capture,
    detector: Box<dyn LandmarkDetector>,
    lifter: Lifter,
    rgbd: RgbdFrame,
    fps: f32,
    seq: u64,
    last: StageTimes,
    first_ts_ms: Option<f64>,
}

impl RealSenseSource {
    /// Opens `capture` and lifts what `detector` finds to `layout` (the
    /// model's layout: `ntu25`, `kinect20_ucla`, ...).
    pub fn open(
        capture: &CaptureConfig,
        detector: Box<dyn LandmarkDetector>,
        layout: &'static Layout,
        lookup: DepthLookup,
    ) -> Result<Self> {
        let lifter = Lifter::new(layout, lookup)?;
        let capture = Capture::open(capture)?;
        let fps = capture.color_stream().map_or(30.0, |s| s.fps as f32);
        Ok(Self {
            capture,
            detector,
            lifter,
            rgbd: RgbdFrame::default(),
            fps: if fps > 0.0 { fps } else { 30.0 },
            seq: 0,
            last: StageTimes::default(),
            first_ts_ms: None,
        })
    }

    /// The capture underneath (streams, depth scale).
    pub fn capture(&self) -> &Capture {
        &self.capture
    }
}

impl JointSource for RealSenseSource {
    fn layout(&self) -> &'static Layout {
        self.lifter.layout()
    }

    fn fps(&self) -> f32 {
        self.fps
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool> {
        if frame.layout != self.lifter.layout() {
            frame.set_layout(self.lifter.layout());
        }
        let t0 = Instant::now();
        match self.capture.next_frame(&mut self.rgbd)? {
            Next::End => return Ok(false),
            Next::Pending => {
                frame.clear();
                frame.seq = NO_FRAME;
                return Ok(true);
            }
            Next::Frame => {}
        }
        let t1 = Instant::now();
        let intrinsics = self
            .rgbd
            .intrinsics
            .ok_or_else(|| Error::mismatch("colour stream", "intrinsics", "none recorded"))?;
        let people = self
            .detector
            .detect(&self.rgbd.rgb, self.rgbd.width, self.rgbd.height)?;
        let depth = self.rgbd.depth_image()?;
        self.lifter
            .lift_frame(&people, &depth, &intrinsics, frame)?;
        let t2 = Instant::now();
        self.last = StageTimes {
            capture_ns: (t1 - t0).as_nanos() as u64,
            pose_ns: (t2 - t1).as_nanos() as u64,
        };
        // Sensor time from the first frame (timestamps are ms on the
        // device's clock; the runtime wants a monotonic ns counter).
        let ts = self.rgbd.color_timestamp_ms;
        let first = *self.first_ts_ms.get_or_insert(ts);
        frame.captured_at_ns = ((ts - first).max(0.0) * 1e6) as u64;
        frame.seq = self.seq;
        self.seq += 1;
        Ok(true)
    }

    fn dropped(&self) -> u64 {
        self.capture.incomplete() + self.lifter.skipped()
    }

    fn stage_times(&self) -> Option<StageTimes> {
        Some(self.last)
    }

    fn describe(&self) -> String {
        format!(
            "{} -> {} ({})",
            self.capture.describe(),
            self.lifter.layout().name(),
            self.detector.describe()
        )
    }
}
