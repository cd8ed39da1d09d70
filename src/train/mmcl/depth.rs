//! The depth side of MMCL's training pairs: each UTD-MHAD training clip's
//! depth video, downsized and normalized once at start-up, and the choice
//! of depth frames that go with one skeleton training window.
//!
//! UTD-MHAD records skeletons and depth with the same Kinect v1 at 30 fps,
//! frame for frame (`d_skel` and `d_depth` have the same T). A skeleton
//! window is a sorted list of source frame indices (CTR-GCN's random sorted
//! draw in [`crate::train::trainer::train_sample_indexed`]); its depth
//! partner is `K` of those same source frames, spread evenly over the
//! window ([`pair_frames`]), stacked as the `K` channels of one image
//! (`(K, H, W)`), so the depth encoder sees the same time span as the
//! skeleton model and its motion. No random numbers are drawn for the
//! depth side: the skeleton windows of an MMCL run are exactly those of a
//! supervised run with the same seed.
//!
//! Preprocessing (the same for every frame):
//! - **downsizing** 240 x 320 → [`DEPTH_HEIGHT`] x [`DEPTH_WIDTH`] (48 x 64,
//!   the same 3:4 aspect) by the mean of the valid (non-zero) depths of each
//!   5 x 5 block; a block without a reading stays 0;
//! - **normalization** of a depth `d` in millimetres to
//!   `clamp((FAR - d) / (FAR - NEAR), 0, 1)` with [`NEAR_MM`] = 500 and
//!   [`FAR_MM`] = 4500 (the Kinect v1's working range): near is bright, the
//!   back wall dim, "no reading" is 0;
//! - **storage** as `u8` (steps of 1/255, about 16 mm), 3 kB per frame:
//!   the 431 training clips of the cross-subject split take about 85 MB.
//!
//! A depth video whose frame count differs from its skeleton's is paired
//! proportionally (`t_depth = t_skel * T_depth / T_skel`) and counted in
//! [`DepthStore::mismatched`].

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::source::utd::{self, DepthVideo, Modality, Trial};
use crate::source::Clip;
use crate::{Error, Result};

/// Rows of a stored depth frame.
pub const DEPTH_HEIGHT: usize = 48;
/// Columns of a stored depth frame.
pub const DEPTH_WIDTH: usize = 64;
/// Depth mapped to 1 (nearest), millimetres.
pub const NEAR_MM: f32 = 500.0;
/// Depth mapped to 0 (farthest), millimetres.
pub const FAR_MM: f32 = 4500.0;

/// One clip's depth video after [`downsize`] and [`normalize`]: `frames`
/// frames of `DEPTH_HEIGHT x DEPTH_WIDTH` values, `u8` (0..=255 for 0..=1).
#[derive(Debug, Clone, PartialEq)]
pub struct DepthFrames {
    /// Number of frames (the depth video's T).
    pub frames: usize,
    /// `(T, H, W)` row-major.
    pub pixels: Vec<u8>,
}

impl DepthFrames {
    /// Frame `t` as `H * W` values in `[0, 1]`, or `None` past the end.
    pub fn frame_f32(&self, t: usize) -> Option<Vec<f32>> {
        let n = DEPTH_HEIGHT * DEPTH_WIDTH;
        let px = self
            .pixels
            .get(t.checked_mul(n)?..(t + 1).checked_mul(n)?)?;
        Some(px.iter().map(|&p| p as f32 / 255.0).collect())
    }
}

