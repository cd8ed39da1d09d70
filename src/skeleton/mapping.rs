//! Mappings from one skeleton layout to another.
//!
//! A model trained on one layout can serve poses from another sensor (a
//! MediaPipe or COCO pose estimator feeding an NTU-trained model, UTD-MHAD
//! clips evaluated by an NW-UCLA model, as in MMCL's cross-dataset test) when
//! every joint the model expects can be read off or estimated from the
//! joints the sensor gives. A [`Mapping`] says, for every target joint, which
//! source joints it is a weighted mean of; it is derived from joint names:
//!
//! 1. a joint with the same name in both layouts is copied;
//! 2. Kinect v2's renamed spine joints are aliases of Kinect v1's
//!    (`spine_base` = `hip_center`, `spine_mid` = `spine`,
//!    `spine_shoulder` = `shoulder_center`);
//! 3. otherwise a joint is derived by the first rule whose sources resolve
//!    (recursively, by these same three steps):
//!    - hip centre = mean of the hips; shoulder centre = mean of the
//!      shoulders; spine = mean of hip centre and shoulder centre;
//!    - head = mean of the ears; neck = mean of shoulder centre and head;
//!    - hand = mean of index and pinky knuckles, else the wrist;
//!    - hand tip = index, else hand; thumb = hand;
//!    - foot = foot index (toe), else ankle.
//!
//! Rules 3 are approximations (a COCO wrist stands in for a Kinect hand) and
//! are reported by [`Mapping::is_derived`]. A layout pair for which some
//! target joint has no rule (anything to COCO or MediaPipe except from
//! MediaPipe, whose face and fingers others lack) is refused.
//!
//! The confidence of a derived joint is the minimum of its sources', so a
//! joint estimated from a missing one is itself marked missing.

use candle_core::{Device, Tensor};

use super::Layout;
use crate::{Error, Result};

/// Aliases: the same physical joint under Kinect v2 and Kinect v1 names.
const ALIASES: [(&str, &str); 3] = [
    ("spine_base", "hip_center"),
    ("spine_mid", "spine"),
    ("spine_shoulder", "shoulder_center"),
];

/// A weighted mean of named joints.
type Recipe = &'static [(&'static str, f32)];

/// Rules for joints without a side, by (Kinect v1) name; alternatives in
/// order of preference.
const CENTRE_RULES: [(&str, &[Recipe]); 5] = [
    ("hip_center", &[&[("left_hip", 0.5), ("right_hip", 0.5)]]),
    (
        "shoulder_center",
        &[&[("left_shoulder", 0.5), ("right_shoulder", 0.5)]],
    ),
    ("spine", &[&[("hip_center", 0.5), ("shoulder_center", 0.5)]]),
    ("head", &[&[("left_ear", 0.5), ("right_ear", 0.5)]]),
    ("neck", &[&[("shoulder_center", 0.5), ("head", 0.5)]]),
];

/// Rules for sided joints, by base name; source names are on the same side.
const SIDED_RULES: [(&str, &[Recipe]); 4] = [
    (
        "hand",
        &[&[("index", 0.5), ("pinky", 0.5)], &[("wrist", 1.0)]],
    ),
    ("hand_tip", &[&[("index", 1.0)], &[("hand", 1.0)]]),
    ("thumb", &[&[("hand", 1.0)]]),
    ("foot", &[&[("foot_index", 1.0)], &[("ankle", 1.0)]]),
];

/// How deep derived joints may nest (spine -> hip centre -> hips is 2).
const MAX_DEPTH: usize = 4;

/// A mapping from the joints of one layout to those of another: every
/// target joint is a weighted mean of source joints (weights sum to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    from: &'static Layout,
    to: &'static Layout,
    /// Per target joint, `(source joint, weight)` sorted by source.
    rows: Vec<Vec<(usize, f32)>>,
    /// Per target joint, whether it was derived by a rule (not the same
    /// physical joint).
    derived: Vec<bool>,
}

fn same_side(side: &str, base: &str) -> String {
    format!("{side}_{base}")
}

/// Names that denote the same joint as `name` (itself first).
fn aliases(name: &str) -> Vec<&str> {
    let mut out = vec![name];
    for (a, b) in ALIASES {
        if name == a {
            out.push(b);
        } else if name == b {
            out.push(a);
        }
    }
    out
}

