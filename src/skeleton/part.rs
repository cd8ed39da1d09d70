//! Body parts of a layout, derived from its joint names.
//!
//! Two partitions are used by the methods skelact implements:
//!
//! - GAP (Xiang et al., ICCV 2023) pools the backbone's last feature map
//!   over four overlapping parts — head, hands/arms, hip, legs — and aligns
//!   each with a language description ([`gap_parts`]). The lists reproduce
//!   the official code's index lists exactly: on NTU-25 head {2, 3, 20},
//!   arms {4..11, 21..24}, hip {0, 1, 2, 12, 16}, legs {12..19}; on NW-UCLA
//!   head {2, 3}, arms {4..11}, hip {0, 1, 12, 16}, legs {12..19}. Note that
//!   GAP's NTU hip part contains the neck (2); skelact keeps that, so a model
//!   trained here sees the parts the paper's did.
//! - SkeletonMAE (Yan et al., ICCV 2023) masks whole body regions — head,
//!   torso, left arm, right arm, left leg, right leg — which partition the
//!   joints ([`regions`]). The paper's code is not released; skelact puts
//!   the face and neck in the head, the spine joints, shoulders and hips in
//!   the torso (so that COCO-17, which has no spine, still has a torso), and
//!   the remaining limb joints in arms and legs.
//!
//! Both are computed from joint names (for example every `left_*` joint whose
//! base is `elbow`, `wrist`, `hand`, ... is in the left arm), so a new layout
//! with the usual names gets its parts for free, and the UTD-MHAD order gets
//! the NW-UCLA parts re-indexed.

use super::Layout;

/// A SkeletonMAE masking region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// Face, head and neck.
    Head,
    /// Spine joints, shoulders and hips.
    Torso,
    /// Left elbow to fingers.
    LeftArm,
    /// Right elbow to fingers.
    RightArm,
    /// Left knee to toes.
    LeftLeg,
    /// Right knee to toes.
    RightLeg,
}

impl Region {
    /// The six regions, in this order.
    pub const ALL: [Region; 6] = [
        Region::Head,
        Region::Torso,
        Region::LeftArm,
        Region::RightArm,
        Region::LeftLeg,
        Region::RightLeg,
    ];

    /// A short snake_case name (`left_arm`).
    pub fn name(self) -> &'static str {
        match self {
            Region::Head => "head",
            Region::Torso => "torso",
            Region::LeftArm => "left_arm",
            Region::RightArm => "right_arm",
            Region::LeftLeg => "left_leg",
            Region::RightLeg => "right_leg",
        }
    }

    /// The region on the other side of the body (head and torso are their
    /// own mirror).
    pub fn mirror(self) -> Region {
        match self {
            Region::LeftArm => Region::RightArm,
            Region::RightArm => Region::LeftArm,
            Region::LeftLeg => Region::RightLeg,
            Region::RightLeg => Region::LeftLeg,
            other => other,
        }
    }
}

/// GAP's four parts, in the order of [`gap_parts`]'s result.
pub const GAP_PART_NAMES: [&str; 4] = ["head", "arms", "hip", "legs"];

/// Which side of the body a joint name is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Centre,
}

/// What a joint is, judged from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Face, head, neck.
    Head,
    /// The shoulder centre (`spine_shoulder`, `shoulder_center`).
    ShoulderCentre,
    /// The other spine joints (`spine_base`, `spine_mid`, `hip_center`,
    /// `spine`).
    Spine,
    /// A shoulder.
    Shoulder,
    /// Elbow to fingers.
    Arm,
    /// A hip.
    Hip,
    /// Knee to toes.
    Leg,
}

/// Splits a joint name into its side and its base (the name without the
/// `left`/`right` word).
fn side_and_base(name: &str) -> (Side, String) {
    let mut side = Side::Centre;
    let base: Vec<&str> = name
        .split('_')
        .filter(|w| match *w {
            "left" => {
                side = Side::Left;
                false
            }
            "right" => {
                side = Side::Right;
                false
            }
            _ => true,
        })
        .collect();
    (side, base.join("_"))
}

fn kind_of(base: &str) -> Option<Kind> {
    Some(match base {
        "nose" | "head" | "neck" | "eye" | "eye_inner" | "eye_outer" | "ear" | "mouth" => {
            Kind::Head
        }
        "spine_shoulder" | "shoulder_center" => Kind::ShoulderCentre,
        "spine_base" | "spine_mid" | "hip_center" | "spine" => Kind::Spine,
        "shoulder" => Kind::Shoulder,
        "elbow" | "wrist" | "hand" | "hand_tip" | "thumb" | "pinky" | "index" => Kind::Arm,
        "hip" => Kind::Hip,
        "knee" | "ankle" | "foot" | "heel" | "foot_index" => Kind::Leg,
        _ => return None,
    })
}

