//! Skeleton layouts and everything derived from them: trees, flips, edge
//! hashes, adjacency stacks (against the CTR-GCN and ST-GCN references),
//! body parts and mappings between layouts.

use std::collections::BTreeSet;

use anyhow::Result;
use proptest::prelude::*;
use skelact::skeleton::graph::{ctrgcn_spatial, hop_distance, normalize_digraph, stgcn_spatial};
use skelact::skeleton::mapping::mapping;
use skelact::skeleton::part::{gap_parts, region_joints, regions, Region};
use skelact::skeleton::Layout;

fn undirected_edges(l: &Layout) -> BTreeSet<(usize, usize)> {
    l.edges()
        .into_iter()
        .map(|(a, b)| (a.min(b), a.max(b)))
        .collect()
}

#[test]
fn names_and_lookup() -> Result<()> {
    let names: Vec<&str> = Layout::all().iter().map(|l| l.name()).collect();
    assert_eq!(
        names,
        [
            "ntu25",
            "kinect20-ucla",
            "kinect20-utd",
            "coco17",
            "mediapipe33"
        ]
    );
    for l in Layout::all() {
        assert_eq!(Layout::by_name(l.name())?, *l);
        assert_eq!(l.joint_names().len(), l.num_joints());
        assert_eq!(l.parents().len(), l.num_joints());
        for (i, name) in l.joint_names().iter().enumerate() {
            assert_eq!(l.joint_index(name)?, i);
        }
        let unique: BTreeSet<_> = l.joint_names().iter().collect();
        assert_eq!(
            unique.len(),
            l.num_joints(),
            "{} has duplicate names",
            l.name()
        );
    }
    let counts: Vec<usize> = Layout::all().iter().map(|l| l.num_joints()).collect();
    assert_eq!(counts, [25, 20, 20, 17, 33]);
    assert!(matches!(
        Layout::by_name("ntu26"),
        Err(skelact::Error::Unknown { kind: "layout", .. })
    ));
    assert!(matches!(
        Layout::ntu25().joint_index("tail"),
        Err(skelact::Error::Unknown { kind: "joint", .. })
    ));
    Ok(())
}

#[test]
fn every_layout_is_a_tree() {
    for l in Layout::all() {
        let v = l.num_joints();
        let parents = l.parents();
        let root = l.root();
        assert_eq!(parents[root], root);
        assert_eq!(
            parents.iter().enumerate().filter(|&(i, &p)| i == p).count(),
            1,
            "{}: exactly one root",
            l.name()
        );
        let edges = l.edges();
        assert_eq!(edges.len(), v - 1, "{}", l.name());
        // Bones are (child, parent) in joint order and agree with parents().
        for (k, &(c, p)) in edges.iter().enumerate() {
            assert_eq!(parents[c], p);
            assert!(c < v && p < v);
            if k > 0 {
                assert!(edges[k - 1].0 < c);
            }
        }
        // Acyclic and connected: every joint reaches the root in < V steps.
        for start in 0..v {
            let mut j = start;
            let mut steps = 0;
            while j != root {
                j = parents[j];
                steps += 1;
                assert!(steps < v, "{}: cycle through joint {start}", l.name());
            }
        }
        assert_eq!(undirected_edges(l).len(), v - 1);
    }
}

#[test]
fn ntu_reproduces_ctrgcn_inward_list() {
    let inward_1based = [
        (1, 2),
        (2, 21),
        (3, 21),
        (4, 3),
        (5, 21),
        (6, 5),
        (7, 6),
        (8, 7),
        (9, 21),
        (10, 9),
        (11, 10),
        (12, 11),
        (13, 1),
        (14, 13),
        (15, 14),
        (16, 15),
        (17, 1),
        (18, 17),
        (19, 18),
        (20, 19),
        (22, 23),
        (23, 8),
        (24, 25),
        (25, 12),
    ];
    let want: Vec<(usize, usize)> = inward_1based.iter().map(|&(c, p)| (c - 1, p - 1)).collect();
    let l = Layout::ntu25();
    assert_eq!(l.edges(), want);
    assert_eq!(l.root(), 20);
    assert_eq!(l.joint_names()[20], "spine_shoulder");
}

