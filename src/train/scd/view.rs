//! One SCD-Net training view of a clip: a random temporal crop of 10-100 %
//! of the frames resized to the window (nearest frame; the reference
//! interpolates bilinearly), then rotation (up to 0.3 rad about each axis),
//! left/right flip and shear (coefficients up to 0.5) each with
//! probability 0.5 on the centered coordinates, then min-max scaling
//! ([`crate::window::prepare`], the serving path), then the
//! structure-guided spatial mask (5 seeds, 8 joints) and the tube temporal
//! mask (tubes of 4 frames, 37.5 % of them) each with probability 0.5.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::model::ModelCard;
use crate::skeleton::Layout;
use crate::source::Clip;
use crate::train::augment::{self, AugmentConfig, Mat3};
use crate::window::{self, PoseSeq, PrepareOptions, Prepared};
use crate::Result;

/// Probability of each augmentation (SCD-Net: 0.5).
pub const P: f32 = 0.5;

/// The frames of a random crop of 10-100 % of `len` frames, resized to
/// `frames` by taking the nearest frame.
pub fn crop_indices<R: Rng + ?Sized>(len: usize, frames: usize, rng: &mut R) -> Vec<Option<usize>> {
    let len = len.max(1);
    let ratio: f32 = rng.random_range(0.1..=1.0);
    let crop = ((len as f32 * ratio).round() as usize).clamp(1, len);
    let start = rng.random_range(0..=len - crop);
    (0..frames)
        .map(|i| Some(start + (i * crop) / frames.max(1)))
        .collect()
}

fn spatial(x: &mut [f32], layout: &Layout, rng: &mut ChaCha8Rng) {
    let mut m: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    if rng.random::<f32>() < P {
        let mut a = || rng.random_range(-0.3f32..=0.3);
        let (ax, ay, az) = (a(), a(), a());
        m = augment::matmul3(
            &augment::rot_z(az),
            &augment::matmul3(&augment::rot_y(ay), &augment::rot_x(ax)),
        );
    }
    if rng.random::<f32>() < P {
        let mut sh: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for (i, row) in sh.iter_mut().enumerate() {
            for (j, a) in row.iter_mut().enumerate() {
                if i != j {
                    *a = rng.random_range(-0.5..=0.5);
                }
            }
        }
        m = augment::matmul3(&m, &sh);
    }
    augment::apply_linear(x, &m);
    if rng.random::<f32>() < P {
        augment::flip(x, layout);
    }
}

/// One augmented view of `clip` for `card`'s window.
pub fn scd_view(
    clip: &Clip,
    card: &ModelCard,
    layout: &Layout,
    rng: &mut ChaCha8Rng,
) -> Result<Prepared> {
    let idx = crop_indices(clip.num_frames, card.temporal.frames, rng);
    let mut p = {
        let mut tf = |x: &mut [f32], _t: usize, _m: usize, _v: usize| spatial(x, layout, rng);
        window::prepare(
            PoseSeq::from_clip(clip)?,
            card,
            PrepareOptions {
                frames: Some(&idx),
                transform: Some(&mut tf),
            },
        )?
    };
    let masks = AugmentConfig {
        spatial_mask_p: P,
        temporal_mask_p: P,
        ..AugmentConfig::none()
    };
    masks.apply_masks(&mut p.joints, p.frames, layout, rng);
    Ok(p)
}
