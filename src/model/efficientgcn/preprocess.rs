//! EfficientGCN's input preprocessing, as the authors' NTU feeder
//! (`src/dataset/ntu_feeder.py`, `multi_input`) computes it: the model input
//! the published checkpoint was trained on.
//!
//! From raw NTU-layout data `(N, 3, T, V, M)` — camera coordinates in
//! metres, the two bodies of largest motion first, zeros for frames after
//! the end and for a missing body, no centering, no rotation:
//!
//! 1. keep the first [`NUM_FRAMES`] (288) frames; a shorter sequence is
//!    padded with zero frames at the end (the authors' data is stored as 300
//!    zero-padded frames, so this is the same input they saw for a short
//!    clip);
//! 2. three streams of 6 channels each, stacked along channels in the order
//!    joint | velocity | bone, giving `(N, 18, 288, V, M)`:
//!    - joint: `x`, and `x - x[CENTER_JOINT]` per frame and person;
//!    - velocity: `x[t+1] - x[t]` and `x[t+2] - x[t]`; the last two frames are
//!      zero in all six channels;
//!    - bone: `b = x[v] - x[parent[v]]` with the NTU tree rooted at joint 1
//!      (`Layout::ntu25().parents_rooted_at(1)`), and
//!      `arccos(b_i / (|b| + 1e-4))` for each axis. A zero bone (joint 1
//!      itself, empty frames, the absent person) gives angles of π/2; that
//!      is kept, the model was trained with it.
//!
//! The streams themselves are [`crate::window::stream`]'s
//! `efficient-joint`, `efficient-velocity` and `efficient-bone` — the one
//! code path that also serves live windows; this module adds the authors'
//! crop and the checks. Computed in f64 like the reference (numpy),
//! returned as f32. The empty second person goes through the network like
//! the first (do not drop it).

use candle_core::Tensor;

use crate::skeleton::Layout;
use crate::window::{stream, Stream};
use crate::{Error, Result};

/// Frames per sample of the published configuration.
pub const NUM_FRAMES: usize = 288;
/// The joint the second half of the joint stream is relative to (0-based
/// 1, "spine middle").
pub const CENTER_JOINT: usize = 1;
/// The bone tree's root (0-based 1, "spine middle").
pub const BONE_ROOT: usize = 1;
/// Added to the bone length before the arccos.
pub const BONE_EPS: f64 = 1e-4;
/// Channels per stream: 3 values and 3 derived ones.
pub const STREAM_CHANNELS: usize = 6;
/// Channels of the model input: joint, velocity, bone.
pub const INPUT_CHANNELS: usize = 3 * STREAM_CHANNELS;

/// Bone parents for `layout`: its tree rooted at [`BONE_ROOT`]. For NTU-25
/// this is the authors' `connect_joint`
/// `[1,1,20,2,20,4,5,6,20,8,9,10,0,12,13,14,0,16,17,18,1,22,7,24,11]`.
pub fn bone_parents(layout: &Layout) -> Vec<usize> {
    layout.parents_rooted_at(BONE_ROOT)
}

/// The streams of the published model, in input order.
pub const STREAMS: [Stream; 3] = [
    Stream::EfficientJoint,
    Stream::EfficientVelocity,
    Stream::EfficientBone,
];

/// The model input for raw NTU-25 data: `raw (N, 3, T, 25, M)` metres →
/// `(N, 18, 288, 25, M)` f32 on the same device (see the module docs).
pub fn preprocess(raw: &Tensor) -> Result<Tensor> {
    preprocess_with(raw, NUM_FRAMES, Layout::ntu25(), CENTER_JOINT)
}

/// [`preprocess`] with explicit frame count, layout and center joint (also
/// the bone root): `raw (N, 3, T, V, M) -> (N, 18, num_frames, V, M)`.
///
/// Errors: [`Error::Shape`] for a tensor that is not `(N, 3, T, V, M)` with
/// the layout's `V`, [`Error::Config`] for a center out of range or
/// `num_frames < 1`, [`Error::NonFinite`] for NaN or infinite coordinates.
pub fn preprocess_with(
    raw: &Tensor,
    num_frames: usize,
    layout: &Layout,
    center: usize,
) -> Result<Tensor> {
    // raw: (N, C, T, V, M)
    let dims = raw.dims();
    let v = layout.num_joints();
    if dims.len() != 5 || dims[1] != 3 || dims[3] != v {
        return Err(Error::shape(
            "raw skeleton sequence",
            format!("(N, 3, T, {v}, M)"),
            dims,
        ));
    }
    if num_frames == 0 {
        return Err(Error::config("num_frames", "must be positive"));
    }
    let x = raw.to_dtype(candle_core::DType::F64)?;
    let bad = x
        .flatten_all()?
        .to_vec1::<f64>()?
        .iter()
        .filter(|a| !a.is_finite())
        .count();
    if bad > 0 {
        return Err(Error::NonFinite {
            what: "raw skeleton sequence".into(),
            count: bad,
            total: raw.elem_count(),
        });
    }
    let t = dims[2];
    let kept = t.min(num_frames);
    let x = x
        .narrow(2, 0, kept)?
        .pad_with_zeros(2, 0, num_frames - kept)?; // (N, 3, num_frames, V, M)
    let y = stream::compute(&x, &STREAMS, layout, center)?; // (N, 18, num_frames, V, M)
    Ok(y.to_dtype(candle_core::DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    #[test]
    fn ntu_bone_parents_are_the_authors_connect_joint() {
        let want = [
            1, 1, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 22, 7, 24, 11,
        ];
        assert_eq!(bone_parents(Layout::ntu25()), want.to_vec());
    }

    #[test]
    fn short_sequences_are_zero_padded_and_zero_frames_give_right_angles() -> Result<()> {
        let dev = Device::Cpu;
        let raw = Tensor::randn(0f32, 1.0, (1, 3, 5, 25, 1), &dev)?;
        let y = preprocess(&raw)?;
        assert_eq!(y.dims(), &[1, 18, 288, 25, 1]);
        // frame 10 is padding: joint/velocity zero, bone zero, angles pi/2
        let f = y.i((0, .., 10, 3, 0))?.to_vec1::<f32>()?;
        for (ch, val) in f.iter().enumerate() {
            let want = if ch >= 15 {
                std::f32::consts::FRAC_PI_2
            } else {
                0.0
            };
            assert!((val - want).abs() < 1e-6, "channel {ch}: {val}");
        }
        // velocity at the last real frame jumps to the zero padding: -x
        let x4 = raw.i((0, 0, 4, 3, 0))?.to_scalar::<f32>()?;
        let v4 = y.i((0, 6, 4, 3, 0))?.to_scalar::<f32>()?;
        assert!((v4 + x4).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn refuses_bad_shapes_and_nan() {
        let dev = Device::Cpu;
        let raw = Tensor::zeros((1, 2, 5, 25, 1), candle_core::DType::F32, &dev).unwrap();
        assert!(matches!(preprocess(&raw), Err(Error::Shape { .. })));
        let raw = Tensor::new(&[f32::NAN; 75], &dev)
            .unwrap()
            .reshape((1, 3, 1, 25, 1))
            .unwrap();
        assert!(matches!(preprocess(&raw), Err(Error::NonFinite { .. })));
    }
}
