//! From poses to model input: the one path shared by training and serving.
//!
//! A model card fixes what its input holds (streams, persons, center joint),
//! how coordinates are normalized ([`Normalization`]) and how frames are
//! taken ([`Sampling`]). [`prepare`] applies that contract to a sequence of
//! poses and returns plain `(T, M, V, 3)` coordinates; [`to_input`] stacks a
//! batch of them into a tensor and computes the card's streams with
//! [`stream::compute`]. [`model_input`] does both for one sequence.
//!
//! The steps follow the CTR-GCN authors' feeders (Chen et al., ICCV 2021):
//!
//! 1. keep the card's number of persons (missing ones are zeros);
//! 2. center: subtract the center joint of the first valid frame of person 0
//!    from every joint of every present person (`feeder_ntu.py`,
//!    `feeder_ucla.py`);
//! 3. an optional in-place transform of the coordinates — training
//!    augmentations plug in here, so they act on centered metres, as the
//!    reference's `rand_view_transform` does;
//! 4. for [`Normalization::CenterFirstFrameMinMax`], min-max scale each axis
//!    to `[-1, 1]` over the whole sequence (`feeder_ucla.py`);
//! 5. frame selection: explicit indices (training draws them at random), or
//!    the card's policy — evenly spaced for [`Sampling::ClipResample`]
//!    (`np.linspace(0, T - 1, frames).astype(int)`), the newest frames for
//!    [`Sampling::Window`], the first frames for [`Sampling::CropFirst`] —
//!    with zeros where the sequence is too short.

use candle_core::{Device, Tensor};

use super::stream;
use crate::model::card::{Normalization, Sampling};
use crate::model::ModelCard;
use crate::skeleton::Layout;
use crate::source::Clip;
use crate::{Error, Result};

/// A borrowed sequence of poses: joint positions `(T, M, V, 3)` row-major
/// (frame, person, joint, xyz), metres; an absent person is all zeros.
#[derive(Debug, Clone, Copy)]
pub struct PoseSeq<'a> {
    /// The coordinates, `frames * persons * num_joints * 3` values.
    pub joints: &'a [f32],
    /// T.
    pub frames: usize,
    /// M.
    pub persons: usize,
    /// V.
    pub num_joints: usize,
}

impl<'a> PoseSeq<'a> {
    /// Checks that `joints` holds `T * M * V * 3` values.
    pub fn new(
        joints: &'a [f32],
        frames: usize,
        persons: usize,
        num_joints: usize,
    ) -> Result<Self> {
        let want = frames
            .checked_mul(persons)
            .and_then(|x| x.checked_mul(num_joints))
            .and_then(|x| x.checked_mul(3));
        if want != Some(joints.len()) || frames == 0 || persons == 0 || num_joints == 0 {
            return Err(Error::shape(
                "pose sequence",
                format!("(T={frames}, M={persons}, V={num_joints}, 3), all non-zero"),
                &[joints.len()],
            ));
        }
        Ok(Self {
            joints,
            frames,
            persons,
            num_joints,
        })
    }

    /// The poses of a dataset clip.
    pub fn from_clip(clip: &'a Clip) -> Result<Self> {
        Self::new(
            &clip.joints,
            clip.num_frames,
            clip.num_persons,
            clip.num_joints,
        )
    }
}

/// Coordinates after [`prepare`]: `(T, M, V, 3)` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The coordinates.
    pub joints: Vec<f32>,
    /// T (the card's frames).
    pub frames: usize,
    /// M (the card's persons).
    pub persons: usize,
    /// V.
    pub num_joints: usize,
}

/// `frames` indices spread evenly over `0..len`, as
/// `np.linspace(0, len - 1, frames).astype(int)` (truncation).
pub fn even_indices(len: usize, frames: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    if frames == 1 {
        return vec![0];
    }
    let last = (len - 1) as f64;
    (0..frames)
        .map(|i| ((i as f64 * last / (frames - 1) as f64) as usize).min(len - 1))
        .collect()
}