/// Rule alternatives for `name`, with side-relative names made absolute.
fn rules(name: &str) -> Vec<Vec<(String, f32)>> {
    let expand = |recipes: &[Recipe], side: Option<&str>| -> Vec<Vec<(String, f32)>> {
        recipes
            .iter()
            .map(|r| {
                r.iter()
                    .map(|&(n, w)| (side.map_or_else(|| n.to_string(), |s| same_side(s, n)), w))
                    .collect()
            })
            .collect()
    };
    for side in ["left", "right"] {
        if let Some(base) = name.strip_prefix(side).and_then(|r| r.strip_prefix('_')) {
            return SIDED_RULES
                .iter()
                .find(|(b, _)| *b == base)
                .map(|(_, r)| expand(r, Some(side)))
                .unwrap_or_default();
        }
    }
    CENTRE_RULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| expand(r, None))
        .unwrap_or_default()
}

/// Resolves a target joint name to weighted source joints; the flag says
/// whether a rule was used.
fn resolve(from: &Layout, name: &str, depth: usize) -> Option<(Vec<(usize, f32)>, bool)> {
    let names = aliases(name);
    if let Some(i) = names.iter().find_map(|n| from.find(n)) {
        return Some((vec![(i, 1.0)], false));
    }
    if depth >= MAX_DEPTH {
        return None;
    }
    for n in names {
        'alternatives: for recipe in rules(n) {
            let mut acc: Vec<(usize, f32)> = Vec::new();
            for (src, w) in &recipe {
                let Some((parts, _)) = resolve(from, src, depth + 1) else {
                    continue 'alternatives;
                };
                for (j, pw) in parts {
                    match acc.iter_mut().find(|(k, _)| *k == j) {
                        Some((_, acc_w)) => *acc_w += w * pw,
                        None => acc.push((j, w * pw)),
                    }
                }
            }
            acc.sort_by_key(|&(j, _)| j);
            return Some((acc, true));
        }
    }
    None
}

/// The mapping from layout `from` to layout `to`; an error naming the first
/// target joint that cannot be read off or estimated from `from`.
pub fn mapping(from: &'static Layout, to: &'static Layout) -> Result<Mapping> {
    let mut rows = Vec::with_capacity(to.num_joints());
    let mut derived = Vec::with_capacity(to.num_joints());
    for name in to.joint_names() {
        let (row, d) = resolve(from, name, 0).ok_or_else(|| Error::Unknown {
            kind: "mapping",
            name: format!(
                "{} -> {} (no source for joint `{name}`)",
                from.name(),
                to.name()
            ),
        })?;
        rows.push(row);
        derived.push(d);
    }
    Ok(Mapping {
        from,
        to,
        rows,
        derived,
    })
}

