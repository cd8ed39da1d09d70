//! Training augmentations on centered coordinates `(T, M, V, 3)`.
//!
//! Every random choice is drawn from an explicit RNG passed in by the
//! caller; nothing here touches global state. The transforms follow the
//! papers' feeders: the NW-UCLA view transform of CTR-GCN (`feeder_ucla.py`,
//! rotation about x and y by a random integer angle in [-60, 60] degrees and
//! a uniform scale in [0.5, 1.5], applied as `X · (Ry · Rx · S)`), SCD-Net's
//! shear and left/right flip (Wu et al., AAAI 2024), and the random temporal
//! crop-resize of CTR-GCN's NTU feeder. SCD-Net's spatial and temporal masks
//! ([`super::masking`]) act later, on the model-ready input
//! ([`AugmentConfig::apply_masks`]).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::masking;
use crate::skeleton::Layout;

/// A 3x3 matrix, row-major; points are row vectors: `p' = p · M`.
pub type Mat3 = [[f32; 3]; 3];

/// `a · b`.
pub fn matmul3(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// CTR-GCN's `Rx` for angle `a` (radians).
pub fn rot_x(a: f32) -> Mat3 {
    let (s, c) = a.sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]]
}

/// CTR-GCN's `Ry` for angle `a` (radians).
pub fn rot_y(a: f32) -> Mat3 {
    let (s, c) = a.sin_cos();
    [[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]]
}

/// Rotation about z by `a` radians.
pub fn rot_z(a: f32) -> Mat3 {
    let (s, c) = a.sin_cos();
    [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]
}

/// Applies `p' = p · m` to every point of `x` (zeros stay zeros).
pub fn apply_linear(x: &mut [f32], m: &Mat3) {
    for p in x.chunks_exact_mut(3) {
        let q = [p[0], p[1], p[2]];
        for (j, out) in p.iter_mut().enumerate() {
            *out = q[0] * m[0][j] + q[1] * m[1][j] + q[2] * m[2][j];
        }
    }
}

/// Mirrors left and right: negates x and swaps each joint with its mirror
/// ([`Layout::flip_map`]). `x: (T, M, V, 3)` with `V` the layout's joints.
pub fn flip(x: &mut [f32], layout: &Layout) {
    let map = layout.flip_map();
    let v = map.len();
    for person in x.chunks_exact_mut(v * 3) {
        let old = person.to_vec();
        for (j, &src) in map.iter().enumerate() {
            person[j * 3] = -old[src * 3];
            person[j * 3 + 1] = old[src * 3 + 1];
            person[j * 3 + 2] = old[src * 3 + 2];
        }
    }
}

/// Resamples `x: (T, M, V, 3)` to the frames `start .. start + len` of the
/// original, linearly interpolated to `frames` frames (CTR-GCN's
/// `valid_crop_resize`, bilinear along time).
pub fn crop_resize(x: &[f32], t: usize, start: usize, len: usize, frames: usize) -> Vec<f32> {
    let stride = x.len() / t.max(1);
    let len = len.clamp(1, t.saturating_sub(start).max(1));
    let mut out = vec![0.0f32; frames * stride];
    for k in 0..frames {
        // align_corners=False sampling position within the crop
        let pos =
            ((k as f32 + 0.5) * len as f32 / frames as f32 - 0.5).clamp(0.0, (len - 1) as f32);
        let i0 = pos.floor() as usize;
        let i1 = (i0 + 1).min(len - 1);
        let w = pos - i0 as f32;
        let (a, b) = ((start + i0) * stride, (start + i1) * stride);
        for j in 0..stride {
            out[k * stride + j] = x[a + j] * (1.0 - w) + x[b + j] * w;
        }
    }
    out
}

