//! BlazePose as the RealSense source's 2D landmark detector
//! ([`crate::lift::LandmarkDetector`]): MediaPipe-33 pixels and
//! visibilities go to the lifter, which reads depth around each landmark.

use super::BlazePose;
use crate::lift::{LandmarkDetector, Landmarks2d};
use crate::Result;

impl LandmarkDetector for BlazePose {
    fn detect(&mut self, rgb: &[u8], width: usize, height: usize) -> Result<Vec<Landmarks2d>> {
        Ok(self
            .estimate(rgb, width, height)?
            .into_iter()
            .map(|p| Landmarks2d {
                pixels: p.pixels,
                visibility: p.visibility,
            })
            .collect())
    }

    fn describe(&self) -> String {
        "BlazePose (MediaPipe 0.10.21 pose detector + full landmark model, skelact CPU interpreter)"
            .to_string()
    }
}