/// The frames the card's sampling policy takes from a sequence of `len`
/// frames, at evaluation time: `None` marks a zero frame.
pub fn contract_indices(len: usize, frames: usize, sampling: Sampling) -> Vec<Option<usize>> {
    match sampling {
        Sampling::ClipResample => even_indices(len, frames).into_iter().map(Some).collect(),
        Sampling::CropFirst => (0..frames).map(|i| (i < len).then_some(i)).collect(),
        Sampling::Window => {
            let start = len.saturating_sub(frames);
            (0..frames)
                .map(|i| (start + i < len).then_some(start + i))
                .collect()
        }
    }
}

/// The windows a live stream cuts from a sequence of `len` frames under
/// the `window` contract, as the tracker does: the first ends at frame
/// `frames - 1`, the next ones every `stride` frames while the sequence
/// lasts; a sequence no longer than a window gives one window (its
/// frames, then zero frames). Offline evaluation of a window-trained
/// model averages a clip over these.
pub fn stream_windows(len: usize, frames: usize, stride: usize) -> Vec<Vec<Option<usize>>> {
    if len <= frames {
        return vec![contract_indices(len, frames, Sampling::Window)];
    }
    (frames..=len)
        .step_by(stride.max(1))
        .map(|end| (end - frames..end).map(Some).collect())
        .collect()
}

/// Whether person `m` of frame `t` has any non-zero coordinate.
fn present(x: &[f32], t: usize, m: usize, persons: usize, v: usize) -> bool {
    let i = (t * persons + m) * v * 3;
    x[i..i + v * 3].iter().any(|&a| a != 0.0)
}

/// Applies normalization step 2 (centering) in place to `x: (T, M, V, 3)`.
fn center_first_frame(x: &mut [f32], t: usize, m: usize, v: usize, center: usize) {
    let Some(f0) = (0..t).find(|&f| present(x, f, 0, m, v)) else {
        return;
    };
    let i = (f0 * m * v + center) * 3;
    let c = [x[i], x[i + 1], x[i + 2]];
    for f in 0..t {
        for p in 0..m {
            if !present(x, f, p, m, v) {
                continue;
            }
            let base = (f * m + p) * v * 3;
            for j in x[base..base + v * 3].chunks_exact_mut(3) {
                j[0] -= c[0];
                j[1] -= c[1];
                j[2] -= c[2];
            }
        }
    }
}

/// Min-max scales each axis of the present persons of `x: (T, M, V, 3)` to
/// `[-1, 1]`; an axis without extent becomes 0.
fn min_max(x: &mut [f32], t: usize, m: usize, v: usize) {
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    let persons: Vec<(usize, usize)> = (0..t)
        .flat_map(|f| (0..m).map(move |p| (f, p)))
        .filter(|&(f, p)| present(x, f, p, m, v))
        .collect();
    for &(f, p) in &persons {
        let base = (f * m + p) * v * 3;
        for j in x[base..base + v * 3].chunks_exact(3) {
            for a in 0..3 {
                lo[a] = lo[a].min(j[a]);
                hi[a] = hi[a].max(j[a]);
            }
        }
    }
    for &(f, p) in &persons {
        let base = (f * m + p) * v * 3;
        for j in x[base..base + v * 3].chunks_exact_mut(3) {
            for a in 0..3 {
                let range = hi[a] - lo[a];
                j[a] = if range > 0.0 {
                    (j[a] - lo[a]) / range * 2.0 - 1.0
                } else {
                    0.0
                };
            }
        }
    }
}

/// The `(left, right)` joint pairs whose right-to-left lines give a body's
/// facing: shoulders and hips. Every layout names them; one that did not
/// could not use [`Normalization::CenterFacingMinMax`].
fn lateral_pairs(layout: &Layout) -> Result<[(usize, usize); 2]> {
    Ok([
        (
            layout.joint_index("left_shoulder")?,
            layout.joint_index("right_shoulder")?,
        ),
        (
            layout.joint_index("left_hip")?,
            layout.joint_index("right_hip")?,
        ),
    ])
}