/// Which augmentations a training run uses, with their strengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Largest rotation about x and about y, in whole degrees (CTR-GCN
    /// NW-UCLA: 60); 0 disables.
    pub rotate_xy_deg: i32,
    /// Largest rotation about z, in degrees; 0 disables.
    pub rotate_z_deg: f32,
    /// Scale range `[lo, hi]` (CTR-GCN NW-UCLA: 0.5, 1.5); `[1, 1]`
    /// disables. Under min-max normalization a uniform scale cancels out.
    pub scale: [f32; 2],
    /// Largest off-diagonal shear coefficient (SCD-Net: 0.5); 0 disables.
    pub shear: f32,
    /// Probability of a left/right flip.
    pub flip_p: f32,
    /// Probability of each of shear and flip being applied at all (SCD-Net
    /// uses 0.5 per augmentation); rotation and scale always apply.
    pub apply_p: f32,
    /// Probability of SCD-Net's structure-guided spatial mask (SCD-Net:
    /// 0.5); 0 disables.
    #[serde(default)]
    pub spatial_mask_p: f32,
    /// Seed joints of the spatial mask (SCD-Net: 5).
    #[serde(default = "default_spatial_mask_seeds")]
    pub spatial_mask_seeds: usize,
    /// Joints the spatial mask zeroes (SCD-Net: 8 of 25).
    #[serde(default = "default_spatial_mask_joints")]
    pub spatial_mask_joints: usize,
    /// Probability of SCD-Net's tube temporal mask (SCD-Net: 0.5); 0
    /// disables.
    #[serde(default)]
    pub temporal_mask_p: f32,
    /// Frames per tube (SCD-Net: 4).
    #[serde(default = "default_temporal_mask_tube")]
    pub temporal_mask_tube: usize,
    /// Share of the tubes zeroed (SCD-Net: 6 of 16 = 0.375).
    #[serde(default = "default_temporal_mask_ratio")]
    pub temporal_mask_ratio: f32,
}

fn default_spatial_mask_seeds() -> usize {
    5
}

fn default_spatial_mask_joints() -> usize {
    8
}

fn default_temporal_mask_tube() -> usize {
    4
}

fn default_temporal_mask_ratio() -> f32 {
    0.375
}

impl Default for AugmentConfig {
    /// CTR-GCN's NW-UCLA recipe: rotation about x and y up to 60 degrees,
    /// scale 0.5–1.5, nothing else.
    fn default() -> Self {
        Self {
            rotate_xy_deg: 60,
            rotate_z_deg: 0.0,
            scale: [0.5, 1.5],
            shear: 0.0,
            flip_p: 0.0,
            apply_p: 0.5,
            ..Self::none()
        }
    }
}

impl AugmentConfig {
    /// No augmentation.
    pub fn none() -> Self {
        Self {
            rotate_xy_deg: 0,
            rotate_z_deg: 0.0,
            scale: [1.0, 1.0],
            shear: 0.0,
            flip_p: 0.0,
            apply_p: 0.0,
            spatial_mask_p: 0.0,
            spatial_mask_seeds: default_spatial_mask_seeds(),
            spatial_mask_joints: default_spatial_mask_joints(),
            temporal_mask_p: 0.0,
            temporal_mask_tube: default_temporal_mask_tube(),
            temporal_mask_ratio: default_temporal_mask_ratio(),
        }
    }

    /// SCD-Net's masks on model-ready coordinates `x: (T, M, V, 3)` with
    /// `V` the layout's joints: the structure-guided spatial mask with
    /// probability `spatial_mask_p`, then the tube temporal mask with
    /// probability `temporal_mask_p`. A disabled mask draws nothing from
    /// `rng`, so runs without masks see the same random stream as before.
    pub fn apply_masks<R: Rng + ?Sized>(
        &self,
        x: &mut [f32],
        t: usize,
        layout: &Layout,
        rng: &mut R,
    ) {
        let v = layout.num_joints();
        if self.spatial_mask_p > 0.0 && rng.random::<f32>() < self.spatial_mask_p {
            let joints = masking::structure_guided_joints(
                layout,
                self.spatial_mask_seeds,
                self.spatial_mask_joints,
                rng,
            );
            masking::zero_joints(x, v, &joints);
        }
        if self.temporal_mask_p > 0.0 && rng.random::<f32>() < self.temporal_mask_p {
            let frames =
                masking::tube_frames(t, self.temporal_mask_tube, self.temporal_mask_ratio, rng);
            masking::zero_frames(x, x.len() / t.max(1), &frames);
        }
    }

