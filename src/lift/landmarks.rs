//! 2D body landmarks in a colour image and the trait of the networks that
//! find them.
//!
//! The lifting step ([`super::Lifter`]) needs only where each landmark is in
//! the image and how visible the network thinks it is; any 2D pose network
//! that reports the 33 MediaPipe BlazePose landmarks (Bazarevsky et al.,
//! 2020; the `mediapipe33` layout) can feed it by implementing
//! [`LandmarkDetector`]. skelact's BlazePose in candle is one; a test double
//! that projects known 3D joints is another.

use crate::Result;

/// The landmarks of one person in one colour image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Landmarks2d {
    /// Image pixel coordinates `[column, row]` of each of the 33 MediaPipe
    /// landmarks (pixel centres at integers; may lie outside the image).
    pub pixels: Vec<[f32; 2]>,
    /// Per-landmark visibility in `[0, 1]` (MediaPipe's `visibility`: the
    /// probability that the landmark is in view and not occluded).
    pub visibility: Vec<f32>,
}

/// A network that finds people's 2D landmarks in an RGB image.
pub trait LandmarkDetector: Send {
    /// The people in `rgb` (`height x width x 3` bytes, row-major, R, G, B),
    /// one [`Landmarks2d`] of 33 landmarks each, pixel coordinates in this
    /// image.
    fn detect(&mut self, rgb: &[u8], width: usize, height: usize) -> Result<Vec<Landmarks2d>>;

    /// A short description for logs.
    fn describe(&self) -> String {
        "landmark detector".to_string()
    }
}