/// The turn about y, in degrees for [`rotate_y`], that brings the summed
/// right-to-left vectors of `pairs` over the present frames of person 0 of
/// `x: (T, M, V, 3)` onto the −x axis (a person square to the camera);
/// `None` when that sum has no horizontal extent (no person, or joints
/// stacked on one vertical line) or is not finite, where no turn is
/// defined.
fn facing_angle(x: &[f32], t: usize, m: usize, v: usize, pairs: &[(usize, usize)]) -> Option<f32> {
    let (mut dx, mut dz) = (0.0f64, 0.0f64);
    for f in (0..t).filter(|&f| present(x, f, 0, m, v)) {
        let base = f * m * v * 3;
        for &(l, r) in pairs {
            dx += f64::from(x[base + l * 3] - x[base + r * 3]);
            dz += f64::from(x[base + l * 3 + 2] - x[base + r * 3 + 2]);
        }
    }
    let extent = dx.hypot(dz);
    if !extent.is_finite() || extent < 1e-9 {
        return None;
    }
    // rotate_y(θ) maps (x, z) = ρ(cos φ, sin φ) to ρ(cos(φ − θ), sin(φ − θ)),
    // so θ = φ − 180° sends (dx, dz) to (−ρ, 0).
    let phi = dz.atan2(dx).to_degrees();
    Some((phi - 180.0) as f32)
}

/// An in-place transform of `(T, M, V, 3)` coordinates, called with
/// `(coords, T, M, V)`.
pub type Transform<'a> = &'a mut dyn FnMut(&mut [f32], usize, usize, usize);

/// Options of [`prepare`] beyond the card.
#[derive(Default)]
pub struct PrepareOptions<'a> {
    /// Frames to take, in order (`None` = a zero frame); when absent, the
    /// card's sampling policy at evaluation time ([`contract_indices`]).
    pub frames: Option<&'a [Option<usize>]>,
    /// In-place transform of the centered `(T, M, V, 3)` coordinates, called
    /// with `(coords, T, M, V)` before min-max scaling and frame selection
    /// (training augmentations).
    pub transform: Option<Transform<'a>>,
}

/// Applies the card's contract to `poses`: persons, normalization, optional
/// transform, frame selection. Returns `(card frames, card persons, V, 3)`.
pub fn prepare(poses: PoseSeq, card: &ModelCard, opts: PrepareOptions) -> Result<Prepared> {
    let layout = card.layout()?;
    let v = layout.num_joints();
    if poses.num_joints != v {
        return Err(Error::mismatch(
            "joints per pose",
            format!("{v} ({} layout)", layout.name()),
            poses.num_joints,
        ));
    }
    let (t, m) = (poses.frames, card.input.persons);
    // 1. persons
    let mut x = vec![0.0f32; t * m * v * 3];
    let keep = m.min(poses.persons);
    for f in 0..t {
        let src = f * poses.persons * v * 3;
        let dst = f * m * v * 3;
        x[dst..dst + keep * v * 3].copy_from_slice(&poses.joints[src..src + keep * v * 3]);
    }
    // 2. centering (and facing)
    match card.normalization {
        Normalization::None => {}
        Normalization::CenterFirstFrame | Normalization::CenterFirstFrameMinMax => {
            center_first_frame(&mut x, t, m, v, card.input.center_joint)
        }
        Normalization::CenterFacingMinMax => {
            center_first_frame(&mut x, t, m, v, card.input.center_joint);
            if let Some(deg) = facing_angle(&x, t, m, v, &lateral_pairs(layout)?) {
                rotate_y(&mut x, deg);
            }
        }
    }
    // 3. transform
    if let Some(tf) = opts.transform {
        tf(&mut x, t, m, v);
    }
    // 4. scaling
    if matches!(
        card.normalization,
        Normalization::CenterFirstFrameMinMax | Normalization::CenterFacingMinMax
    ) {
        min_max(&mut x, t, m, v);
    }
    // 5. frames
    let frames = card.temporal.frames;
    let owned;
    let idx = match opts.frames {
        Some(i) => i,
        None => {
            owned = contract_indices(t, frames, card.temporal.sampling);
            &owned
        }
    };
    if idx.len() != frames {
        return Err(Error::mismatch(
            "frame indices",
            format!("{frames} (temporal.frames)"),
            idx.len(),
        ));
    }
    let stride = m * v * 3;
    let mut out = vec![0.0f32; frames * stride];
    for (k, i) in idx.iter().enumerate() {
        if let Some(i) = *i {
            if i >= t {
                return Err(Error::mismatch(
                    "frame index",
                    format!("below the sequence's {t} frames"),
                    i,
                ));
            }
            out[k * stride..(k + 1) * stride].copy_from_slice(&x[i * stride..(i + 1) * stride]);
        }
    }
    Ok(Prepared {
        joints: out,
        frames,
        persons: m,
        num_joints: v,
    })
}

