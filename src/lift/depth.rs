//! Robust depth at a 2D landmark: a depth image view and the lookup rule.
//!
//! A landmark from a colour image rarely falls on a clean depth pixel: depth
//! cameras leave holes (value 0) where stereo matching fails, and a joint on
//! the silhouette (a wrist, a shoulder seen from the side) has background
//! pixels right beside it. Reading the single pixel under the landmark would
//! put such a joint on the wall behind the person. The rule here:
//!
//! 1. take every pixel in a `(2r+1) x (2r+1)` window centred on the
//!    landmark's pixel (clipped to the image) and keep the valid ones: not a
//!    hole (0) and not farther than `max_depth_m`;
//! 2. sort them and split them into clusters wherever two neighbouring
//!    depths are more than `cluster_gap_m` apart (1D single linkage);
//! 3. the joint's depth is the median of the **nearest cluster that holds at
//!    least `min_cluster_fraction` of the valid pixels** (and at least
//!    `min_valid` pixels): the person stands in front of the background,
//!    so the nearest substantial surface is the body, while a few flying
//!    pixels in front of it (stereo noise at edges) are too small to count;
//! 4. the depth's validity is `min(1, 2 x valid / window)`: holes lower it,
//!    background does not (a joint on an edge has about half its window on
//!    the background and is still measured well); no cluster gives 0.
//!
//! Nothing here allocates once the caller's scratch buffer has grown to the
//! window size.

use crate::{Error, Result};

/// A borrowed depth image: `width x height` values, row-major, in units of
/// `depth_scale_m` metres (RealSense z16: 0.001 for most D400 cameras),
/// 0 for no data.
#[derive(Debug, Clone, Copy)]
pub struct DepthImage<'a> {
    data: &'a [u16],
    width: usize,
    height: usize,
    depth_scale_m: f32,
}

impl<'a> DepthImage<'a> {
    /// A view of `data`, refusing a length other than `width * height` or a
    /// scale that is not a positive finite number.
    pub fn new(data: &'a [u16], width: usize, height: usize, depth_scale_m: f32) -> Result<Self> {
        if width.checked_mul(height) != Some(data.len()) {
            return Err(Error::shape(
                "depth image",
                format!("{width} x {height} values"),
                &[data.len()],
            ));
        }
        if !(depth_scale_m.is_finite() && depth_scale_m > 0.0) {
            return Err(Error::config(
                "depth_scale_m",
                format!("must be a positive finite number, got {depth_scale_m}"),
            ));
        }
        Ok(Self {
            data,
            width,
            height,
            depth_scale_m,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Metres per depth unit.
    pub fn depth_scale_m(&self) -> f32 {
        self.depth_scale_m
    }

    /// The raw value at column `x`, row `y`, if inside the image.
    pub fn raw(&self, x: usize, y: usize) -> Option<u16> {
        (x < self.width && y < self.height).then(|| self.data[y * self.width + x])
    }
}

/// Parameters of the lookup rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthLookup {
    /// Half the window side, pixels: the window is `2r+1` pixels square.
    pub radius_px: usize,
    /// A depth jump larger than this separates two surfaces, metres.
    pub cluster_gap_m: f32,
    /// The smallest share of the valid pixels the chosen cluster must hold.
    pub min_cluster_fraction: f32,
    /// The fewest valid pixels (in the chosen cluster) for a measurement.
    pub min_valid: usize,
    /// Depths beyond this are treated as holes, metres.
    pub max_depth_m: f32,
}

impl Default for DepthLookup {
    /// A 7 x 7 window, surfaces 5 cm apart, clusters of at least 20 % of the
    /// valid pixels and 3 pixels, depths up to 8 m (beyond a D435's useful
    /// range for body tracking).
    fn default() -> Self {
        Self {
            radius_px: 3,
            cluster_gap_m: 0.05,
            min_cluster_fraction: 0.2,
            min_valid: 3,
            max_depth_m: 8.0,
        }
    }
}

/// The depth measured at one landmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthSample {
    /// Depth along the optical axis in metres; NaN when nothing was
    /// measured.
    pub depth_m: f32,
    /// How much to trust it, `[0, 1]` (0 exactly when `depth_m` is NaN).
    pub validity: f32,
}

impl DepthSample {
    /// No measurement.
    pub const NONE: Self = Self {
        depth_m: f32::NAN,
        validity: 0.0,
    };
}

impl DepthLookup {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let ok = self.cluster_gap_m.is_finite()
            && self.cluster_gap_m > 0.0
            && (0.0..=1.0).contains(&self.min_cluster_fraction)
            && self.min_valid >= 1
            && self.max_depth_m.is_finite()
            && self.max_depth_m > 0.0
            && self.radius_px <= 64;
        if ok {
            Ok(())
        } else {
            Err(Error::config(
                "depth lookup",
                format!("out of range: {self:?} (gap and max depth > 0, fraction in [0, 1], min_valid >= 1, radius <= 64)"),
            ))
        }
    }