impl Mapping {
    /// The source layout.
    pub fn from(&self) -> &'static Layout {
        self.from
    }

    /// The target layout.
    pub fn to(&self) -> &'static Layout {
        self.to
    }

    /// `(source joint, weight)` pairs that target joint `target` is the
    /// weighted mean of, sorted by source joint.
    ///
    /// # Panics
    ///
    /// If `target >= self.to().num_joints()`.
    pub fn sources(&self, target: usize) -> &[(usize, f32)] {
        &self.rows[target]
    }

    /// Whether target joint `target` is estimated by a rule rather than
    /// being the same physical joint as a source joint.
    ///
    /// # Panics
    ///
    /// If `target >= self.to().num_joints()`.
    pub fn is_derived(&self, target: usize) -> bool {
        self.derived[target]
    }

    /// Whether the mapping only re-orders joints: every target joint is a
    /// distinct source joint copied, and every source joint is used.
    pub fn is_permutation(&self) -> bool {
        if self.from.num_joints() != self.to.num_joints() {
            return false;
        }
        let mut seen = vec![false; self.from.num_joints()];
        self.rows.iter().all(|row| match row.as_slice() {
            [(j, w)] if *w == 1.0 && !seen[*j] => {
                seen[*j] = true;
                true
            }
            _ => false,
        })
    }

    fn check_len(&self, what: &str, got: usize, want: usize) -> Result<()> {
        if got == want {
            Ok(())
        } else {
            Err(Error::shape(
                format!(
                    "{what} for mapping {} -> {}",
                    self.from.name(),
                    self.to.name()
                ),
                format!("{want} joints"),
                &[got],
            ))
        }
    }

    /// Maps one pose into `dst` (no allocation).
    pub fn apply_into(&self, src: &[[f32; 3]], dst: &mut [[f32; 3]]) -> Result<()> {
        self.check_len("source pose", src.len(), self.from.num_joints())?;
        self.check_len("target pose", dst.len(), self.to.num_joints())?;
        for (out, row) in dst.iter_mut().zip(&self.rows) {
            *out = [0.0; 3];
            for &(j, w) in row {
                for (o, s) in out.iter_mut().zip(src[j]) {
                    *o += w * s;
                }
            }
        }
        Ok(())
    }

    /// Maps one pose (`from().num_joints()` points) to the target layout.
    pub fn apply(&self, src: &[[f32; 3]]) -> Result<Vec<[f32; 3]>> {
        let mut dst = vec![[0.0; 3]; self.to.num_joints()];
        self.apply_into(src, &mut dst)?;
        Ok(dst)
    }

    /// Maps one pose and its per-joint confidences into `dst` and
    /// `dst_conf`; a derived joint's confidence is the minimum of its
    /// sources'.
    pub fn apply_with_confidence_into(
        &self,
        src: &[[f32; 3]],
        conf: &[f32],
        dst: &mut [[f32; 3]],
        dst_conf: &mut [f32],
    ) -> Result<()> {
        self.check_len("source confidences", conf.len(), self.from.num_joints())?;
        self.check_len("target confidences", dst_conf.len(), self.to.num_joints())?;
        self.apply_into(src, dst)?;
        for (c, row) in dst_conf.iter_mut().zip(&self.rows) {
            *c = row
                .iter()
                .map(|&(j, _)| conf[j])
                .fold(f32::INFINITY, f32::min);
        }
        Ok(())
    }

    /// Maps one pose and its per-joint confidences; a derived joint's
    /// confidence is the minimum of its sources'.
    pub fn apply_with_confidence(
        &self,
        src: &[[f32; 3]],
        conf: &[f32],
    ) -> Result<(Vec<[f32; 3]>, Vec<f32>)> {
        let mut dst = vec![[0.0; 3]; self.to.num_joints()];
        let mut dst_conf = vec![0.0; self.to.num_joints()];
        self.apply_with_confidence_into(src, conf, &mut dst, &mut dst_conf)?;
        Ok((dst, dst_conf))
    }

    /// The weights as a `V_to x V_from` row-major matrix `W`, so that a pose
    /// `X` (`V_from x C`) maps to `W X`.
    pub fn to_matrix(&self) -> Vec<f32> {
        let vf = self.from.num_joints();
        let mut m = vec![0.0; self.to.num_joints() * vf];
        for (t, row) in self.rows.iter().enumerate() {
            for &(j, w) in row {
                m[t * vf + j] = w;
            }
        }
        m
    }

    /// [`Mapping::to_matrix`] as an `f32` tensor of shape `(V_to, V_from)`
    /// on `dev`; for a batch `(N, C, T, V_from)` use
    /// `xs.broadcast_matmul(&w.t()?)`.
    pub fn to_tensor(&self, dev: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(
            self.to_matrix(),
            (self.to.num_joints(), self.from.num_joints()),
            dev,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_symmetric() {
        assert_eq!(aliases("spine"), vec!["spine", "spine_mid"]);
        assert_eq!(aliases("spine_mid"), vec!["spine_mid", "spine"]);
        assert_eq!(aliases("head"), vec!["head"]);
    }

    #[test]
    fn sided_rules_keep_the_side() {
        let r = rules("right_hand");
        assert_eq!(
            r[0],
            vec![
                ("right_index".to_string(), 0.5),
                ("right_pinky".to_string(), 0.5)
            ]
        );
        assert_eq!(r[1], vec![("right_wrist".to_string(), 1.0)]);
        assert!(rules("right_elbow").is_empty());
        assert_eq!(rules("spine").len(), 1);
    }

    #[test]
    fn spine_from_coco_is_a_mean_of_four() {
        let coco = Layout::coco17();
        let (row, derived) = resolve(coco, "spine_mid", 0).unwrap();
        assert!(derived);
        let names: Vec<&str> = row.iter().map(|&(j, _)| coco.joint_names()[j]).collect();
        assert_eq!(
            names,
            ["left_shoulder", "right_shoulder", "left_hip", "right_hip"]
        );
        assert!(row.iter().all(|&(_, w)| w == 0.25));
    }
}