/// Stacks prepared sequences into the model input `(N, C, T, V, M)` with
/// the card's streams.
pub fn to_input(batch: &[&Prepared], card: &ModelCard, device: &Device) -> Result<Tensor> {
    let Some(first) = batch.first() else {
        return Err(Error::config("batch", "needs at least one sequence"));
    };
    let (t, m, v) = (first.frames, first.persons, first.num_joints);
    let mut data = Vec::with_capacity(batch.len() * t * m * v * 3);
    for p in batch {
        if (p.frames, p.persons, p.num_joints) != (t, m, v) {
            return Err(Error::shape(
                "prepared sequence",
                format!("(T={t}, M={m}, V={v}, 3)"),
                &[p.frames, p.persons, p.num_joints, 3],
            ));
        }
        data.extend_from_slice(&p.joints);
    }
    // (N, T, M, V, C) -> (N, C, T, V, M)
    let x = Tensor::from_vec(data, (batch.len(), t, m, v, 3), device)?
        .permute((0, 4, 1, 3, 2))?
        .contiguous()?;
    stream::compute(
        &x,
        &card.input.streams,
        card.layout()?,
        card.input.center_joint,
    )
}

/// The model input `(1, C, T, V, M)` for one sequence of poses under the
/// card's contract (evaluation-time frame selection).
pub fn model_input(poses: PoseSeq, card: &ModelCard, device: &Device) -> Result<Tensor> {
    let p = prepare(poses, card, PrepareOptions::default())?;
    to_input(&[&p], card, device)
}

/// Rotates `(T, M, V, 3)` coordinates about the y axis by `deg` degrees
/// (the vertical axis of the Kinect and RealSense camera frames), as
/// CTR-GCN's view transform `Ry` does; zeros stay zeros.
pub fn rotate_y(x: &mut [f32], deg: f32) {
    let (s, c) = deg.to_radians().sin_cos();
    for p in x.chunks_exact_mut(3) {
        let (px, pz) = (p[0], p[2]);
        p[0] = px * c + pz * s;
        p[2] = -px * s + pz * c;
    }
}

/// [`prepare`] once per test-time view: the poses rotated about the
/// vertical axis by each angle of `views` (degrees, [`rotate_y`]) where
/// the training view transform acts, after centering and before scaling;
/// no views is one plain [`prepare`]. `frames` as in [`PrepareOptions`].
pub fn prepare_views(
    poses: PoseSeq,
    card: &ModelCard,
    frames: Option<&[Option<usize>]>,
    views: &[f32],
) -> Result<Vec<Prepared>> {
    if views.is_empty() {
        let opts = PrepareOptions {
            frames,
            transform: None,
        };
        return Ok(vec![prepare(poses, card, opts)?]);
    }
    views
        .iter()
        .map(|&deg| {
            let mut rotate = |x: &mut [f32], _t: usize, _m: usize, _v: usize| rotate_y(x, deg);
            let opts = PrepareOptions {
                frames,
                transform: Some(&mut rotate),
            };
            prepare(poses, card, opts)
        })
        .collect()
}

