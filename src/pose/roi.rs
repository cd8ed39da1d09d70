//! Regions of interest and the image crops the two networks see.
//!
//! Follows MediaPipe's CPU path: `AlignmentPointsRectsCalculator` (a square
//! centred on one keypoint, side twice the distance to a second, rotated so
//! the second points up), `RectTransformationCalculator` (square on the long
//! side in pixels, then scaled), and `ImageToTensorCalculator`'s OpenCV
//! converter (the rotated rectangle's corners map to the tensor's corners,
//! OpenCV's fixed-point bilinear `warpPerspective` on the 8-bit image, then
//! a linear map to the float range). The detector's input
//! is the whole image letterboxed into a square with zero borders; the
//! landmark model's is the ROI with replicated borders.

/// A rotated rectangle in image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    /// Centre x, pixels.
    pub cx: f32,
    /// Centre y, pixels.
    pub cy: f32,
    /// Width, pixels.
    pub width: f32,
    /// Height, pixels.
    pub height: f32,
    /// Rotation, radians (positive turns the x axis towards y, i.e.
    /// clockwise on screen).
    pub rotation: f32,
}

/// What a warp does outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// Zeros (before the range map), as OpenCV's `BORDER_CONSTANT`.
    Zero,
    /// The nearest edge pixel, as OpenCV's `BORDER_REPLICATE`.
    Replicate,
}

/// `angle` wrapped into [-pi, pi).
pub fn normalize_radians(angle: f32) -> f32 {
    use std::f32::consts::PI;
    angle - 2.0 * PI * ((angle + PI) / (2.0 * PI)).floor()
}

impl Roi {
    /// The whole image, as the detector sees it before letterboxing.
    pub fn full_image(width: usize, height: usize) -> Self {
        Roi {
            cx: width as f32 / 2.0,
            cy: height as f32 / 2.0,
            width: width as f32,
            height: height as f32,
            rotation: 0.0,
        }
    }

    /// MediaPipe's alignment-points rectangle: centred on `center`, side
    /// twice its distance to `scale_point`, rotated so that `scale_point`
    /// is straight above the centre; then squared on its long side and
    /// scaled by `scale` (`RectTransformationCalculator`, `square_long`).
    /// Points are in pixels.
    pub fn from_alignment(center: [f32; 2], scale_point: [f32; 2], scale: f32) -> Self {
        let (dx, dy) = (scale_point[0] - center[0], scale_point[1] - center[1]);
        let side = 2.0 * (dx * dx + dy * dy).sqrt();
        let rotation = normalize_radians(std::f32::consts::FRAC_PI_2 - (-dy).atan2(dx));
        Roi {
            cx: center[0],
            cy: center[1],
            width: side * scale,
            height: side * scale,
            rotation,
        }
    }

    /// Maps a point of the ROI's unit square (0..1 on each side, as the
    /// landmark model reports it) to image pixels.
    pub fn project(&self, u: f32, v: f32) -> [f32; 2] {
        let (x, y) = (u - 0.5, v - 0.5);
        let (s, c) = self.rotation.sin_cos();
        [
            self.cx + (c * x - s * y) * self.width,
            self.cy + (s * x + c * y) * self.height,
        ]
    }

    /// The square that letterboxes this (unrotated) ROI and the padding it
    /// adds on each side, as fractions of the square: (horizontal, vertical).
    pub fn letterbox(&self) -> (Roi, [f32; 2]) {
        let side = self.width.max(self.height);
        let pad_x = (1.0 - self.width / side) / 2.0;
        let pad_y = (1.0 - self.height / side) / 2.0;
        (
            Roi {
                width: side,
                height: side,
                ..*self
            },
            [pad_x, pad_y],
        )
    }
}

/// What a network's input crop is: its side, its border, its value range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropSpec {
    /// Side of the square tensor, pixels.
    pub side: usize,
    /// What lies outside the image.
    pub border: Border,
    /// The values 0 and 255 map to.
    pub range: [f32; 2],
}

