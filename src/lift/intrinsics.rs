//! Pinhole camera intrinsics with librealsense's distortion models, and the
//! projection of 3D points to pixels and back.
//!
//! The formulas follow librealsense's `rs2_project_point_to_pixel` and
//! `rs2_deproject_pixel_to_point` (src/rs.cpp, `rsutil.h` before 2.50), so
//! that a point lifted here equals the SDK's to float rounding
//! (`tests/realsense.rs` compares them on the SDK itself). Coordinates are
//! librealsense's: pixel `[0, 0]` is the centre of the top-left pixel; points
//! are metres with x right, y down, z forward.
//!
//! The deprojection of each model, as librealsense defines it:
//!
//! - [`Distortion::None`], [`Distortion::ModifiedBrownConrady`]: pinhole (the
//!   SDK asserts on modified Brown-Conrady, a forward-distorted image, and
//!   uses the pinhole formula in release builds; so does this).
//! - [`Distortion::InverseBrownConrady`] and [`Distortion::BrownConrady`]:
//!   ten fixed-point iterations inverting the distortion that
//!   [`Intrinsics::project`] applies.
//! - [`Distortion::KannalaBrandt4`]: up to four Newton steps on
//!   `theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8) = r_d`.
//! - [`Distortion::FTheta`]: `r = tan(w r_d) / atan(2 tan(w / 2))`, which is
//!   librealsense's formula but not the exact inverse of its projection
//!   `r_d = atan(2 r tan(w / 2)) / w` (the exact inverse has `2 tan(w / 2)`
//!   in the denominator); kept for parity with the SDK.

use crate::{Error, Result};

/// How pixel coordinates map to normalized image coordinates; the values
/// and their order are librealsense's `rs2_distortion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distortion {
    /// Rectilinear images, no distortion compensation.
    None,
    /// Brown-Conrady, tangential distortion applied to radially distorted
    /// points (a forward-distorted image: project only).
    ModifiedBrownConrady,
    /// Brown-Conrady that undistorts the image instead of distorting it.
    InverseBrownConrady,
    /// F-theta fisheye; `coeffs[0]` is the field-of-view parameter `w`.
    FTheta,
    /// Unmodified Brown-Conrady (OpenCV's model: k1, k2, p1, p2, k3).
    BrownConrady,
    /// Kannala-Brandt fisheye with four coefficients (OpenCV's fisheye).
    KannalaBrandt4,
}

impl Distortion {
    /// The model for librealsense's `rs2_distortion` value.
    pub fn from_rs2(value: u32) -> Result<Self> {
        Ok(match value {
            0 => Self::None,
            1 => Self::ModifiedBrownConrady,
            2 => Self::InverseBrownConrady,
            3 => Self::FTheta,
            4 => Self::BrownConrady,
            5 => Self::KannalaBrandt4,
            v => {
                return Err(Error::Unknown {
                    kind: "rs2_distortion",
                    name: v.to_string(),
                })
            }
        })
    }

    /// librealsense's `rs2_distortion` value.
    pub fn to_rs2(self) -> u32 {
        self as u32
    }

    /// The SDK's name for the model (`rs2_distortion_to_string`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::ModifiedBrownConrady => "Modified Brown Conrady",
            Self::InverseBrownConrady => "Inverse Brown Conrady",
            Self::FTheta => "Ftheta",
            Self::BrownConrady => "Brown Conrady",
            Self::KannalaBrandt4 => "Kannala Brandt4",
        }
    }
}

/// The intrinsics of one image stream (librealsense's `rs2_intrinsics`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intrinsics {
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Principal point, pixels from the left edge.
    pub ppx: f32,
    /// Principal point, pixels from the top edge.
    pub ppy: f32,
    /// Focal length in multiples of the pixel width.
    pub fx: f32,
    /// Focal length in multiples of the pixel height.
    pub fy: f32,
    /// Distortion model.
    pub model: Distortion,
    /// Distortion coefficients, meaning set by `model` (Brown-Conrady:
    /// k1, k2, p1, p2, k3; Kannala-Brandt: k1..k4, 0; F-theta: w, 0..).
    pub coeffs: [f32; 5],
}

impl Intrinsics {
    /// Pinhole intrinsics without distortion.
    pub fn pinhole(width: usize, height: usize, fx: f32, fy: f32, ppx: f32, ppy: f32) -> Self {
        Self {
            width,
            height,
            ppx,
            ppy,
            fx,
            fy,
            model: Distortion::None,
            coeffs: [0.0; 5],
        }
    }