/// Averages class probabilities over consecutive groups of `group` rows:
/// `(N * group, K)` logits to `(N, K)` probabilities (the test-time views
/// of each window, [`prepare_views`]).
pub fn mean_probs(logits: &Tensor, group: usize) -> Result<Tensor> {
    let p = candle_nn::ops::softmax_last_dim(logits)?; // (N * group, K)
    if group <= 1 {
        return Ok(p);
    }
    let (rows, k) = p.dims2()?;
    if rows % group != 0 {
        return Err(Error::shape(
            "view scores",
            format!("a multiple of {group} rows"),
            &[rows, k],
        ));
    }
    Ok(p.reshape((rows / group, group, k))?.mean(1)?) // (N, K)
}

/// The log of the mean class probability over all rows of `logits`
/// `(R, K)`: one clip's score from its windows and views, `(1, K)`.
pub fn log_mean_probs(logits: &Tensor) -> Result<Tensor> {
    let p = mean_probs(logits, logits.dim(0)?)?; // (1, K)
    Ok(p.clamp(1e-30f32, 1f32)?.log()?)
}

/// A whole clip as model input the way the live stream sees it: for a
/// `window` contract, every window [`stream_windows`] cuts at `stride`;
/// otherwise the card's one frame selection ([`contract_indices`]); each
/// window once per entry of `views` ([`prepare_views`]; pass the card's
/// `input.views` to score as the card says):
/// `(W * max(1, views), C, T, V, M)`, views varying fastest.
pub fn clip_windows_input(
    poses: PoseSeq,
    card: &ModelCard,
    stride: usize,
    views: &[f32],
    device: &Device,
) -> Result<Tensor> {
    let windows = if card.temporal.sampling == Sampling::Window {
        stream_windows(poses.frames, card.temporal.frames, stride)
    } else {
        vec![contract_indices(
            poses.frames,
            card.temporal.frames,
            card.temporal.sampling,
        )]
    };
    let mut prepared = Vec::with_capacity(windows.len() * views.len().max(1));
    for idx in &windows {
        prepared.extend(prepare_views(poses, card, Some(idx), views)?);
    }
    to_input(&prepared.iter().collect::<Vec<_>>(), card, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_windows_follow_the_tracker() {
        // 20 frames, windows of 8 every 5: ending at frames 7, 12, 17
        let w = stream_windows(20, 8, 5);
        assert_eq!(w.len(), 3);
        for (win, end) in w.iter().zip([8, 13, 18]) {
            assert_eq!(win, &(end - 8..end).map(Some).collect::<Vec<_>>());
        }
        // exactly one window's length, and shorter: one window
        assert_eq!(
            stream_windows(8, 8, 5),
            vec![(0..8).map(Some).collect::<Vec<_>>()]
        );
        assert_eq!(
            stream_windows(3, 4, 5),
            vec![vec![Some(0), Some(1), Some(2), None]]
        );
    }

    #[test]
    fn even_indices_match_numpy_linspace() {
        // np.linspace(0, 9, 4).astype(int) = [0, 3, 6, 9]
        assert_eq!(even_indices(10, 4), vec![0, 3, 6, 9]);
        // np.linspace(0, 2, 5).astype(int) = [0, 0, 1, 1, 2]
        assert_eq!(even_indices(3, 5), vec![0, 0, 1, 1, 2]);
        assert_eq!(even_indices(1, 3), vec![0, 0, 0]);
    }

    #[test]
    fn window_takes_newest_frames() {
        let w = contract_indices(5, 3, Sampling::Window);
        assert_eq!(w, vec![Some(2), Some(3), Some(4)]);
        let w = contract_indices(2, 3, Sampling::Window);
        assert_eq!(w, vec![Some(0), Some(1), None]);
    }

    #[test]
    fn mean_probs_averages_each_windows_views() {
        // 2 windows x 2 views, 2 classes; logits ln p give probabilities p
        let p = [[0.9f32, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]];
        let logits: Vec<f32> = p.iter().flatten().map(|x| x.ln()).collect();
        let x = Tensor::from_vec(logits, (4, 2), &Device::Cpu).unwrap();
        let m = mean_probs(&x, 2).unwrap().to_vec2::<f32>().unwrap();
        let want = [[0.7f32, 0.3], [0.3, 0.7]];
        for (row, w) in m.iter().zip(want) {
            for (a, b) in row.iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "{m:?}");
            }
        }
        // one view: plain probabilities; rows not a multiple: a typed error
        assert_eq!(mean_probs(&x, 1).unwrap().dims(), &[4, 2]);
        assert!(matches!(mean_probs(&x, 3), Err(Error::Shape { .. })));
    }

    #[test]
    fn rotate_y_turns_x_towards_z_and_keeps_zeros() {
        let mut x = vec![1.0f32, 2.0, 0.0, 0.0, 0.0, 0.0];
        rotate_y(&mut x, 90.0);
        let want = [0.0f32, 2.0, -1.0, 0.0, 0.0, 0.0];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn facing_angle_turns_shoulders_and_hips_onto_minus_x() {
        for l in Layout::all() {
            assert!(lateral_pairs(l).is_ok(), "{}", l.name());
        }
        let layout = Layout::kinect20_ucla();
        let v = layout.num_joints();
        let pairs = lateral_pairs(layout).unwrap();
        // a person seen from the side: right-to-left along +z
        let mut x = vec![0.0f32; v * 3];
        for (k, &(l, r)) in pairs.iter().enumerate() {
            let y = 1.0 - k as f32;
            x[l * 3..l * 3 + 3].copy_from_slice(&[0.1, y, 0.2]);
            x[r * 3..r * 3 + 3].copy_from_slice(&[0.1, y, -0.2]);
        }
        let deg = facing_angle(&x, 1, 1, v, &pairs).unwrap();
        rotate_y(&mut x, deg);
        for &(l, r) in &pairs {
            let d: Vec<f32> = (0..3).map(|a| x[l * 3 + a] - x[r * 3 + a]).collect();
            assert!(
                (d[0] + 0.4).abs() < 1e-5 && d[1].abs() < 1e-6 && d[2].abs() < 1e-5,
                "{d:?}"
            );
        }
        // nobody there, or no horizontal extent: no turn
        assert_eq!(facing_angle(&vec![0.0; v * 3], 1, 1, v, &pairs), None);
        x[pairs[0].0 * 3] = f32::NAN;
        assert_eq!(facing_angle(&x, 1, 1, v, &pairs), None);
    }

    #[test]
    fn facing_normalization_removes_the_camera_azimuth() {
        let mut card = crate::model::builtin::card("ctrgcn").unwrap().unwrap();
        card.normalization = Normalization::CenterFacingMinMax;
        let (t, m, v) = (9, 2, card.layout().unwrap().num_joints());
        // two people, deterministic irregular poses, the second absent in frame 3
        let mut joints: Vec<f32> = (0..t * m * v * 3)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 1.5)
            .collect();
        joints[(3 * m + 1) * v * 3..(3 * m + 2) * v * 3].fill(0.0);
        let prepared = |card: &ModelCard, j: &[f32]| {
            let poses = PoseSeq::new(j, t, m, v).unwrap();
            prepare(poses, card, PrepareOptions::default())
                .unwrap()
                .joints
        };
        let worst = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max)
        };
        let base = prepared(&card, &joints);
        for deg in [-170.0f32, -45.0, 30.0, 90.0, 135.0] {
            let mut turned = joints.clone();
            rotate_y(&mut turned, deg);
            let diff = worst(&prepared(&card, &turned), &base);
            assert!(diff < 1e-4, "{deg} degrees: {diff}");
        }
        // the plain normalization does see the azimuth
        card.normalization = Normalization::CenterFirstFrameMinMax;
        let mut turned = joints.clone();
        rotate_y(&mut turned, 90.0);
        let diff = worst(&prepared(&card, &turned), &prepared(&card, &joints));
        assert!(diff > 0.1, "{diff}");
    }

    #[test]
    fn min_max_maps_to_unit_interval() {
        let mut x = vec![0.5, 1.0, 2.0, 1.5, 3.0, 2.0];
        min_max(&mut x, 1, 1, 2);
        assert_eq!(x, vec![-1.0, -1.0, 0.0, 1.0, 1.0, 0.0]);
    }
}