/// The SkeletonMAE region of a joint name; `None` for a name skelact does
/// not recognise.
pub fn region_of(name: &str) -> Option<Region> {
    let (side, base) = side_and_base(name);
    let kind = kind_of(&base)?;
    Some(match (kind, side) {
        (Kind::Head, _) => Region::Head,
        (Kind::ShoulderCentre | Kind::Spine | Kind::Shoulder | Kind::Hip, _) => Region::Torso,
        (Kind::Arm, Side::Left) => Region::LeftArm,
        (Kind::Arm, Side::Right) => Region::RightArm,
        (Kind::Leg, Side::Left) => Region::LeftLeg,
        (Kind::Leg, Side::Right) => Region::RightLeg,
        (Kind::Arm | Kind::Leg, Side::Centre) => return None,
    })
}

/// GAP's four parts `[head, arms, hip, legs]` as sorted joint indices.
///
/// - head: face, head and neck joints, and the shoulder centre;
/// - arms: shoulders to fingers;
/// - hip: spine base / hip centre, mid spine, both hips, and the neck where
///   the layout has one (as GAP's NTU list does);
/// - legs: hips to toes.
///
/// The parts overlap (the hips are in both hip and legs), as in GAP.
pub fn gap_parts(l: &Layout) -> [Vec<usize>; 4] {
    let mut parts: [Vec<usize>; 4] = Default::default();
    for (j, name) in l.joint_names().iter().enumerate() {
        let (_, base) = side_and_base(name);
        let Some(kind) = kind_of(&base) else {
            continue;
        };
        let (head, arms, hip, legs) = match kind {
            Kind::Head => (true, false, base == "neck", false),
            Kind::ShoulderCentre => (true, false, false, false),
            Kind::Spine => (false, false, true, false),
            Kind::Shoulder | Kind::Arm => (false, true, false, false),
            Kind::Hip => (false, false, true, true),
            Kind::Leg => (false, false, false, true),
        };
        for (part, member) in parts.iter_mut().zip([head, arms, hip, legs]) {
            if member {
                part.push(j);
            }
        }
    }
    parts
}

/// SkeletonMAE's six regions, each with its sorted joint indices, in
/// [`Region::ALL`] order; together they partition the layout's joints.
///
/// A joint whose name skelact does not recognise (none of the built-in
/// layouts has one) goes to the torso, so the result is always a partition.
pub fn regions(l: &Layout) -> Vec<(Region, Vec<usize>)> {
    let mut out: Vec<(Region, Vec<usize>)> = Region::ALL.iter().map(|&r| (r, Vec::new())).collect();
    for (j, name) in l.joint_names().iter().enumerate() {
        let r = region_of(name).unwrap_or(Region::Torso);
        if let Some((_, joints)) = out.iter_mut().find(|(region, _)| *region == r) {
            joints.push(j);
        }
    }
    out
}

/// Joint indices of one region.
pub fn region_joints(l: &Layout, region: Region) -> Vec<usize> {
    l.joint_names()
        .iter()
        .enumerate()
        .filter(|(_, name)| region_of(name).unwrap_or(Region::Torso) == region)
        .map(|(j, _)| j)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_and_base_strips_the_side_word() {
        assert_eq!(
            side_and_base("left_hand_tip"),
            (Side::Left, "hand_tip".to_string())
        );
        assert_eq!(
            side_and_base("mouth_right"),
            (Side::Right, "mouth".to_string())
        );
        assert_eq!(
            side_and_base("spine_mid"),
            (Side::Centre, "spine_mid".to_string())
        );
    }

    #[test]
    fn region_of_names() {
        assert_eq!(region_of("left_index"), Some(Region::LeftArm));
        assert_eq!(region_of("right_foot_index"), Some(Region::RightLeg));
        assert_eq!(region_of("left_hip"), Some(Region::Torso));
        assert_eq!(region_of("neck"), Some(Region::Head));
        assert_eq!(region_of("tail"), None);
    }

    #[test]
    fn every_builtin_joint_is_recognised() {
        for l in Layout::all() {
            for name in l.joint_names() {
                assert!(region_of(name).is_some(), "{name} in {}", l.name());
            }
        }
    }

    #[test]
    fn region_mirror_is_an_involution() {
        for r in Region::ALL {
            assert_eq!(r.mirror().mirror(), r);
        }
    }
}