/// Mean of the non-zero depths of each block: `(H_src, W_src)` millimetres
/// → `(DEPTH_HEIGHT, DEPTH_WIDTH)` millimetres (0 where a block has no
/// reading). Block `(y, x)` covers source rows `y*H_src/H .. (y+1)*H_src/H`
/// and the same for columns.
pub fn downsize(frame_mm: &[u16], h_src: usize, w_src: usize) -> Result<Vec<f32>> {
    // (H_src, W_src) -> (H, W)
    if h_src < DEPTH_HEIGHT || w_src < DEPTH_WIDTH || frame_mm.len() != h_src * w_src {
        return Err(Error::shape(
            "depth frame",
            format!("at least {DEPTH_HEIGHT} x {DEPTH_WIDTH} pixels, H * W values"),
            &[h_src, w_src, frame_mm.len()],
        ));
    }
    let mut out = vec![0.0f32; DEPTH_HEIGHT * DEPTH_WIDTH];
    for y in 0..DEPTH_HEIGHT {
        let (r0, r1) = (y * h_src / DEPTH_HEIGHT, (y + 1) * h_src / DEPTH_HEIGHT);
        for x in 0..DEPTH_WIDTH {
            let (c0, c1) = (x * w_src / DEPTH_WIDTH, (x + 1) * w_src / DEPTH_WIDTH);
            let (mut sum, mut n) = (0u64, 0u64);
            for r in r0..r1 {
                for &d in &frame_mm[r * w_src + c0..r * w_src + c1] {
                    if d > 0 {
                        sum += d as u64;
                        n += 1;
                    }
                }
            }
            if n > 0 {
                out[y * DEPTH_WIDTH + x] = sum as f32 / n as f32;
            }
        }
    }
    Ok(out)
}

/// A depth in millimetres to `[0, 1]`: `clamp((FAR - d) / (FAR - NEAR))`,
/// 0 for "no reading" (`d == 0`).
pub fn normalize(d_mm: f32) -> f32 {
    if d_mm <= 0.0 {
        return 0.0;
    }
    ((FAR_MM - d_mm) / (FAR_MM - NEAR_MM)).clamp(0.0, 1.0)
}

/// A whole depth video downsized, normalized and quantized to `u8`.
pub fn preprocess(video: &DepthVideo) -> Result<DepthFrames> {
    let mut pixels = Vec::with_capacity(video.frames * DEPTH_HEIGHT * DEPTH_WIDTH);
    for t in 0..video.frames {
        let frame = video.frame(t).ok_or_else(|| {
            Error::shape(
                "depth video",
                format!(
                    "{} frames of {} x {}",
                    video.frames, video.height, video.width
                ),
                &[video.depth_mm.len()],
            )
        })?;
        let small = downsize(frame, video.height, video.width)?;
        pixels.extend(
            small
                .iter()
                .map(|&d| (normalize(d) * 255.0).round().clamp(0.0, 255.0) as u8),
        );
    }
    Ok(DepthFrames {
        frames: video.frames,
        pixels,
    })
}

/// `k` of a window's source frames, spread evenly: the frame at position
/// `floor((i + 0.5) * L / k)` of the window's `L` present frames, for
/// `i = 0..k`. Padding entries (`None`) are skipped; a window with no
/// frame is an error.
pub fn pair_frames(window: &[Option<usize>], k: usize) -> Result<Vec<usize>> {
    let present: Vec<usize> = window.iter().flatten().copied().collect();
    if present.is_empty() || k == 0 {
        return Err(Error::config(
            "mmcl",
            format!(
                "cannot pair {k} depth frames with a window of {} frames",
                present.len()
            ),
        ));
    }
    let l = present.len();
    Ok((0..k)
        .map(|i| present[((2 * i + 1) * l) / (2 * k)])
        .collect())
}

/// The clip id shared by a trial's three files: `aA_sS_tT` (from a
/// skeleton clip's name `aA_sS_tT_skeleton`).
pub fn clip_id(clip: &Clip) -> Result<String> {
    let (t, _) = Trial::parse(&clip.name).ok_or_else(|| {
        Error::config(
            "mmcl",
            format!(
                "clip `{}` is not a UTD-MHAD trial (aA_sS_tT_skeleton)",
                clip.name
            ),
        )
    })?;
    Ok(trial_id(&t))
}

/// `aA_sS_tT` for a trial.
pub fn trial_id(t: &Trial) -> String {
    format!("a{}_s{}_t{}", t.action, t.subject, t.trial)
}

/// The preprocessed depth videos of a set of clips, by clip id.
#[derive(Debug, Default)]
pub struct DepthStore {
    videos: HashMap<String, DepthFrames>,
    /// Skeleton frame count of each clip (for proportional pairing).
    skeleton_frames: HashMap<String, usize>,
    /// Clips whose depth and skeleton frame counts differ.
    pub mismatched: usize,
}

