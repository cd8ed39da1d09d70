//! Input streams: joint, bone and their motions, computed from one window.
//!
//! Skeleton models are trained on several views of the same coordinates
//! (CTR-GCN's "four streams", EfficientGCN's joint / velocity / bone
//! branches). A model card lists the streams its input stacks along the
//! channel axis; [`compute`] builds exactly that from raw coordinates, with
//! bones taken from the layout's parents (defined once in
//! [`crate::skeleton`]).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::skeleton::Layout;
use crate::{Error, Result};

/// One view of a window of joint coordinates. Each stream has as many
/// channels as the coordinates (3) unless stated otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stream {
    /// The coordinates themselves.
    Joint,
    /// `x[v] - x[parent(v)]`, zero at the root.
    Bone,
    /// `x[t + 1] - x[t]`, zero at the last frame.
    JointMotion,
    /// Motion of the bone stream.
    BoneMotion,
    /// EfficientGCN's joint branch (6 channels): `x`, and `x - x[center]`
    /// per frame and person, with the center given by the card's
    /// `center_joint`.
    EfficientJoint,
    /// EfficientGCN's velocity branch (6 channels): `x[t+1] - x[t]`,
    /// `x[t+2] - x[t]`, the last two frames zero in all six.
    EfficientVelocity,
    /// EfficientGCN's bone branch (6 channels): the bone vector and its
    /// direction angles `arccos(b_i / (|b| + 1e-4))`.
    EfficientBone,
}

impl Stream {
    /// CTR-GCN's four streams, the ones a model can be trained on alone.
    pub const FOUR: [Stream; 4] = [
        Stream::Joint,
        Stream::Bone,
        Stream::JointMotion,
        Stream::BoneMotion,
    ];

    /// The name in model cards and on the command line (`joint`, `bone`,
    /// `joint-motion`, `efficient-bone`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Stream::Joint => "joint",
            Stream::Bone => "bone",
            Stream::JointMotion => "joint-motion",
            Stream::BoneMotion => "bone-motion",
            Stream::EfficientJoint => "efficient-joint",
            Stream::EfficientVelocity => "efficient-velocity",
            Stream::EfficientBone => "efficient-bone",
        }
    }

    /// One of [`Stream::FOUR`] by name.
    pub fn by_name(name: &str) -> Result<Self> {
        Self::FOUR
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                Error::config(
                    "stream",
                    format!("unknown stream `{name}` (joint, bone, joint-motion, bone-motion)"),
                )
            })
    }

    /// Number of channels this stream contributes for `c` coordinate
    /// channels.
    pub fn channels(self, c: usize) -> usize {
        match self {
            Stream::Joint | Stream::Bone | Stream::JointMotion | Stream::BoneMotion => c,
            Stream::EfficientJoint | Stream::EfficientVelocity | Stream::EfficientBone => 2 * c,
        }
    }
}

/// Total channels of a stream stack.
pub fn channels(streams: &[Stream], c: usize) -> usize {
    streams.iter().map(|s| s.channels(c)).sum()
}

/// `x: (N, C, T, V, M)` -> frame difference `x[t + k] - x[t]`, with the last
/// `zero_last` frames set to zero.
fn motion(x: &Tensor, k: usize, zero_last: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    if t <= k {
        return Ok(x.zeros_like()?);
    }
    let d = (x.narrow(2, k, t - k)? - x.narrow(2, 0, t - k)?)?; // (N, C, T-k, V, M)
    let keep = t.saturating_sub(zero_last).min(t - k);
    let d = d.narrow(2, 0, keep)?;
    Ok(d.pad_with_zeros(2, 0, t - keep)?)
}

/// `x: (N, C, T, V, M)` -> bones `x[v] - x[parents[v]]`.
fn bone(x: &Tensor, parents: &[usize]) -> Result<Tensor> {
    let idx = Tensor::from_vec(
        parents.iter().map(|&p| p as u32).collect::<Vec<_>>(),
        parents.len(),
        x.device(),
    )?;
    let par = x.index_select(&idx, 3)?; // (N, C, T, V, M)
    Ok((x - par)?)
}

/// Builds model input from raw coordinates: `x: (N, C, T, V, M)` ->
/// `(N, sum of stream channels, T, V, M)`, streams stacked along C in the
/// order given. `center_joint` is used by [`Stream::EfficientJoint`];
/// EfficientGCN's bone branch uses the layout re-rooted at it, as the
/// authors' parent list does.
pub fn compute(
    x: &Tensor,
    streams: &[Stream],
    layout: &Layout,
    center_joint: usize,
) -> Result<Tensor> {
    // x: (N, C, T, V, M)
    let dims = x.dims();
    if dims.len() != 5 || dims[3] != layout.num_joints() {
        return Err(Error::shape(
            "stream input",
            format!("(N, C, T, {}, M)", layout.num_joints()),
            dims,
        ));
    }
    if center_joint >= layout.num_joints() {
        return Err(Error::config(
            "center_joint",
            format!("{center_joint} is not a joint of {}", layout.name()),
        ));
    }
    let x = &x.contiguous()?; // index_select (bones) needs a contiguous input
    let mut parts = Vec::with_capacity(streams.len());
    for s in streams {
        let y = match s {
            Stream::Joint => x.clone(),
            Stream::Bone => bone(x, layout.parents())?,
            Stream::JointMotion => motion(x, 1, 1)?,
            Stream::BoneMotion => motion(&bone(x, layout.parents())?, 1, 1)?,
            Stream::EfficientJoint => {
                let c = x.narrow(3, center_joint, 1)?; // (N, C, T, 1, M)
                Tensor::cat(&[x.clone(), x.broadcast_sub(&c)?], 1)?
            }
            Stream::EfficientVelocity => Tensor::cat(&[motion(x, 1, 2)?, motion(x, 2, 2)?], 1)?,
            Stream::EfficientBone => {
                let b = bone(x, &layout.parents_rooted_at(center_joint))?; // (N, C, T, V, M)
                let norm = (b.sqr()?.sum_keepdim(1)?.sqrt()? + 1e-4)?;
                let cos = b.broadcast_div(&norm)?;
                Tensor::cat(&[b, acos(&cos)?], 1)?
            }
        };
        parts.push(y);
    }
    Ok(Tensor::cat(&parts, 1)?)
}