#[test]
fn coco_is_pyskls_tree() {
    // pyskl / MMAction2 `coco` layout, inward (child, parent), 0-based.
    let inward = [
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 5),
        (12, 6),
        (9, 7),
        (7, 5),
        (10, 8),
        (8, 6),
        (5, 0),
        (6, 0),
        (1, 0),
        (3, 1),
        (2, 0),
        (4, 2),
    ];
    let mut want = inward.to_vec();
    want.sort_unstable();
    let l = Layout::coco17();
    assert_eq!(l.edges(), want);
    assert_eq!(l.root(), 0);
}

#[test]
fn kinect20_trees_match_ctrgcn_ucla_and_each_other() -> Result<()> {
    let ucla = Layout::kinect20_ucla();
    assert_eq!(
        ucla.parents(),
        [1, 2, 2, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18]
    );
    assert_eq!(ucla.root(), 2);
    let utd = Layout::kinect20_utd();
    assert_eq!(
        &utd.joint_names()[..4],
        ["head", "shoulder_center", "spine", "hip_center"]
    );
    assert_eq!(&utd.joint_names()[4..], &ucla.joint_names()[4..]);
    // Isomorphic under the name mapping: the parent of every joint is the
    // same named joint in both.
    for (j, name) in utd.joint_names().iter().enumerate() {
        let u = ucla.joint_index(name)?;
        assert_eq!(
            utd.joint_names()[utd.parents()[j]],
            ucla.joint_names()[ucla.parents()[u]]
        );
    }
    assert_eq!(utd.joint_names()[utd.root()], "shoulder_center");
    Ok(())
}

#[test]
fn reroot_ntu_for_efficientgcn() {
    let l = Layout::ntu25();
    assert_eq!(
        l.parents_rooted_at(1),
        [1, 1, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 22, 7, 24, 11]
    );
    assert_eq!(l.parents_rooted_at(l.root()), l.parents());
    // Re-rooting keeps the undirected tree, for every layout and root.
    for l in Layout::all() {
        let edges = undirected_edges(l);
        for r in 0..l.num_joints() {
            let p = l.parents_rooted_at(r);
            assert_eq!(p[r], r);
            let e: BTreeSet<_> = p
                .iter()
                .enumerate()
                .filter(|&(i, &q)| i != q)
                .map(|(i, &q)| (i.min(q), i.max(q)))
                .collect();
            assert_eq!(e, edges, "{} rooted at {r}", l.name());
        }
    }
}

#[test]
fn flip_map_mirrors_left_and_right() {
    for l in Layout::all() {
        let flip = l.flip_map();
        let names = l.joint_names();
        assert_eq!(flip.len(), l.num_joints());
        for (j, &f) in flip.iter().enumerate() {
            assert_eq!(flip[f], j, "{}: involution", l.name());
            let name = names[j];
            let words: Vec<&str> = name.split('_').collect();
            if words.contains(&"left") || words.contains(&"right") {
                assert_ne!(f, j, "{}: {name} has no counterpart", l.name());
                let want: Vec<&str> = words
                    .iter()
                    .map(|w| match *w {
                        "left" => "right",
                        "right" => "left",
                        w => w,
                    })
                    .collect();
                assert_eq!(names[f], want.join("_"));
            } else {
                assert_eq!(f, j, "{}: centre joint {name} must stay", l.name());
            }
        }
        // Mirroring preserves the edge set.
        let edges = undirected_edges(l);
        let mirrored: BTreeSet<_> = edges
            .iter()
            .map(|&(a, b)| (flip[a].min(flip[b]), flip[a].max(flip[b])))
            .collect();
        assert_eq!(mirrored, edges, "{}", l.name());
    }
    let ntu = Layout::ntu25();
    let flip = ntu.flip_map();
    assert_eq!(flip[4], 8);
    assert_eq!(flip[21], 23);
    assert_eq!(flip[20], 20);
}