impl DepthStore {
    /// Reads and preprocesses the depth video of every clip in `clips` from
    /// `utd_root/depth/` (in parallel). A missing or malformed file is an
    /// error naming it.
    pub fn load(utd_root: &Path, clips: &[Clip]) -> Result<Self> {
        let loaded = clips
            .par_iter()
            .map(|c| {
                let (trial, _) = Trial::parse(&c.name).ok_or_else(|| {
                    Error::config("mmcl", format!("clip `{}` is not a UTD-MHAD trial", c.name))
                })?;
                let video = utd::read_depth(&utd::path_of(utd_root, trial, Modality::Depth))?;
                Ok((trial_id(&trial), c.num_frames, preprocess(&video)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut store = DepthStore::default();
        for (id, t_skel, frames) in loaded {
            if frames.frames != t_skel {
                store.mismatched += 1;
            }
            store.skeleton_frames.insert(id.clone(), t_skel);
            store.videos.insert(id, frames);
        }
        Ok(store)
    }

    /// Number of clips held.
    pub fn len(&self) -> usize {
        self.videos.len()
    }

    /// Whether no clip is held.
    pub fn is_empty(&self) -> bool {
        self.videos.is_empty()
    }

    /// The preprocessed video of clip `id` (`aA_sS_tT`).
    pub fn video(&self, id: &str) -> Option<&DepthFrames> {
        self.videos.get(id)
    }

    /// The depth frame indices paired with skeleton frames `skel_frames` of
    /// clip `id` (the same indices unless the counts differ).
    pub fn depth_indices(&self, id: &str, skel_frames: &[usize]) -> Result<Vec<usize>> {
        let (video, t_skel) = match (self.videos.get(id), self.skeleton_frames.get(id)) {
            (Some(v), Some(&t)) => (v, t),
            _ => {
                return Err(Error::config(
                    "mmcl",
                    format!("no depth video loaded for clip `{id}`"),
                ))
            }
        };
        Ok(skel_frames
            .iter()
            .map(|&t| {
                if video.frames == t_skel {
                    t.min(video.frames - 1)
                } else {
                    (t * video.frames / t_skel.max(1)).min(video.frames - 1)
                }
            })
            .collect())
    }

    /// The depth input of a batch: for each `(clip id, window)`, the `k`
    /// paired frames stacked as channels, `(N, K, H, W)` f32 in `[0, 1]`.
    pub fn batch(
        &self,
        items: &[(&str, &[Option<usize>])],
        k: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let n_px = DEPTH_HEIGHT * DEPTH_WIDTH;
        let mut data = Vec::with_capacity(items.len() * k * n_px);
        for (id, window) in items {
            let skel = pair_frames(window, k)?;
            let idx = self.depth_indices(id, &skel)?;
            let video = &self.videos[*id];
            for t in idx {
                let px = &video.pixels[t * n_px..(t + 1) * n_px];
                data.extend(px.iter().map(|&p| p as f32 / 255.0));
            }
        }
        // (N, K, H, W)
        Ok(Tensor::from_vec(
            data,
            (items.len(), k, DEPTH_HEIGHT, DEPTH_WIDTH),
            device,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_spread_evenly_over_the_window() {
        let w: Vec<Option<usize>> = (10..20).map(Some).collect();
        assert_eq!(pair_frames(&w, 5).unwrap(), vec![11, 13, 15, 17, 19]);
        assert_eq!(pair_frames(&w, 1).unwrap(), vec![15]);
        let padded = [Some(3), None, Some(4)];
        assert_eq!(pair_frames(&padded, 2).unwrap(), vec![3, 4]);
        assert!(pair_frames(&[None, None], 2).is_err());
    }

    #[test]
    fn normalization_maps_the_range_and_keeps_no_reading_at_zero() {
        assert_eq!(normalize(0.0), 0.0);
        assert_eq!(normalize(NEAR_MM), 1.0);
        assert_eq!(normalize(FAR_MM), 0.0);
        assert_eq!(normalize(100.0), 1.0);
        assert!((normalize(2500.0) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn downsizing_averages_valid_pixels_only() {
        let (h, w) = (DEPTH_HEIGHT * 2, DEPTH_WIDTH * 2);
        let mut f = vec![0u16; h * w];
        // block (0, 0): 1000, 3000, 0, 0 -> 2000
        f[0] = 1000;
        f[1] = 3000;
        let out = downsize(&f, h, w).unwrap();
        assert_eq!(out[0], 2000.0);
        assert_eq!(out[1], 0.0);
        assert!(downsize(&f, 10, 10).is_err());
    }
}