/// Element-wise arccos (candle has none), computed on the host in f64.
fn acos(x: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    let shape = x.shape().clone();
    let v: Vec<f64> = x
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    let v: Vec<f64> = v.into_iter().map(|a| a.clamp(-1.0, 1.0).acos()).collect();
    Ok(Tensor::from_vec(v, shape, x.device())?.to_dtype(dt)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    /// `(1, 3, T, V, 1)` with x = t + 10 v, y = 2 t, z = v.
    fn ramp(t: usize, v: usize) -> Tensor {
        let mut data = Vec::with_capacity(3 * t * v);
        for c in 0..3 {
            for ti in 0..t {
                for vi in 0..v {
                    data.push(match c {
                        0 => ti as f32 + 10.0 * vi as f32,
                        1 => 2.0 * ti as f32,
                        _ => vi as f32,
                    });
                }
            }
        }
        Tensor::from_vec(data, (1, 3, t, v, 1), &Device::Cpu).unwrap()
    }

    fn at(x: &Tensor, c: usize, t: usize, v: usize) -> f32 {
        x.i((0, c, t, v, 0)).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn names_are_the_card_spelling() {
        for s in Stream::FOUR {
            assert_eq!(Stream::by_name(s.name()).unwrap(), s);
            let toml = toml::to_string(&std::collections::BTreeMap::from([("s", s)])).unwrap();
            assert_eq!(toml.trim(), format!("s = \"{}\"", s.name()));
        }
        assert!(Stream::by_name("efficient-bone").is_err());
        assert!(Stream::by_name("velocity").is_err());
    }

    #[test]
    fn bones_and_motions_by_hand() {
        let l = Layout::kinect20_ucla();
        let x = ramp(4, 20);
        let y = compute(
            &x,
            &[Stream::Joint, Stream::Bone, Stream::JointMotion],
            l,
            1,
        )
        .unwrap();
        assert_eq!(y.dims(), &[1, 9, 4, 20, 1]);
        // joint passes through
        assert_eq!(at(&y, 0, 2, 5), 2.0 + 50.0);
        // bone of the root is zero; bone of joint 5 (left elbow, parent 4) is x5 - x4
        let root = l.root();
        assert_eq!(at(&y, 3, 1, root), 0.0);
        assert_eq!(l.parents()[5], 4);
        assert_eq!(at(&y, 3, 1, 5), 10.0);
        assert_eq!(at(&y, 5, 1, 5), 1.0);
        // motion: x[t+1] - x[t] = 1 (x), 2 (y), 0 (z); last frame zero
        assert_eq!(at(&y, 6, 0, 7), 1.0);
        assert_eq!(at(&y, 7, 2, 7), 2.0);
        assert_eq!(at(&y, 6, 3, 7), 0.0);
        assert_eq!(at(&y, 7, 3, 7), 0.0);
    }

    #[test]
    fn efficientgcn_branches_by_hand() {
        let l = Layout::ntu25();
        let x = ramp(5, 25);
        let s = [
            Stream::EfficientJoint,
            Stream::EfficientVelocity,
            Stream::EfficientBone,
        ];
        let y = compute(&x, &s, l, 1).unwrap();
        assert_eq!(y.dims(), &[1, 18, 5, 25, 1]);
        // centered joint: x - x[1] = 10 (v - 1)
        assert_eq!(at(&y, 3, 0, 4), 30.0);
        // velocity: 2-frame difference in channel 4 (y) is 4; last two frames zero
        assert_eq!(at(&y, 6 + 4, 1, 3), 4.0);
        assert_eq!(at(&y, 6, 3, 3), 0.0);
        assert_eq!(at(&y, 6 + 3, 3, 3), 0.0);
        assert_eq!(at(&y, 6, 2, 3), 1.0);
        // bone re-rooted at joint 1: joint 1's bone is zero, its angles pi/2
        assert_eq!(at(&y, 12, 2, 1), 0.0);
        assert!((at(&y, 15, 2, 1) - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
        // joint 20 (spine shoulder) hangs from joint 1 when rooted there
        assert_eq!(at(&y, 12, 0, 20), 190.0);
    }

    #[test]
    fn wrong_joint_count_is_a_shape_error() {
        let x = ramp(3, 17);
        let e = compute(&x, &[Stream::Joint], Layout::ntu25(), 1).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }));
        let x = ramp(3, 25);
        let e = compute(&x, &[Stream::Joint], Layout::ntu25(), 30).unwrap_err();
        assert!(matches!(e, Error::Config { .. }));
    }
}