/// Pinned values were computed independently of skelact, in Python, from
/// the references' 0-based edge lists (CTR-GCN's NTU and UCLA inward lists,
/// pyskl's COCO list, the MediaPipe tree of `layout.rs`):
///
/// ```python
/// def edge_hash(v, edges):
///     e = sorted((min(a, b), max(a, b)) for a, b in edges)
///     data = struct.pack("<Q", v) + b"".join(struct.pack("<II", a, b) for a, b in e)
///     h = 0xcbf29ce484222325
///     for byte in data:
///         h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
///     return "%016x" % h
/// ```
#[test]
fn edge_hashes_are_pinned() {
    let got: Vec<(&str, String)> = Layout::all()
        .iter()
        .map(|l| (l.name(), l.edge_hash()))
        .collect();
    let want = [
        ("ntu25", "682bc367fa54f6a1"),
        ("kinect20-ucla", "8d0074bcf06534c2"),
        ("kinect20-utd", "d7ec6cf29ebb6be2"),
        ("coco17", "4af029a16f2a8ccc"),
        ("mediapipe33", "03db5f912838b833"),
    ];
    for ((name, hash), (wname, whash)) in got.iter().zip(want) {
        assert_eq!(*name, wname);
        assert_eq!(hash, whash, "{name}");
        assert_eq!(hash.len(), 16);
    }
    let unique: BTreeSet<_> = got.iter().map(|(_, h)| h).collect();
    assert_eq!(unique.len(), got.len(), "layouts must hash differently");
}

#[test]
fn ctrgcn_ntu_adjacency() {
    let l = Layout::ntu25();
    let a = ctrgcn_spatial(l);
    assert_eq!((a.k, a.v, a.data.len()), (3, 25, 3 * 25 * 25));
    let v = a.v;
    for i in 0..v {
        for j in 0..v {
            assert_eq!(a.get(0, i, j), if i == j { 1.0 } else { 0.0 });
        }
    }
    // Inward: A[parent, child] = 1 / (number of parents of child) = 1, so
    // every non-root column sums to 1 and the root's column to 0.
    for k in [1, 2] {
        for j in 0..v {
            let s: f32 = (0..v).map(|i| a.get(k, i, j)).sum();
            let want = if k == 1 {
                if j == l.root() {
                    0.0
                } else {
                    1.0
                }
            } else {
                // Outward: A[child, parent]; a column is non-zero when the
                // joint has children.
                let has_children = l.edges().iter().any(|&(_, p)| p == j);
                if has_children {
                    1.0
                } else {
                    0.0
                }
            };
            assert!((s - want).abs() < 1e-6, "k={k} col {j}: {s}");
        }
    }
    // Hand computed: inward row 20 (spine shoulder) gathers from its children
    // 1, 2, 4, 8 with weight 1 each.
    let row20: Vec<usize> = (0..v).filter(|&j| a.get(1, 20, j) != 0.0).collect();
    assert_eq!(row20, [1, 2, 4, 8]);
    // Outward: spine shoulder has 4 children, so column 20 holds 1/4 in rows
    // 1, 2, 4, 8.
    for i in [1, 2, 4, 8] {
        assert_eq!(a.get(2, i, 20), 0.25);
    }
    assert_eq!(a.get(2, 20, 20), 0.0);
    // Hand (7) has one child (thumb 22): outward A[22, 7] = 1; wrist (6)
    // inward A[6, 7] = 1.
    assert_eq!(a.get(2, 22, 7), 1.0);
    assert_eq!(a.get(1, 6, 7), 1.0);
    assert_eq!(a.get(1, 7, 6), 0.0);
}

#[test]
fn adjacency_to_tensor_keeps_layout() -> Result<()> {
    let a = ctrgcn_spatial(Layout::kinect20_ucla());
    let t = a.to_tensor(&candle_core::Device::Cpu)?;
    assert_eq!(t.dims(), [3, 20, 20]);
    let back: Vec<Vec<Vec<f32>>> = t.to_vec3()?;
    assert_eq!(back[1][2][1], a.get(1, 2, 1));
    assert_eq!(back[2][1][2], a.get(2, 1, 2));
    Ok(())
}