    /// Draws one random spatial transform and applies it to centered
    /// coordinates `x: (T, M, V, 3)`.
    pub fn apply<R: Rng + ?Sized>(&self, x: &mut [f32], layout: &Layout, rng: &mut R) {
        let mut m: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        if self.rotate_xy_deg > 0 {
            let r = self.rotate_xy_deg;
            let ax = (rng.random_range(-r..=r) as f32).to_radians();
            let ay = (rng.random_range(-r..=r) as f32).to_radians();
            // CTR-GCN: X · (Ry · (Rx · S))
            m = matmul3(&rot_y(ay), &rot_x(ax));
        }
        if self.rotate_z_deg > 0.0 {
            let az = rng
                .random_range(-self.rotate_z_deg..=self.rotate_z_deg)
                .to_radians();
            m = matmul3(&m, &rot_z(az));
        }
        if self.scale[1] > self.scale[0] {
            let s = rng.random_range(self.scale[0]..=self.scale[1]);
            for row in m.iter_mut() {
                for a in row.iter_mut() {
                    *a *= s;
                }
            }
        }
        if self.shear > 0.0 && rng.random::<f32>() < self.apply_p {
            let mut sh: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            for (i, row) in sh.iter_mut().enumerate() {
                for (j, a) in row.iter_mut().enumerate() {
                    if i != j {
                        *a = rng.random_range(-self.shear..=self.shear);
                    }
                }
            }
            m = matmul3(&m, &sh);
        }
        apply_linear(x, &m);
        if self.flip_p > 0.0 && rng.random::<f32>() < self.flip_p {
            flip(x, layout);
        }
    }
}

/// CTR-GCN's NW-UCLA training frame draw: `frames` positions sampled
/// without replacement from `len` frames repeated 100 times, sorted
/// (`random.sample(list(range(len)) * 100, frames)`).
pub fn random_sorted_indices<R: Rng + ?Sized>(
    len: usize,
    frames: usize,
    rng: &mut R,
) -> Vec<Option<usize>> {
    let pool = len * 100;
    let mut idx: Vec<usize> = rand::seq::index::sample(rng, pool, frames.min(pool))
        .into_iter()
        .map(|p| p % len)
        .collect();
    idx.sort_unstable();
    idx.into_iter().map(Some).collect()
}

/// A window of `frames` consecutive frames at a uniformly random start
/// (the live runtime's view of a clip); a clip shorter than the window
/// gives all its frames, then zero frames, as the runtime's short final
/// window does ([`crate::window::input::contract_indices`]).
pub fn random_window_indices<R: Rng + ?Sized>(
    len: usize,
    frames: usize,
    rng: &mut R,
) -> Vec<Option<usize>> {
    let start = if len > frames {
        rng.random_range(0..=len - frames)
    } else {
        0
    };
    (0..frames)
        .map(|i| (start + i < len).then_some(start + i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_windows_are_consecutive_and_inside_the_clip() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut starts = std::collections::HashSet::new();
        for _ in 0..200 {
            let w = random_window_indices(10, 4, &mut rng);
            let s = w[0].unwrap();
            assert_eq!(w, (s..s + 4).map(Some).collect::<Vec<_>>());
            assert!(s + 4 <= 10);
            starts.insert(s);
        }
        // every start 0..=6 drawn
        assert_eq!(starts.len(), 7);
        // a short clip: its frames, then zero frames
        let w = random_window_indices(2, 4, &mut rng);
        assert_eq!(w, vec![Some(0), Some(1), None, None]);
        assert!(random_window_indices(0, 3, &mut rng)
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn crop_resize_identity_when_same_length() {
        let x: Vec<f32> = (0..12).map(|i| i as f32).collect(); // T=4, 3 values
        assert_eq!(crop_resize(&x, 4, 0, 4, 4), x);
    }

    #[test]
    fn rotations_are_orthonormal() {
        let m = matmul3(&rot_y(0.3), &matmul3(&rot_x(-0.7), &rot_z(1.1)));
        let mt = [
            [m[0][0], m[1][0], m[2][0]],
            [m[0][1], m[1][1], m[2][1]],
            [m[0][2], m[1][2], m[2][2]],
        ];
        let i = matmul3(&m, &mt);
        for (r, row) in i.iter().enumerate() {
            for (c, a) in row.iter().enumerate() {
                let want = if r == c { 1.0 } else { 0.0 };
                assert!((a - want).abs() < 1e-5);
            }
        }
    }
}