    /// Checks that the values can be used: a non-empty image, finite
    /// parameters and positive focal lengths.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::config(
                "intrinsics",
                format!("empty image {}x{}", self.width, self.height),
            ));
        }
        let finite = [self.ppx, self.ppy, self.fx, self.fy]
            .iter()
            .chain(&self.coeffs)
            .all(|v| v.is_finite());
        if !finite || self.fx <= 0.0 || self.fy <= 0.0 {
            return Err(Error::config(
                "intrinsics",
                format!(
                    "focal lengths must be positive and all values finite (fx {}, fy {}, ppx {}, ppy {}, coeffs {:?})",
                    self.fx, self.fy, self.ppx, self.ppy, self.coeffs
                ),
            ));
        }
        Ok(())
    }

    /// The pixel where the camera sees `point` (metres, x right, y down,
    /// z forward); non-finite for `point[2] == 0`.
    pub fn project(&self, point: [f32; 3]) -> [f32; 2] {
        let c = &self.coeffs;
        let mut x = point[0] / point[2];
        let mut y = point[1] / point[2];
        match self.model {
            Distortion::ModifiedBrownConrady | Distortion::InverseBrownConrady => {
                let r2 = x * x + y * y;
                let f = 1.0 + c[0] * r2 + c[1] * r2 * r2 + c[4] * r2 * r2 * r2;
                x *= f;
                y *= f;
                let dx = x + 2.0 * c[2] * x * y + c[3] * (r2 + 2.0 * x * x);
                let dy = y + 2.0 * c[3] * x * y + c[2] * (r2 + 2.0 * y * y);
                x = dx;
                y = dy;
            }
            Distortion::BrownConrady => {
                let r2 = x * x + y * y;
                let f = 1.0 + c[0] * r2 + c[1] * r2 * r2 + c[4] * r2 * r2 * r2;
                let dx = x * f + 2.0 * c[2] * x * y + c[3] * (r2 + 2.0 * x * x);
                let dy = y * f + 2.0 * c[3] * x * y + c[2] * (r2 + 2.0 * y * y);
                x = dx;
                y = dy;
            }
            Distortion::FTheta => {
                let r = (x * x + y * y).sqrt().max(f32::EPSILON);
                let rd = (1.0 / c[0] * (2.0 * r * (c[0] / 2.0).tan()).atan()) / r;
                x *= rd;
                y *= rd;
            }
            Distortion::KannalaBrandt4 => {
                let r = (x * x + y * y).sqrt().max(f32::EPSILON);
                let theta = r.atan();
                let t2 = theta * theta;
                let series = 1.0 + t2 * (c[0] + t2 * (c[1] + t2 * (c[2] + t2 * c[3])));
                let rd = theta * series;
                x *= rd / r;
                y *= rd / r;
            }
            Distortion::None => {}
        }
        [x * self.fx + self.ppx, y * self.fy + self.ppy]
    }

    /// The 3D point (metres, x right, y down, z forward) seen at `pixel`
    /// at depth `depth_m` along the optical axis.
    pub fn deproject(&self, pixel: [f32; 2], depth_m: f32) -> [f32; 3] {
        let c = &self.coeffs;
        let mut x = (pixel[0] - self.ppx) / self.fx;
        let mut y = (pixel[1] - self.ppy) / self.fy;
        let (xo, yo) = (x, y);
        match self.model {
            Distortion::InverseBrownConrady => {
                for _ in 0..10 {
                    let r2 = x * x + y * y;
                    let icdist = 1.0 / (1.0 + ((c[4] * r2 + c[1]) * r2 + c[0]) * r2);
                    let xq = x / icdist;
                    let yq = y / icdist;
                    let delta_x = 2.0 * c[2] * xq * yq + c[3] * (r2 + 2.0 * xq * xq);
                    let delta_y = 2.0 * c[3] * xq * yq + c[2] * (r2 + 2.0 * yq * yq);
                    x = (xo - delta_x) * icdist;
                    y = (yo - delta_y) * icdist;
                }
            }
            Distortion::BrownConrady => {
                for _ in 0..10 {
                    let r2 = x * x + y * y;
                    let icdist = 1.0 / (1.0 + ((c[4] * r2 + c[1]) * r2 + c[0]) * r2);
                    let delta_x = 2.0 * c[2] * x * y + c[3] * (r2 + 2.0 * x * x);
                    let delta_y = 2.0 * c[3] * x * y + c[2] * (r2 + 2.0 * y * y);
                    x = (xo - delta_x) * icdist;
                    y = (yo - delta_y) * icdist;
                }
            }
            Distortion::KannalaBrandt4 => {
                let rd = (x * x + y * y).sqrt().max(f32::EPSILON);
                let mut theta = rd;
                let mut t2 = rd * rd;
                for _ in 0..4 {
                    let f =
                        theta * (1.0 + t2 * (c[0] + t2 * (c[1] + t2 * (c[2] + t2 * c[3])))) - rd;
                    if f.abs() < f32::EPSILON {
                        break;
                    }
                    let df = 1.0
                        + t2 * (3.0 * c[0]
                            + t2 * (5.0 * c[1] + t2 * (7.0 * c[2] + 9.0 * t2 * c[3])));
                    theta -= f / df;
                    t2 = theta * theta;
                }
                let r = theta.tan();
                x *= r / rd;
                y *= r / rd;
            }
            Distortion::FTheta => {
                let rd = (x * x + y * y).sqrt().max(f32::EPSILON);
                let r = (c[0] * rd).tan() / (2.0 * (c[0] / 2.0).tan()).atan();
                x *= r / rd;
                y *= r / rd;
            }
            Distortion::None | Distortion::ModifiedBrownConrady => {}
        }
        [depth_m * x, depth_m * y, depth_m]
    }
}