#[test]
fn stgcn_spatial_partition_ntu() {
    let l = Layout::ntu25();
    let v = l.num_joints();
    let a = stgcn_spatial(l, 20, 1, 1);
    assert_eq!((a.k, a.v), (3, v));
    // The normalized hop <= 1 adjacency (self loops + tree edges).
    let hop = hop_distance(l, 1);
    let binary: Vec<f32> = hop
        .iter()
        .map(|&h| if h <= 1 { 1.0 } else { 0.0 })
        .collect();
    let norm = normalize_digraph(&binary, v);
    for i in 0..v {
        for j in 0..v {
            let diag = if i == j { norm[i * v + j] } else { 0.0 };
            assert_eq!(a.get(0, i, j), diag);
            // The three subsets add up to the normalized adjacency.
            let s = a.get(0, i, j) + a.get(1, i, j) + a.get(2, i, j);
            assert!((s - norm[i * v + j]).abs() < 1e-7);
        }
    }
    // Spine shoulder has 4 neighbours + itself: 1/5 on the diagonal.
    assert_eq!(a.get(0, 20, 20), 0.2);
    // Centripetal: the centre gathers from a neighbour one hop out
    // (hop[j=20, c] = 0 < hop[i=1, c] = 1 -> further); a neighbour gathers
    // from the centre as "close": A[1, 20] in subset 1.
    assert_eq!(a.get(1, 1, 20), norm[v + 20]);
    assert_eq!(a.get(2, 20, 1), norm[20 * v + 1]);
    // Joints two or more hops from the centre compare as inf == inf, as in
    // the reference, and land in the root subset.
    assert_eq!(a.get(1, 13, 12), norm[13 * v + 12]);
    assert_eq!(a.get(2, 13, 12), 0.0);

    // max_hop 2: [hop 0, hop 1 root+close, hop 1 further, hop 2 root+close,
    // hop 2 further]. Values from numpy running the reference algorithm
    // (column sums of the hop <= 2 adjacency: 9 at joint 20, 7 at joint 0,
    // 3 at joint 3, 8 at joint 1, 6 at joint 12).
    let a2 = stgcn_spatial(l, 20, 2, 1);
    assert_eq!(a2.k, 5);
    assert_eq!(a2.get(3, 3, 20), 1.0 / 9.0);
    assert_eq!(a2.get(4, 20, 3), 1.0 / 3.0);
    assert_eq!(a2.get(3, 0, 20), 1.0 / 9.0);
    assert_eq!(a2.get(4, 20, 0), 1.0 / 7.0);
    assert_eq!(a2.get(3, 12, 1), 0.125);
    assert_eq!(a2.get(1, 13, 12), 1.0 / 6.0);
    let a3 = stgcn_spatial(l, 20, 2, 2);
    assert_eq!(a3.k, 3);
}

#[test]
fn gap_parts_match_the_paper() {
    let ntu = gap_parts(Layout::ntu25());
    let range = |a: usize, b: usize| (a..=b).collect::<Vec<_>>();
    assert_eq!(ntu[0], [2, 3, 20]);
    assert_eq!(ntu[1], [range(4, 11), range(21, 24)].concat());
    assert_eq!(ntu[2], [0, 1, 2, 12, 16]);
    assert_eq!(ntu[3], range(12, 19));
    let ucla = gap_parts(Layout::kinect20_ucla());
    assert_eq!(ucla[0], [2, 3]);
    assert_eq!(ucla[1], range(4, 11));
    assert_eq!(ucla[2], [0, 1, 12, 16]);
    assert_eq!(ucla[3], range(12, 19));
    // UTD: the same joints by name.
    let utd_l = Layout::kinect20_utd();
    let ucla_l = Layout::kinect20_ucla();
    let utd = gap_parts(utd_l);
    for (pu, pc) in utd.iter().zip(&ucla) {
        let a: BTreeSet<&str> = pu.iter().map(|&j| utd_l.joint_names()[j]).collect();
        let b: BTreeSet<&str> = pc.iter().map(|&j| ucla_l.joint_names()[j]).collect();
        assert_eq!(a, b);
    }
    for l in Layout::all() {
        for p in gap_parts(l) {
            assert!(!p.is_empty(), "{}", l.name());
            assert!(p.iter().all(|&j| j < l.num_joints()));
        }
    }
}

#[test]
fn regions_partition_every_layout() {
    for l in Layout::all() {
        let rs = regions(l);
        assert_eq!(rs.iter().map(|(r, _)| *r).collect::<Vec<_>>(), Region::ALL);
        let mut all: Vec<usize> = rs.iter().flat_map(|(_, j)| j.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..l.num_joints()).collect::<Vec<_>>(), "{}", l.name());
        // Every region is non-empty, and flipping swaps left and right.
        let flip = l.flip_map();
        for (r, joints) in &rs {
            assert!(!joints.is_empty(), "{}: {}", l.name(), r.name());
            let mut mirrored: Vec<usize> = joints.iter().map(|&j| flip[j]).collect();
            mirrored.sort_unstable();
            assert_eq!(mirrored, region_joints(l, r.mirror()));
        }
    }
    let coco = regions(Layout::coco17());
    assert_eq!(coco[1].1, [5, 6, 11, 12]); // shoulders and hips
    assert_eq!(coco[2].1, [7, 9]); // left elbow, left wrist
}

