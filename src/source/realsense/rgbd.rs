//! One aligned colour + depth frame copied out of the SDK.

use crate::lift::{DepthImage, Intrinsics};
use crate::Result;

/// Colour and depth of one instant, depth aligned to the colour image (same
/// size, same pixel grid, the colour stream's intrinsics). Buffers are
/// reused from frame to frame.
#[derive(Debug, Clone, Default)]
pub struct RgbdFrame {
    /// `height x width x 3` bytes, R, G, B.
    pub rgb: Vec<u8>,
    /// `height x width` depth values in units of `depth_scale_m`, 0 = none.
    pub depth: Vec<u16>,
    /// Image width, pixels.
    pub width: usize,
    /// Image height, pixels.
    pub height: usize,
    /// Intrinsics of the colour stream, valid for both images.
    pub intrinsics: Option<Intrinsics>,
    /// Metres per depth unit.
    pub depth_scale_m: f32,
    /// Colour frame timestamp, milliseconds, in `timestamp_domain`.
    pub color_timestamp_ms: f64,
    /// Depth frame timestamp, milliseconds, in `timestamp_domain`.
    pub depth_timestamp_ms: f64,
    /// The SDK's name for the colour timestamp's clock (`Hardware Clock`,
    /// `System Time`, `Global Time`).
    pub timestamp_domain: String,
    /// The colour stream's frame counter.
    pub color_frame_number: u64,
    /// The depth stream's frame counter.
    pub depth_frame_number: u64,
}

impl RgbdFrame {
    /// A view of the depth image for [`crate::lift::DepthLookup`].
    pub fn depth_image(&self) -> Result<DepthImage<'_>> {
        DepthImage::new(&self.depth, self.width, self.height, self.depth_scale_m)
    }
}