    /// The depth at `pixel` (column, row; pixel centres at integers) by the
    /// module's rule. `scratch` is reused between calls. A pixel that is
    /// not finite or lies outside the image gives [`DepthSample::NONE`].
    pub fn sample(
        &self,
        depth: &DepthImage,
        pixel: [f32; 2],
        scratch: &mut Vec<f32>,
    ) -> DepthSample {
        let [px, py] = pixel;
        if !(px.is_finite() && py.is_finite()) {
            return DepthSample::NONE;
        }
        let (cx, cy) = (px.round(), py.round());
        if cx < 0.0 || cy < 0.0 || cx >= depth.width as f32 || cy >= depth.height as f32 {
            return DepthSample::NONE;
        }
        let (cx, cy) = (cx as usize, cy as usize);
        let r = self.radius_px;
        let (x0, x1) = (cx.saturating_sub(r), (cx + r).min(depth.width - 1));
        let (y0, y1) = (cy.saturating_sub(r), (cy + r).min(depth.height - 1));
        let window = (x1 - x0 + 1) * (y1 - y0 + 1);
        scratch.clear();
        for y in y0..=y1 {
            let row = &depth.data[y * depth.width + x0..=y * depth.width + x1];
            for &d in row {
                let m = f32::from(d) * depth.depth_scale_m;
                if d != 0 && m <= self.max_depth_m {
                    scratch.push(m);
                }
            }
        }
        let valid = scratch.len();
        if valid < self.min_valid {
            return DepthSample::NONE;
        }
        scratch.sort_unstable_by(f32::total_cmp);
        let need = self
            .min_valid
            .max((self.min_cluster_fraction * valid as f32).ceil() as usize);
        let mut start = 0;
        for i in 1..=valid {
            let split = i == valid || scratch[i] - scratch[i - 1] > self.cluster_gap_m;
            if split {
                if i - start >= need {
                    let cluster = &scratch[start..i];
                    let n = cluster.len();
                    let median = if n % 2 == 1 {
                        cluster[n / 2]
                    } else {
                        0.5 * (cluster[n / 2 - 1] + cluster[n / 2])
                    };
                    return DepthSample {
                        depth_m: median,
                        validity: (2.0 * valid as f32 / window as f32).min(1.0),
                    };
                }
                start = i;
            }
        }
        DepthSample::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    fn image(w: usize, h: usize, f: impl Fn(usize, usize) -> u16) -> Vec<u16> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect()
    }

    #[test]
    fn flat_surface_gives_its_depth_with_full_validity() {
        let data = image(20, 20, |_, _| 1500);
        let img = DepthImage::new(&data, 20, 20, 0.001).unwrap();
        let s = DepthLookup::default().sample(&img, [10.2, 9.7], &mut Vec::new());
        assert!(close(s.depth_m, 1.5), "{s:?}");
        assert_eq!(s.validity, 1.0);
    }

    #[test]
    fn edge_pixel_takes_the_foreground_not_the_wall() {
        // Body (1.2 m) on the left half, wall (3 m) on the right; the
        // landmark sits one pixel into the wall.
        let data = image(20, 20, |x, _| if x < 10 { 1200 } else { 3000 });
        let img = DepthImage::new(&data, 20, 20, 0.001).unwrap();
        let s = DepthLookup::default().sample(&img, [10.0, 10.0], &mut Vec::new());
        assert!(close(s.depth_m, 1.2), "{s:?}");
        assert_eq!(s.validity, 1.0);
    }

    #[test]
    fn a_few_flying_pixels_do_not_win() {
        // Two isolated near pixels (0.5 m) in a 1.4 m surface.
        let data = image(20, 20, |x, y| {
            if (x, y) == (9, 9) || (x, y) == (11, 11) {
                500
            } else {
                1400
            }
        });
        let img = DepthImage::new(&data, 20, 20, 0.001).unwrap();
        let s = DepthLookup::default().sample(&img, [10.0, 10.0], &mut Vec::new());
        assert!(close(s.depth_m, 1.4), "{s:?}");
    }

    #[test]
    fn holes_lower_validity_and_all_holes_give_none() {
        // Three quarters of the image are holes: 9 of the 49 window pixels
        // (even rows and columns 8, 10, 12) are measured.
        let data = image(
            20,
            20,
            |x, y| if x % 2 == 0 && y % 2 == 0 { 2000 } else { 0 },
        );
        let img = DepthImage::new(&data, 20, 20, 0.001).unwrap();
        let s = DepthLookup::default().sample(&img, [10.0, 10.0], &mut Vec::new());
        assert!(close(s.depth_m, 2.0), "{s:?}");
        assert!((s.validity - 2.0 * 9.0 / 49.0).abs() < 1e-6, "{s:?}");
        let zeros = vec![0u16; 400];
        let img = DepthImage::new(&zeros, 20, 20, 0.001).unwrap();
        let s = DepthLookup::default().sample(&img, [10.0, 10.0], &mut Vec::new());
        assert!(s.depth_m.is_nan() && s.validity == 0.0);
    }

    #[test]
    fn outside_and_non_finite_pixels_give_none() {
        let data = image(8, 6, |_, _| 1000);
        let img = DepthImage::new(&data, 8, 6, 0.001).unwrap();
        let l = DepthLookup::default();
        for p in [
            [-0.6, 2.0],
            [8.0, 2.0],
            [2.0, 5.6],
            [f32::NAN, 1.0],
            [1.0, f32::INFINITY],
        ] {
            assert_eq!(l.sample(&img, p, &mut Vec::new()).validity, 0.0, "{p:?}");
        }
        // The last pixel is inside.
        assert!(close(
            l.sample(&img, [7.4, 5.4], &mut Vec::new()).depth_m,
            1.0
        ));
    }

    #[test]
    fn bad_views_are_refused() {
        assert!(DepthImage::new(&[0; 5], 2, 3, 0.001).is_err());
        assert!(DepthImage::new(&[0; 6], 2, 3, 0.0).is_err());
        assert!(DepthImage::new(&[0; 6], 2, 3, f32::NAN).is_err());
        assert!(DepthImage::new(&[], usize::MAX, 2, 0.001).is_err());
    }
}