#[test]
fn utd_ucla_is_a_permutation_both_ways() -> Result<()> {
    let utd = Layout::kinect20_utd();
    let ucla = Layout::kinect20_ucla();
    let there = mapping(utd, ucla)?;
    let back = mapping(ucla, utd)?;
    assert!(there.is_permutation() && back.is_permutation());
    let pose: Vec<[f32; 3]> = (0..20)
        .map(|j| [j as f32, 2.0 * j as f32, -(j as f32)])
        .collect();
    assert_eq!(back.apply(&there.apply(&pose)?)?, pose);
    // UTD head (0) is UCLA joint 3.
    assert_eq!(there.apply(&pose)?[3], pose[0]);
    // The matrices compose to the identity.
    let (m1, m2) = (there.to_matrix(), back.to_matrix());
    for i in 0..20 {
        for j in 0..20 {
            let s: f32 = (0..20).map(|k| m2[i * 20 + k] * m1[k * 20 + j]).sum();
            assert_eq!(s, if i == j { 1.0 } else { 0.0 });
        }
    }
    Ok(())
}

#[test]
fn supported_and_refused_mappings() -> Result<()> {
    let ntu = Layout::ntu25();
    let mp = Layout::mediapipe33();
    let coco = Layout::coco17();
    for from in Layout::all() {
        assert!(mapping(from, from)?.is_permutation());
    }
    for (from, to) in [
        (mp, ntu),
        (mp, Layout::kinect20_ucla()),
        (mp, Layout::kinect20_utd()),
        (mp, coco),
        (coco, ntu),
        (coco, Layout::kinect20_ucla()),
        (coco, Layout::kinect20_utd()),
        (ntu, Layout::kinect20_ucla()),
        (Layout::kinect20_utd(), ntu),
    ] {
        let m = mapping(from, to)?;
        // Weights of every target joint sum to 1.
        let w = m.to_matrix();
        let vf = from.num_joints();
        for t in 0..to.num_joints() {
            let s: f32 = w[t * vf..(t + 1) * vf].iter().sum();
            assert!(
                (s - 1.0).abs() < 1e-6,
                "{} -> {} joint {t}",
                from.name(),
                to.name()
            );
        }
    }
    assert!(matches!(
        mapping(ntu, coco),
        Err(skelact::Error::Unknown {
            kind: "mapping",
            ..
        })
    ));
    assert!(mapping(ntu, mp).is_err());
    assert!(mapping(coco, mp).is_err());

    // MediaPipe -> NTU: spine mid is the mean of the hip and shoulder
    // centres; the hand is between index and pinky knuckles.
    let m = mapping(mp, ntu)?;
    let spine_mid = ntu.joint_index("spine_mid")?;
    assert!(m.is_derived(spine_mid));
    let names: BTreeSet<&str> = m
        .sources(spine_mid)
        .iter()
        .map(|&(j, _)| mp.joint_names()[j])
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["left_hip", "right_hip", "left_shoulder", "right_shoulder"])
    );
    let hand = ntu.joint_index("left_hand")?;
    assert_eq!(
        m.sources(hand),
        [
            (mp.joint_index("left_pinky")?, 0.5),
            (mp.joint_index("left_index")?, 0.5)
        ]
    );
    assert!(!m.is_derived(ntu.joint_index("left_elbow")?));
    // NTU -> Kinect v1: spine_base is the hip centre, not derived.
    let k = mapping(ntu, Layout::kinect20_ucla())?;
    assert_eq!(k.sources(0), [(0, 1.0)]);
    assert!(!k.is_derived(0));
    Ok(())
}

