//! [`Clip`]: one labelled skeleton sequence from a data set, the common
//! in-memory form that every dataset reader in [`crate::source`] produces.
//!
//! Joints are stored densely as `(T, M, V, 3)` f32 metres, row-major: frame,
//! person, joint, xyz. That is the order the files are read in; models want
//! `(C, T, V, M)` (the ST-GCN convention, Yan et al., AAAI 2018), which
//! [`Clip::to_tensor`] gives. A person absent from a frame has zeros, as in
//! the reference preprocessing scripts.

use candle_core::{Device, Tensor};

use crate::{Error, Result};

/// Where a clip came from, as encoded in its file name. Fields a data set
/// does not have are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClipMeta {
    /// The data set's own action id, 1-based as in the file name (NW-UCLA
    /// skips some ids, so this is not always `label + 1`).
    pub action: Option<u32>,
    /// The performer (NW-UCLA `s`, UTD-MHAD `s`, NTU `P`).
    pub subject: Option<u32>,
    /// The camera or view (NW-UCLA `v`, NTU `C`); UTD-MHAD has one camera.
    pub camera: Option<u32>,
    /// The repetition or trial (NW-UCLA `e`, UTD-MHAD `t`, NTU `R`).
    pub repetition: Option<u32>,
    /// The recording setup (NTU `S`).
    pub setup: Option<u32>,
}

/// One labelled skeleton sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The clip's name, the file name without extension
    /// (`a01_s01_e00_v01`, `S001C001P001R001A001`).
    pub name: String,
    /// The class, 0-based, into the data set's class list.
    pub label: usize,
    /// The skeleton layout name, as [`crate::skeleton::Layout::by_name`]
    /// knows it (`"kinect20-ucla"`, `"kinect20-utd"`, `"ntu25"`).
    pub layout: &'static str,
    /// The nominal capture rate in frames per second (the files carry no
    /// timestamps; each reader documents where its rate comes from).
    pub fps: f32,
    /// T: frames.
    pub num_frames: usize,
    /// M: persons (bodies) per frame.
    pub num_persons: usize,
    /// V: joints per person.
    pub num_joints: usize,
    /// Joint positions in metres, `(T, M, V, 3)` row-major.
    pub joints: Vec<f32>,
    /// What the file name says about the clip.
    pub meta: ClipMeta,
}

impl Clip {
    /// `[T, M, V, 3]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.num_frames, self.num_persons, self.num_joints, 3]
    }

    /// The position of joint `v` of person `m` in frame `t`, in metres, or
    /// `None` when an index is out of range.
    pub fn position(&self, t: usize, m: usize, v: usize) -> Option<[f32; 3]> {
        if t >= self.num_frames || m >= self.num_persons || v >= self.num_joints {
            return None;
        }
        let i = ((t * self.num_persons + m) * self.num_joints + v) * 3;
        let p = self.joints.get(i..i + 3)?;
        Some([p[0], p[1], p[2]])
    }

    /// Checks the invariants a reader guarantees: `joints` holds
    /// `T * M * V * 3` values, T, M and V are non-zero, every value is
    /// finite. For clips built by hand.
    pub fn validate(&self) -> Result<()> {
        let [t, m, v, c] = self.shape();
        let want = t
            .checked_mul(m)
            .and_then(|x| x.checked_mul(v))
            .and_then(|x| x.checked_mul(c));
        if t == 0 || m == 0 || v == 0 || want != Some(self.joints.len()) {
            return Err(Error::shape(
                format!("joints of clip {}", self.name),
                format!("(T={t}, M={m}, V={v}, 3) with T, M, V > 0"),
                &[self.joints.len()],
            ));
        }
        let count = self.joints.iter().filter(|x| !x.is_finite()).count();
        if count > 0 {
            return Err(Error::NonFinite {
                what: format!("joints of clip {}", self.name),
                count,
                total: self.joints.len(),
            });
        }
        Ok(())
    }

    /// The same clip with exactly `m` persons: extra persons are dropped,
    /// missing ones are zeros (the reference scripts pad NTU clips to two).
    pub fn with_persons(&self, m: usize) -> Clip {
        let (t, v) = (self.num_frames, self.num_joints);
        let keep = m.min(self.num_persons);
        let mut joints = vec![0.0f32; t * m * v * 3];
        for f in 0..t {
            for p in 0..keep {
                let src = ((f * self.num_persons + p) * v) * 3;
                let dst = ((f * m + p) * v) * 3;
                if let (Some(s), Some(d)) = (
                    self.joints.get(src..src + v * 3),
                    joints.get_mut(dst..dst + v * 3),
                ) {
                    d.copy_from_slice(s);
                }
            }
        }
        Clip {
            num_persons: m,
            joints,
            name: self.name.clone(),
            ..*self
        }
    }

    /// The joints as a `(C=3, T, V, M)` f32 tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        // (T, M, V, C) -> (C, T, V, M)
        let (t, m, v) = (self.num_frames, self.num_persons, self.num_joints);
        Tensor::from_slice(&self.joints, (t, m, v, 3), device)?
            .permute((3, 0, 2, 1))?
            .contiguous()
    }
}

/// Converts `x` to f32 and refuses NaN, infinity, or a value too large for
/// f32, naming where it was found.
pub(crate) fn finite_f32(
    x: f64,
    format: &'static str,
    path: &std::path::Path,
    where_: impl FnOnce() -> String,
) -> Result<f32> {
    let y = x as f32;
    if y.is_finite() {
        Ok(y)
    } else {
        Err(super::malformed(
            format,
            path,
            format!("value {x:e} is not a finite f32, at {}", where_()),
        ))
    }
}
