//! Skeleton layouts: joint names and one parent per joint, defined once.
//!
//! A [`Layout`] is a kinematic tree: an ordered list of joint names and, for
//! every joint, the index of its parent (the root is its own parent).
//! Everything else — edges, bones, the left/right flip, the edge hash that a
//! model card records, body parts, adjacency stacks and mappings between
//! layouts — is derived from these two tables, so that a layout cannot
//! disagree with itself.
//!
//! The tables are written as `(joint, parent)` name pairs and turned into
//! indices at compile time (a misspelt parent is a compile error). Trees
//! follow the references the models were trained with:
//!
//! - `ntu25`: NTU RGB+D (Kinect v2), the inward edge list of CTR-GCN's
//!   `graph/ntu_rgb_d.py` (the same tree as ST-GCN's and 2s-AGCN's), rooted at
//!   the spine shoulder (0-based 20), the centre ST-GCN uses.
//! - `kinect20-ucla`: Kinect v1 in NW-UCLA's order, CTR-GCN's `graph/ucla.py`
//!   inward list, rooted at the shoulder centre (2).
//! - `kinect20-utd`: Kinect v1 in UTD-MHAD's order; its parents are derived
//!   from the NW-UCLA table by joint name, so the two are the same tree.
//! - `coco17`: COCO keypoints. COCO's own skeleton has cycles; skelact uses
//!   the tree of pyskl's / MMAction2's `coco` graph layout, rooted at the
//!   nose: eyes and shoulders hang from the nose, ears from the eyes, elbows
//!   from the shoulders, wrists from the elbows, each hip from the shoulder on
//!   its side, knees from the hips, ankles from the knees.
//! - `mediapipe33`: MediaPipe BlazePose landmarks, rooted at the nose. The
//!   face follows BlazePose's own connections (nose, inner eye, eye, outer
//!   eye, ear) and both mouth corners hang from the nose; shoulders hang from
//!   the nose and hips from the shoulder on their side, as in `coco17`;
//!   pinky, index and thumb hang from the wrist; heel and foot index from the
//!   ankle (BlazePose's hand and foot triangles, cut to a tree).
//!
//! Joint names are snake_case, with `left`/`right` as a whole `_`-separated
//! word (`left_hip`, `mouth_left`); the flip map is derived from them. The
//! same physical joint has the same name in every layout, except the three
//! spine joints that Kinect v2 renamed (`spine_base` = `hip_center`,
//! `spine_mid` = `spine`, `spine_shoulder` = `shoulder_center`), which the
//! mapping module treats as aliases.

use crate::{Error, Result};

/// A skeleton layout: ordered joint names and the parent of each joint.
///
/// Layouts are static; get one with [`Layout::ntu25`] and friends, or by name
/// with [`Layout::by_name`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    name: &'static str,
    description: &'static str,
    joint_names: &'static [&'static str],
    parents: &'static [usize],
    root: usize,
}

// ---------------------------------------------------------------------------
// Compile-time helpers: name tables to index tables.

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Index of `name` in the first column of `table`; a compile error if absent.
const fn index_in(table: &[(&str, &str)], name: &str) -> usize {
    let mut i = 0;
    while i < table.len() {
        if str_eq(table[i].0, name) {
            return i;
        }
        i += 1;
    }
    panic!("skeleton table names a joint that it does not define")
}

const fn names_of<const N: usize>(table: &[(&'static str, &'static str); N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = table[i].0;
        i += 1;
    }
    out
}

const fn parents_of<const N: usize>(table: &[(&str, &str); N]) -> [usize; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = index_in(table, table[i].1);
        i += 1;
    }
    out
}