#[test]
fn confidence_of_derived_joints_is_the_minimum() -> Result<()> {
    let mp = Layout::mediapipe33();
    let ucla = Layout::kinect20_ucla();
    let m = mapping(mp, ucla)?;
    let pose = vec![[1.0f32, 2.0, 3.0]; 33];
    let mut conf = vec![0.9f32; 33];
    conf[mp.joint_index("left_hip")?] = 0.2;
    let (out, c) = m.apply_with_confidence(&pose, &conf)?;
    assert_eq!(out.len(), 20);
    for p in &out {
        for (a, b) in p.iter().zip([1.0, 2.0, 3.0]) {
            assert!((a - b).abs() < 1e-6);
        }
    }
    assert_eq!(c[ucla.joint_index("hip_center")?], 0.2);
    assert_eq!(c[ucla.joint_index("spine")?], 0.2);
    assert_eq!(c[ucla.joint_index("left_hip")?], 0.2);
    assert_eq!(c[ucla.joint_index("right_hip")?], 0.9);
    assert_eq!(c[ucla.joint_index("head")?], 0.9);
    // Wrong lengths are errors, not panics.
    assert!(m.apply(&pose[..10]).is_err());
    assert!(m.apply_with_confidence(&pose, &conf[..3]).is_err());
    Ok(())
}

#[test]
fn mapping_matrix_applies_to_tensors() -> Result<()> {
    let mp = Layout::mediapipe33();
    let ntu = Layout::ntu25();
    let m = mapping(mp, ntu)?;
    let pose: Vec<[f32; 3]> = (0..33)
        .map(|j| [j as f32 * 0.1, (j * j) as f32 * 0.01, 1.0 - j as f32 * 0.05])
        .collect();
    let dev = candle_core::Device::Cpu;
    let flat: Vec<f32> = pose.iter().flatten().copied().collect();
    let x = candle_core::Tensor::from_vec(flat, (33, 3), &dev)?;
    let y: Vec<Vec<f32>> = m.to_tensor(&dev)?.matmul(&x)?.to_vec2()?;
    let direct = m.apply(&pose)?;
    for (a, b) in y.iter().zip(&direct) {
        for (p, q) in a.iter().zip(b) {
            assert!((p - q).abs() < 1e-5);
        }
    }
    Ok(())
}

fn pose_strategy(v: usize) -> impl Strategy<Value = Vec<[f32; 3]>> {
    prop::collection::vec(prop::array::uniform3(-2.0f32..2.0), v)
}

proptest! {
    #[test]
    fn mapping_through_ntu_is_consistent(pose in pose_strategy(33)) {
        // MediaPipe -> NTU -> Kinect v1 equals MediaPipe -> Kinect v1, and
        // Kinect v1 -> NTU -> Kinect v1 is the identity.
        let mp = Layout::mediapipe33();
        let ntu = Layout::ntu25();
        let utd = Layout::kinect20_utd();
        let via = mapping(ntu, utd).unwrap().apply(
            &mapping(mp, ntu).unwrap().apply(&pose).unwrap()).unwrap();
        let direct = mapping(mp, utd).unwrap().apply(&pose).unwrap();
        for (a, b) in via.iter().zip(&direct) {
            for (p, q) in a.iter().zip(b) {
                prop_assert!((p - q).abs() < 1e-5);
            }
        }
        let round = mapping(ntu, utd).unwrap().apply(
            &mapping(utd, ntu).unwrap().apply(&direct).unwrap()).unwrap();
        prop_assert_eq!(round, direct);
    }

    #[test]
    fn flip_is_an_involution_on_poses(pose in pose_strategy(33), which in 0usize..5) {
        let l = Layout::all()[which];
        let pose = &pose[..l.num_joints()];
        let flip = l.flip_map();
        let mirror = |p: &[[f32; 3]]| -> Vec<[f32; 3]> {
            flip.iter().map(|&f| { let [x, y, z] = p[f]; [-x, y, z] }).collect()
        };
        prop_assert_eq!(mirror(&mirror(pose)), pose.to_vec());
    }

    #[test]
    fn permutation_mappings_preserve_bone_lengths(pose in pose_strategy(20)) {
        let utd = Layout::kinect20_utd();
        let ucla = Layout::kinect20_ucla();
        let out = mapping(utd, ucla).unwrap().apply(&pose).unwrap();
        let len = |p: &[[f32; 3]], a: usize, b: usize| -> f32 {
            (0..3).map(|c| (p[a][c] - p[b][c]).powi(2)).sum::<f32>()
        };
        let mut a: Vec<f32> = utd.edges().iter().map(|&(c, p)| len(&pose, c, p)).collect();
        let mut b: Vec<f32> = ucla.edges().iter().map(|&(c, p)| len(&out, c, p)).collect();
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        prop_assert_eq!(a, b);
    }
}