/// Warps the `roi` of an RGB8 image (`width` x `height`, interleaved) into
/// a `side` x `side` x 3 f32 buffer (HWC), mapping 0..255 to the range.
///
/// The arithmetic is OpenCV's `warpPerspective` + `convertTo` as MediaPipe
/// calls them: source positions in double precision rounded to 1/32 pixel,
/// integer bilinear weights that sum to 1024, the 8-bit result rounded, then
/// `p * scale + offset` in f32. The landmark network is sensitive to its
/// input at the level of one grey level (MediaPipe's low-confidence
/// landmarks move by pixels), so this matters for parity.
pub fn warp(rgb: &[u8], width: usize, height: usize, roi: &Roi, spec: &CropSpec) -> Vec<f32> {
    // rgb: (H, W, 3) -> (out, out, 3)
    let (out, border, [lo, hi]) = (spec.side, spec.border, spec.range);
    let mut dst = vec![0f32; out * out * 3];
    if width == 0 || height == 0 || rgb.len() < width * height * 3 {
        return dst;
    }
    let (s, c) = (roi.rotation as f64).sin_cos();
    let (rw, rh) = (roi.width as f64, roi.height as f64);
    let step_x = rw / out as f64;
    let step_y = rh / out as f64;
    let scale = (hi - lo) / 255.0;
    let (w, h) = (width as i64, height as i64);
    for v in 0..out {
        for u in 0..out {
            // The rectangle's corner (-w/2, -h/2) maps to tensor pixel (0, 0).
            let a = -rw / 2.0 + u as f64 * step_x;
            let b = -rh / 2.0 + v as f64 * step_y;
            let x = roi.cx as f64 + c * a - s * b;
            let y = roi.cy as f64 + s * a + c * b;
            // 1/32-pixel positions (cvRound: ties to even).
            let xq = (x * 32.0)
                .clamp(i32::MIN as f64, i32::MAX as f64)
                .round_ties_even() as i64;
            let yq = (y * 32.0)
                .clamp(i32::MIN as f64, i32::MAX as f64)
                .round_ties_even() as i64;
            let (x0, y0, ax, ay) = (xq >> 5, yq >> 5, xq & 31, yq & 31);
            let weights = [
                (32 - ay) * (32 - ax),
                (32 - ay) * ax,
                ay * (32 - ax),
                ay * ax,
            ];
            let corners = [(x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)];
            for ch in 0..3 {
                let mut sum = 0i64;
                for (&wt, &(xx, yy)) in weights.iter().zip(&corners) {
                    let inside = xx >= 0 && yy >= 0 && xx < w && yy < h;
                    let p = if inside || border == Border::Replicate {
                        let (xx, yy) = (xx.clamp(0, w - 1) as usize, yy.clamp(0, h - 1) as usize);
                        rgb[(yy * width + xx) * 3 + ch] as i64
                    } else {
                        0
                    };
                    sum += wt * p;
                }
                // (sum * 32 + 2^14) >> 15: the 15-bit fixed-point rounding of OpenCV's remap.
                let q = ((sum + 512) >> 10).clamp(0, 255) as f32;
                dst[(v * out + u) * 3 + ch] = q.mul_add(scale, lo);
            }
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_points_up() {
        // Scale point straight above the centre: no rotation.
        let r = Roi::from_alignment([50.0, 50.0], [50.0, 30.0], 1.25);
        assert!(r.rotation.abs() < 1e-6);
        assert!((r.width - 50.0).abs() < 1e-4);
        // Scale point to the right: a quarter turn.
        let r = Roi::from_alignment([50.0, 50.0], [70.0, 50.0], 1.0);
        assert!((r.rotation - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
        // The top-centre of the unit square lands on the scale point's side.
        let p = r.project(0.5, 0.0);
        assert!(
            (p[0] - 70.0).abs() < 1e-4 && (p[1] - 50.0).abs() < 1e-4,
            "{p:?}"
        );
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let (w, h) = (4, 4);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 5) as u8).collect();
        let roi = Roi::full_image(w, h);
        let spec = CropSpec {
            side: 4,
            border: Border::Zero,
            range: [0.0, 255.0],
        };
        let out = warp(&rgb, w, h, &roi, &spec);
        let back: Vec<u8> = out.iter().map(|&v| v as u8).collect();
        assert_eq!(back, rgb);
    }
}