/// Re-orders `table` (joint, parent) into the joint order `order`.
const fn reorder<const N: usize>(
    table: &[(&'static str, &'static str); N],
    order: &[&'static str; N],
) -> [(&'static str, &'static str); N] {
    let mut out = [("", ""); N];
    let mut i = 0;
    while i < N {
        out[i] = table[index_in(table, order[i])];
        i += 1;
    }
    out
}

const fn root_of(parents: &[usize]) -> usize {
    let mut i = 0;
    let mut found = usize::MAX;
    while i < parents.len() {
        if parents[i] == i {
            if found != usize::MAX {
                panic!("skeleton table has two roots");
            }
            found = i;
        }
        i += 1;
    }
    if found == usize::MAX {
        panic!("skeleton table has no root");
    }
    found
}

// ---------------------------------------------------------------------------
// NTU RGB+D, Kinect v2, 25 joints. (joint, parent) in joint order; these are
// CTR-GCN's inward pairs (1-based): (1,2) (2,21) (3,21) (4,3) (5,21) (6,5)
// (7,6) (8,7) (9,21) (10,9) (11,10) (12,11) (13,1) (14,13) (15,14) (16,15)
// (17,1) (18,17) (19,18) (20,19) (22,23) (23,8) (24,25) (25,12).

const NTU25_TABLE: [(&str, &str); 25] = [
    ("spine_base", "spine_mid"),
    ("spine_mid", "spine_shoulder"),
    ("neck", "spine_shoulder"),
    ("head", "neck"),
    ("left_shoulder", "spine_shoulder"),
    ("left_elbow", "left_shoulder"),
    ("left_wrist", "left_elbow"),
    ("left_hand", "left_wrist"),
    ("right_shoulder", "spine_shoulder"),
    ("right_elbow", "right_shoulder"),
    ("right_wrist", "right_elbow"),
    ("right_hand", "right_wrist"),
    ("left_hip", "spine_base"),
    ("left_knee", "left_hip"),
    ("left_ankle", "left_knee"),
    ("left_foot", "left_ankle"),
    ("right_hip", "spine_base"),
    ("right_knee", "right_hip"),
    ("right_ankle", "right_knee"),
    ("right_foot", "right_ankle"),
    ("spine_shoulder", "spine_shoulder"),
    ("left_hand_tip", "left_thumb"),
    ("left_thumb", "left_hand"),
    ("right_hand_tip", "right_thumb"),
    ("right_thumb", "right_hand"),
];
const NTU25_NAMES: [&str; 25] = names_of(&NTU25_TABLE);
const NTU25_PARENTS: [usize; 25] = parents_of(&NTU25_TABLE);

// Kinect v1, 20 joints, NW-UCLA order; CTR-GCN graph/ucla.py inward pairs
// (1-based): (1,2) (2,3) (4,3) (5,3) (6,5) (7,6) (8,7) (9,3) (10,9) (11,10)
// (12,11) (13,1) (14,13) (15,14) (16,15) (17,1) (18,17) (19,18) (20,19).

const UCLA_TABLE: [(&str, &str); 20] = [
    ("hip_center", "spine"),
    ("spine", "shoulder_center"),
    ("shoulder_center", "shoulder_center"),
    ("head", "shoulder_center"),
    ("left_shoulder", "shoulder_center"),
    ("left_elbow", "left_shoulder"),
    ("left_wrist", "left_elbow"),
    ("left_hand", "left_wrist"),
    ("right_shoulder", "shoulder_center"),
    ("right_elbow", "right_shoulder"),
    ("right_wrist", "right_elbow"),
    ("right_hand", "right_wrist"),
    ("left_hip", "hip_center"),
    ("left_knee", "left_hip"),
    ("left_ankle", "left_knee"),
    ("left_foot", "left_ankle"),
    ("right_hip", "hip_center"),
    ("right_knee", "right_hip"),
    ("right_ankle", "right_knee"),
    ("right_foot", "right_ankle"),
];
const UCLA_NAMES: [&str; 20] = names_of(&UCLA_TABLE);
const UCLA_PARENTS: [usize; 20] = parents_of(&UCLA_TABLE);

// Kinect v1, 20 joints, UTD-MHAD order (Skeleton_joint_order.txt); the tree
// is NW-UCLA's, looked up by name.
const UTD_ORDER: [&str; 20] = [
    "head",
    "shoulder_center",
    "spine",
    "hip_center",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
];
const UTD_TABLE: [(&str, &str); 20] = reorder(&UCLA_TABLE, &UTD_ORDER);
const UTD_NAMES: [&str; 20] = names_of(&UTD_TABLE);
const UTD_PARENTS: [usize; 20] = parents_of(&UTD_TABLE);

// COCO-17 keypoints; the tree of pyskl's `coco` layout (inward, 0-based):
// (15,13) (13,11) (16,14) (14,12) (11,5) (12,6) (9,7) (7,5) (10,8) (8,6)
// (5,0) (6,0) (1,0) (3,1) (2,0) (4,2); centre 0.
const COCO17_TABLE: [(&str, &str); 17] = [
    ("nose", "nose"),
    ("left_eye", "nose"),
    ("right_eye", "nose"),
    ("left_ear", "left_eye"),
    ("right_ear", "right_eye"),
    ("left_shoulder", "nose"),
    ("right_shoulder", "nose"),
    ("left_elbow", "left_shoulder"),
    ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"),
    ("right_wrist", "right_elbow"),
    ("left_hip", "left_shoulder"),
    ("right_hip", "right_shoulder"),
    ("left_knee", "left_hip"),
    ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"),
    ("right_ankle", "right_knee"),
];
const COCO17_NAMES: [&str; 17] = names_of(&COCO17_TABLE);
const COCO17_PARENTS: [usize; 17] = parents_of(&COCO17_TABLE);

// MediaPipe BlazePose, 33 landmarks in BlazePose's order.
const MEDIAPIPE33_TABLE: [(&str, &str); 33] = [
    ("nose", "nose"),
    ("left_eye_inner", "nose"),
    ("left_eye", "left_eye_inner"),
    ("left_eye_outer", "left_eye"),
    ("right_eye_inner", "nose"),
    ("right_eye", "right_eye_inner"),
    ("right_eye_outer", "right_eye"),
    ("left_ear", "left_eye_outer"),
    ("right_ear", "right_eye_outer"),
    ("mouth_left", "nose"),
    ("mouth_right", "nose"),
    ("left_shoulder", "nose"),
    ("right_shoulder", "nose"),
    ("left_elbow", "left_shoulder"),
    ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"),
    ("right_wrist", "right_elbow"),
    ("left_pinky", "left_wrist"),
    ("right_pinky", "right_wrist"),
    ("left_index", "left_wrist"),
    ("right_index", "right_wrist"),
    ("left_thumb", "left_wrist"),
    ("right_thumb", "right_wrist"),
    ("left_hip", "left_shoulder"),
    ("right_hip", "right_shoulder"),
    ("left_knee", "left_hip"),
    ("right_knee", "right_hip"),
    ("left_ankle", "left_knee"),
    ("right_ankle", "right_knee"),
    ("left_heel", "left_ankle"),
    ("right_heel", "right_ankle"),
    ("left_foot_index", "left_ankle"),
    ("right_foot_index", "right_ankle"),
];
const MEDIAPIPE33_NAMES: [&str; 33] = names_of(&MEDIAPIPE33_TABLE);
const MEDIAPIPE33_PARENTS: [usize; 33] = parents_of(&MEDIAPIPE33_TABLE);

static NTU25: Layout = Layout {
    name: "ntu25",
    description: "NTU RGB+D / Kinect v2, 25 joints",
    joint_names: &NTU25_NAMES,
    parents: &NTU25_PARENTS,
    root: root_of(&NTU25_PARENTS),
};
static KINECT20_UCLA: Layout = Layout {
    name: "kinect20-ucla",
    description: "Kinect v1, 20 joints, NW-UCLA order",
    joint_names: &UCLA_NAMES,
    parents: &UCLA_PARENTS,
    root: root_of(&UCLA_PARENTS),
};
static KINECT20_UTD: Layout = Layout {
    name: "kinect20-utd",
    description: "Kinect v1, 20 joints, UTD-MHAD order",
    joint_names: &UTD_NAMES,
    parents: &UTD_PARENTS,
    root: root_of(&UTD_PARENTS),
};
static COCO17: Layout = Layout {
    name: "coco17",
    description: "COCO keypoints, 17 joints",
    joint_names: &COCO17_NAMES,
    parents: &COCO17_PARENTS,
    root: root_of(&COCO17_PARENTS),
};
static MEDIAPIPE33: Layout = Layout {
    name: "mediapipe33",
    description: "MediaPipe BlazePose, 33 landmarks",
    joint_names: &MEDIAPIPE33_NAMES,
    parents: &MEDIAPIPE33_PARENTS,
    root: root_of(&MEDIAPIPE33_PARENTS),
};
static ALL: [&Layout; 5] = [&NTU25, &KINECT20_UCLA, &KINECT20_UTD, &COCO17, &MEDIAPIPE33];

/// FNV-1a, 64 bit: offset basis and prime from the FNV specification.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds `bytes` into an FNV-1a 64 hash (start from [`FNV_OFFSET`]).
pub(crate) fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// Swaps a whole `left`/`right` word in an `_`-separated joint name; `None`
/// when the name has no side.
pub(crate) fn mirror_name(name: &str) -> Option<String> {
    let mut sided = false;
    let words: Vec<&str> = name
        .split('_')
        .map(|w| match w {
            "left" => {
                sided = true;
                "right"
            }
            "right" => {
                sided = true;
                "left"
            }
            other => other,
        })
        .collect();
    sided.then(|| words.join("_"))
}

impl Layout {
    /// NTU RGB+D 60/120 (Kinect v2), 25 joints, rooted at the spine shoulder
    /// (20); CTR-GCN's and ST-GCN's tree.
    pub fn ntu25() -> &'static Layout {
        &NTU25
    }

    /// Kinect v1, 20 joints in NW-UCLA's order, rooted at the shoulder
    /// centre (2); CTR-GCN's `ucla` tree.
    pub fn kinect20_ucla() -> &'static Layout {
        &KINECT20_UCLA
    }

    /// Kinect v1, 20 joints in UTD-MHAD's order; the NW-UCLA tree re-indexed,
    /// rooted at the shoulder centre (1).
    pub fn kinect20_utd() -> &'static Layout {
        &KINECT20_UTD
    }

    /// COCO's 17 keypoints as a tree rooted at the nose (pyskl's `coco`).
    pub fn coco17() -> &'static Layout {
        &COCO17
    }

    /// MediaPipe BlazePose's 33 landmarks as a tree rooted at the nose.
    pub fn mediapipe33() -> &'static Layout {
        &MEDIAPIPE33
    }

    /// Every layout skelact knows.
    pub fn all() -> &'static [&'static Layout] {
        &ALL
    }

    /// Looks a layout up by its name (`ntu25`, `kinect20-ucla`,
    /// `kinect20-utd`, `coco17`, `mediapipe33`).
    pub fn by_name(name: &str) -> Result<&'static Layout> {
        ALL.iter()
            .copied()
            .find(|l| l.name == name)
            .ok_or_else(|| Error::Unknown {
                kind: "layout",
                name: name.to_string(),
            })
    }

    /// The layout's name, as model cards record it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line saying what the layout is.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// Number of joints `V`.
    pub fn num_joints(&self) -> usize {
        self.joint_names.len()
    }

    /// Joint names in joint order.
    pub fn joint_names(&self) -> &'static [&'static str] {
        self.joint_names
    }

    /// Index of the joint called `name`.
    pub fn joint_index(&self, name: &str) -> Result<usize> {
        self.find(name).ok_or_else(|| Error::Unknown {
            kind: "joint",
            name: format!("{name} (in layout {})", self.name),
        })
    }

    /// Index of the joint called `name`, if the layout has one.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.joint_names.iter().position(|&n| n == name)
    }

    /// Parent of every joint (0-based); the root is its own parent.
    pub fn parents(&self) -> &'static [usize] {
        self.parents
    }

    /// The root joint (the one that is its own parent).
    pub fn root(&self) -> usize {
        self.root
    }

    /// Parents of the same tree re-rooted at `root`: the parent links on the
    /// path from `root` to the layout's root are reversed, all others kept.
    ///
    /// EfficientGCN, for example, uses the NTU tree rooted at joint 1.
    ///
    /// # Panics
    ///
    /// If `root >= num_joints()`, like slice indexing.
    pub fn parents_rooted_at(&self, root: usize) -> Vec<usize> {
        assert!(
            root < self.num_joints(),
            "root {root} out of range for layout {} with {} joints",
            self.name,
            self.num_joints()
        );
        let mut out = self.parents.to_vec();
        out[root] = root;
        // Walk up the old parent links from the new root to the old one,
        // pointing each old parent at the joint it was reached from.
        let mut node = root;
        while node != self.root {
            let up = self.parents[node];
            out[up] = node;
            node = up;
        }
        out
    }

    /// Edges `(child, parent)`, one per non-root joint, in joint order.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        self.parents
            .iter()
            .enumerate()
            .filter(|&(i, &p)| i != p)
            .map(|(i, &p)| (i, p))
            .collect()
    }

    /// A stable hex digest (FNV-1a 64) of the number of joints and the
    /// undirected edge list (each edge as `(min, max)`, sorted).
    ///
    /// Two layouts with the same graph in the same joint order hash the
    /// same; model cards record it so that a model refuses a layout it was
    /// not trained on. The value is pinned in tests: never change the
    /// encoding (V as u64 little-endian, then each edge as two u32
    /// little-endian).
    pub fn edge_hash(&self) -> String {
        let mut edges: Vec<(u32, u32)> = self
            .edges()
            .into_iter()
            .map(|(a, b)| (a.min(b) as u32, a.max(b) as u32))
            .collect();
        edges.sort_unstable();
        let mut h = fnv1a(FNV_OFFSET, &(self.num_joints() as u64).to_le_bytes());
        for (a, b) in edges {
            h = fnv1a(h, &a.to_le_bytes());
            h = fnv1a(h, &b.to_le_bytes());
        }
        format!("{h:016x}")
    }

    /// Left/right mirror: `flip_map()[j]` is the joint that `j` becomes when
    /// the body is mirrored (`left_hip` <-> `right_hip`); joints without a
    /// side (or without a counterpart) map to themselves.
    pub fn flip_map(&self) -> Vec<usize> {
        self.joint_names
            .iter()
            .enumerate()
            .map(|(i, name)| mirror_name(name).and_then(|m| self.find(&m)).unwrap_or(i))
            .collect()
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_name_swaps_whole_words() {
        assert_eq!(mirror_name("left_hip").as_deref(), Some("right_hip"));
        assert_eq!(mirror_name("mouth_right").as_deref(), Some("mouth_left"));
        assert_eq!(
            mirror_name("left_foot_index").as_deref(),
            Some("right_foot_index")
        );
        assert_eq!(mirror_name("spine_base"), None);
        assert_eq!(mirror_name("leftover"), None);
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn const_tables_resolve() {
        assert_eq!(root_of(&NTU25_PARENTS), 20);
        assert_eq!(root_of(&UCLA_PARENTS), 2);
        assert_eq!(root_of(&UTD_PARENTS), 1);
        assert!(str_eq("abc", "abc") && !str_eq("abc", "abd") && !str_eq("ab", "abc"));
    }
}
