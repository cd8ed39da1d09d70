//! 3D lifting without a camera: projection round trips for librealsense's
//! distortion models, lifting of a synthetic RGB-D scene whose true joints
//! are known, and property tests that arbitrary images and landmarks give
//! low confidence or a typed error, never a panic. (The parity of the
//! formulas with the SDK itself is in tests/realsense.rs.)

use proptest::prelude::*;
use skelact::lift::{DepthImage, DepthLookup, Distortion, Intrinsics, Landmarks2d, Lifter};
use skelact::skeleton::Layout;
use skelact::source::{Frame, Pose};

/// Round trip in pixels: f32 arithmetic over ten fixed-point iterations.
const ROUND_TRIP_PX: f32 = 1e-3;

fn camera(model: Distortion, coeffs: [f32; 5]) -> Intrinsics {
    Intrinsics {
        model,
        coeffs,
        ..Intrinsics::pinhole(640, 480, 390.43, 390.43, 331.39, 242.19)
    }
}

#[test]
fn deprojection_inverts_projection_for_each_invertible_model() {
    // Coefficients of the size real cameras report (D400 colour: inverse
    // Brown-Conrady; T265 fisheye: Kannala-Brandt).
    let cases = [
        (Distortion::None, [0.0; 5]),
        (
            Distortion::InverseBrownConrady,
            [-0.05, 0.06, 0.0008, 0.0005, -0.02],
        ),
        (
            Distortion::BrownConrady,
            [0.12, -0.25, 0.001, -0.0015, 0.08],
        ),
        (Distortion::KannalaBrandt4, [-0.01, 0.04, -0.04, 0.015, 0.0]),
    ];
    for (model, coeffs) in cases {
        let cam = camera(model, coeffs);
        for y in (0..480).step_by(40) {
            for x in (0..640).step_by(40) {
                let px = [x as f32, y as f32];
                let depth = 0.4 + 0.01 * (x % 300) as f32;
                let p = cam.deproject(px, depth);
                assert_eq!(p[2], depth);
                let back = cam.project(p);
                let err = (back[0] - px[0]).hypot(back[1] - px[1]);
                assert!(err < ROUND_TRIP_PX, "{model:?} {px:?} -> {p:?} -> {back:?}");
            }
        }
    }
}

#[test]
fn pinhole_deprojection_is_the_textbook_formula() {
    let cam = camera(Distortion::None, [0.0; 5]);
    let p = cam.deproject([331.39 + 390.43, 242.19 - 2.0 * 390.43], 2.0);
    assert!(
        (p[0] - 2.0).abs() < 1e-5 && (p[1] + 4.0).abs() < 1e-5 && p[2] == 2.0,
        "{p:?}"
    );
}

#[test]
fn unknown_distortion_and_bad_intrinsics_are_refused() {
    assert!(Distortion::from_rs2(6).is_err());
    for v in 0..6 {
        assert_eq!(Distortion::from_rs2(v).unwrap().to_rs2(), v);
    }
    let mut cam = camera(Distortion::None, [0.0; 5]);
    cam.fx = 0.0;
    assert!(cam.validate().is_err());
    cam.fx = f32::NAN;
    assert!(cam.validate().is_err());
    assert!(Intrinsics::pinhole(0, 10, 1.0, 1.0, 0.0, 0.0)
        .validate()
        .is_err());
}

// ---------------------------------------------------------------------------
// A synthetic RGB-D scene.

const W: usize = 320;
const H: usize = 240;
const WALL_MM: u16 = 4000;
/// Radius of the spheres the body is made of, metres.
const LIMB_R: f32 = 0.05;
/// Exact landmarks: the window median against the centre pixel's surface
/// (curvature of a 5 cm sphere over 7 x 7 pixels at 3 m, 1 mm depth steps).
const SURFACE_EXACT_M: f32 = 0.015;
/// 1.5 px landmark noise (4.5 mm laterally at 3 m) and holes.
const SURFACE_NOISY_M: f32 = 0.035;

fn scene_camera() -> Intrinsics {
    Intrinsics::pinhole(W, H, 300.0, 300.0, 159.5, 119.5)
}

/// A person 3 m in front of the camera, facing it, arms out: MediaPipe-33
/// joints in camera coordinates (x right, y down, z forward), metres.
fn person() -> Vec<[f32; 3]> {
    let layout = Layout::mediapipe33();
    let at = |name: &str| -> [f32; 3] {
        // Person's left is image right (+x) when facing the camera.
        let (x, y, dz) = match name {
            "nose" => (0.0, -0.62, -0.08),
            "left_eye_inner" => (0.015, -0.66, -0.07),
            "left_eye" => (0.03, -0.66, -0.07),
            "left_eye_outer" => (0.045, -0.66, -0.06),
            "right_eye_inner" => (-0.015, -0.66, -0.07),
            "right_eye" => (-0.03, -0.66, -0.07),
            "right_eye_outer" => (-0.045, -0.66, -0.06),
            "left_ear" => (0.08, -0.64, 0.0),
            "right_ear" => (-0.08, -0.64, 0.0),
            "mouth_left" => (0.025, -0.57, -0.07),
            "mouth_right" => (-0.025, -0.57, -0.07),
            "left_shoulder" => (0.19, -0.42, 0.0),
            "right_shoulder" => (-0.19, -0.42, 0.0),
            "left_elbow" => (0.40, -0.30, -0.05),
            "right_elbow" => (-0.38, -0.42, -0.10),
            "left_wrist" => (0.58, -0.20, -0.10),
            "right_wrist" => (-0.55, -0.55, -0.25),
            "left_pinky" => (0.64, -0.17, -0.10),
            "right_pinky" => (-0.61, -0.58, -0.27),
            "left_index" => (0.65, -0.19, -0.12),
            "right_index" => (-0.62, -0.56, -0.28),
            "left_thumb" => (0.61, -0.22, -0.13),
            "right_thumb" => (-0.58, -0.53, -0.28),
            "left_hip" => (0.12, 0.10, 0.0),
            "right_hip" => (-0.12, 0.10, 0.0),
            "left_knee" => (0.14, 0.52, -0.04),
            "right_knee" => (-0.13, 0.52, -0.02),
            "left_ankle" => (0.15, 0.92, 0.0),
            "right_ankle" => (-0.14, 0.92, 0.0),
            "left_heel" => (0.15, 0.97, 0.04),
            "right_heel" => (-0.14, 0.97, 0.04),
            "left_foot_index" => (0.16, 0.99, -0.12),
            "right_foot_index" => (-0.15, 0.99, -0.12),
            other => panic!("no position for {other}"),
        };
        [x, y, 3.0 + dz]
    };
    layout.joint_names().iter().map(|n| at(n)).collect()
}

/// Renders spheres of radius `LIMB_R` along every bone (and across the
/// torso) in front of a wall at 4 m: depth in mm.
fn render(joints: &[[f32; 3]], cam: &Intrinsics) -> Vec<u16> {
    let layout = Layout::mediapipe33();
    let idx = |n: &str| layout.find(n).unwrap();
    let mut segments: Vec<(usize, usize)> = layout.edges();
    for (a, b) in [
        ("left_shoulder", "right_shoulder"),
        ("left_hip", "right_hip"),
        ("left_shoulder", "right_hip"),
        ("right_shoulder", "left_hip"),
        ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"),
    ] {
        segments.push((idx(a), idx(b)));
    }
    let mut depth = vec![WALL_MM; W * H];
    for (a, b) in segments {
        let (pa, pb) = (joints[a], joints[b]);
        let len =
            ((pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2) + (pa[2] - pb[2]).powi(2)).sqrt();
        let steps = (len / 0.01).ceil().max(1.0) as usize;
        for s in 0..=steps {
            let t = s as f32 / steps as f32;
            let c = [0, 1, 2].map(|k| pa[k] + t * (pb[k] - pa[k]));
            let [u, v] = cam.project(c);
            let rp = (LIMB_R * cam.fx / c[2]).ceil() as i64 + 1;
            for y in (v as i64 - rp)..=(v as i64 + rp) {
                for x in (u as i64 - rp)..=(u as i64 + rp) {
                    if x < 0 || y < 0 || x >= W as i64 || y >= H as i64 {
                        continue;
                    }
                    let q = cam.deproject([x as f32, y as f32], c[2]);
                    let d2 = (q[0] - c[0]).powi(2) + (q[1] - c[1]).powi(2);
                    if d2 < LIMB_R * LIMB_R {
                        let z = c[2] - (LIMB_R * LIMB_R - d2).sqrt();
                        let mm = (z * 1000.0).round() as u16;
                        let px = &mut depth[y as usize * W + x as usize];
                        *px = (*px).min(mm);
                    }
                }
            }
        }
    }
    depth
}

/// A small deterministic generator (SplitMix64) for noise and holes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The landmarks a perfect detector would report, with `noise_px` of
/// uniform pixel noise.
fn landmarks(joints: &[[f32; 3]], cam: &Intrinsics, noise_px: f32, rng: &mut Rng) -> Landmarks2d {
    Landmarks2d {
        pixels: joints
            .iter()
            .map(|&p| {
                let [u, v] = cam.project(p);
                [
                    u + noise_px * (2.0 * rng.next() - 1.0),
                    v + noise_px * (2.0 * rng.next() - 1.0),
                ]
            })
            .collect(),
        visibility: vec![0.9; joints.len()],
    }
}

/// The visible surface point at each joint's exact pixel (skelact axes):
/// what a perfect lifting returns (a joint hidden behind another limb
/// lifts to that limb's surface, as a camera sees it).
fn visible_surface(truth: &[[f32; 3]], depth: &[u16], cam: &Intrinsics) -> Vec<[f32; 3]> {
    truth
        .iter()
        .map(|&t| {
            let px = cam.project(t);
            let d = depth[px[1].round() as usize * W + px[0].round() as usize];
            let [x, y, z] = cam.deproject(px, d as f32 * 0.001);
            [x, -y, z]
        })
        .collect()
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Every joint lifted, within `tol_m` of the visible surface at its true
/// pixel, and never on the wall (which is at least 0.9 m behind any joint);
/// returns the largest distance to the true joint centre.
fn assert_lifted_near_truth(
    pose: &Pose,
    truth: &[[f32; 3]],
    surface: &[[f32; 3]],
    tol_m: f32,
) -> f32 {
    let names = Layout::mediapipe33().joint_names();
    let mut worst = 0f32;
    for (j, p) in pose.joints.iter().enumerate() {
        assert!(pose.confidence[j] > 0.0, "joint {} not lifted", names[j]);
        let t = [truth[j][0], -truth[j][1], truth[j][2]];
        let e_surface = dist(*p, surface[j]);
        let e_joint = dist(*p, t);
        assert!(
            e_surface < tol_m && e_joint < 0.2,
            "joint {} lifted to {p:?}; visible surface {:?} ({e_surface:.3} m), joint {t:?} ({e_joint:.3} m)",
            names[j],
            surface[j]
        );
        worst = worst.max(e_joint);
    }
    worst
}

#[test]
fn synthetic_scene_lifts_to_the_true_joints() {
    let cam = scene_camera();
    let truth = person();
    let depth = render(&truth, &cam);
    let img = DepthImage::new(&depth, W, H, 0.001).unwrap();
    let mut lifter = Lifter::new(Layout::mediapipe33(), DepthLookup::default()).unwrap();
    let mut pose = Pose::new(33);
    let mut rng = Rng(7);

    // Exact landmarks: every joint lands on its sphere's front surface.
    let surface = visible_surface(&truth, &depth, &cam);
    lifter
        .lift(
            &landmarks(&truth, &cam, 0.0, &mut rng),
            &img,
            &cam,
            &mut pose,
        )
        .unwrap();
    let exact = assert_lifted_near_truth(&pose, &truth, &surface, SURFACE_EXACT_M);
    assert!(
        pose.confidence.iter().all(|&c| (c - 0.9).abs() < 1e-6),
        "{:?}",
        pose.confidence
    );

    // Detector noise of 1.5 px: landmarks on limb edges see the wall
    // behind; the nearest-cluster rule keeps them on the body.
    let noisy = landmarks(&truth, &cam, 1.5, &mut rng);
    lifter.lift(&noisy, &img, &cam, &mut pose).unwrap();
    let worst = assert_lifted_near_truth(&pose, &truth, &surface, SURFACE_NOISY_M);

    // 60 % of the pixels become holes: still lifted, lower confidence
    // (validity = min(1, 2 x valid share) ~ 0.8).
    let mut holey = depth.clone();
    for d in &mut holey {
        if rng.next() < 0.6 {
            *d = 0;
        }
    }
    let img_h = DepthImage::new(&holey, W, H, 0.001).unwrap();
    lifter.lift(&noisy, &img_h, &cam, &mut pose).unwrap();
    let worst_h = assert_lifted_near_truth(&pose, &truth, &surface, SURFACE_NOISY_M);
    let mean = pose.confidence.iter().sum::<f32>() / 33.0;
    assert!(
        pose.confidence.iter().all(|&c| c > 0.0 && c <= 0.9) && mean < 0.8,
        "{:?}",
        pose.confidence
    );
    eprintln!("distance to the true joint centres, max over 33 joints: exact {exact:.3} m, 1.5 px noise {worst:.3} m, + 60 % holes {worst_h:.3} m");

    // The single pixel under the landmark would have put edge joints on
    // the wall: check the scene really has such joints.
    let on_wall = noisy
        .pixels
        .iter()
        .filter(|p| img.raw(p[0].round() as usize, p[1].round() as usize) == Some(WALL_MM))
        .count();
    eprintln!("{on_wall} of 33 noisy landmarks sit on a wall pixel");
}

#[test]
fn landmarks_just_off_the_silhouette_stay_on_the_body() {
    // Move each landmark sideways until its pixel is on the wall while most
    // of its 7 x 7 window is still body: a detector's error at a limb's
    // edge. Reading the one pixel would put the joint 1 m back, on the wall.
    let cam = scene_camera();
    let truth = person();
    let depth = render(&truth, &cam);
    let img = DepthImage::new(&depth, W, H, 0.001).unwrap();
    let mut lifter = Lifter::new(Layout::mediapipe33(), DepthLookup::default()).unwrap();
    let mut pose = Pose::new(33);
    let mut rng = Rng(5);
    let mut lm = landmarks(&truth, &cam, 0.0, &mut rng);
    let body = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && (x as usize) < W
            && (y as usize) < H
            && depth[y as usize * W + x as usize] < WALL_MM
    };
    let mut moved = Vec::new();
    for j in 0..33 {
        let [u, v] = lm.pixels[j];
        let (u, v) = (u.round() as i64, v.round() as i64);
        'search: for dx in [1i64, -1] {
            for step in 1..12 {
                let x = u + dx * step;
                if body(x, v) {
                    continue;
                }
                let share = (-3..=3)
                    .flat_map(|oy| (-3..=3).map(move |ox| (ox, oy)))
                    .filter(|&(ox, oy)| body(x + ox, v + oy))
                    .count();
                if share >= 20 {
                    lm.pixels[j] = [x as f32, v as f32];
                    moved.push(j);
                }
                break 'search;
            }
        }
    }
    assert!(moved.len() >= 5, "only {} edge landmarks", moved.len());
    lifter.lift(&lm, &img, &cam, &mut pose).unwrap();
    for &j in &moved {
        let z = pose.joints[j][2];
        let zt = truth[j][2];
        assert!(
            pose.confidence[j] > 0.0 && z < zt + 0.1,
            "{}: lifted z {z} (joint at {zt}, wall at 4 m)",
            Layout::mediapipe33().joint_names()[j]
        );
    }
}

#[test]
fn invisible_outside_and_holed_landmarks_get_zero_confidence() {
    let cam = scene_camera();
    let truth = person();
    let mut depth = render(&truth, &cam);
    let mut rng = Rng(3);
    let mut lm = landmarks(&truth, &cam, 0.0, &mut rng);
    let nose = Layout::mediapipe33().find("nose").unwrap();
    let wrist = Layout::mediapipe33().find("left_wrist").unwrap();
    let knee = Layout::mediapipe33().find("left_knee").unwrap();
    lm.visibility[nose] = 0.0;
    lm.pixels[wrist] = [-40.0, 10.0];
    let [u, v] = lm.pixels[knee];
    for y in (v as usize - 6)..=(v as usize + 6) {
        for x in (u as usize - 6)..=(u as usize + 6) {
            depth[y * W + x] = 0;
        }
    }
    let img = DepthImage::new(&depth, W, H, 0.001).unwrap();
    let mut lifter = Lifter::new(Layout::mediapipe33(), DepthLookup::default()).unwrap();
    let mut pose = Pose::new(33);
    lifter.lift(&lm, &img, &cam, &mut pose).unwrap();
    for j in [nose, wrist, knee] {
        assert_eq!(pose.confidence[j], 0.0);
        assert!(pose.joints[j].iter().all(|a| a.is_nan()));
    }
    assert_eq!(pose.confidence.iter().filter(|&&c| c > 0.0).count(), 30);
}

#[test]
fn lifting_to_ntu25_maps_and_flips_y() {
    let cam = scene_camera();
    let truth = person();
    let depth = render(&truth, &cam);
    let img = DepthImage::new(&depth, W, H, 0.001).unwrap();
    let mut rng = Rng(11);
    let lm = landmarks(&truth, &cam, 0.0, &mut rng);
    let ntu = Layout::ntu25();
    let mut lifter = Lifter::new(ntu, DepthLookup::default()).unwrap();
    let mut frame = Frame::new(ntu, 2);
    let kept = lifter
        .lift_frame(&[lm.clone(), lm], &img, &cam, &mut frame)
        .unwrap();
    assert_eq!(kept, 2);
    let pose = &frame.people[0];
    assert_eq!(pose.joints.len(), 25);
    assert!(
        pose.confidence.iter().all(|&c| c > 0.0),
        "{:?}",
        pose.confidence
    );
    let (mp, _) = lifter.landmarks_3d();
    let mpl = Layout::mediapipe33();
    let j = |n: &str| pose.joints[ntu.find(n).unwrap()];
    let m = |n: &str| mp[mpl.find(n).unwrap()];
    // spine_base = mean of the hips; the head is above it (y up).
    let hips = [0, 1, 2].map(|k| 0.5 * (m("left_hip")[k] + m("right_hip")[k]));
    for (a, b) in j("spine_base").iter().zip(hips) {
        assert!((a - b).abs() < 1e-6);
    }
    assert!(j("head")[1] > j("spine_base")[1] + 0.5);
    assert!(j("left_foot")[1] < j("spine_base")[1] - 0.5);
    // Frame layout must match the lifter's.
    let mut wrong = Frame::new(Layout::kinect20_ucla(), 1);
    assert!(lifter.lift_frame(&[], &img, &cam, &mut wrong).is_err());
}

#[test]
fn shape_errors_are_typed() {
    let cam = scene_camera();
    let depth = vec![1000u16; W * H];
    let img = DepthImage::new(&depth, W, H, 0.001).unwrap();
    let mut lifter = Lifter::new(Layout::ntu25(), DepthLookup::default()).unwrap();
    let mut pose = Pose::new(25);
    let short = Landmarks2d {
        pixels: vec![[1.0, 1.0]; 17],
        visibility: vec![1.0; 17],
    };
    assert!(matches!(
        lifter.lift(&short, &img, &cam, &mut pose),
        Err(skelact::Error::Shape { .. })
    ));
    let lm = Landmarks2d {
        pixels: vec![[1.0, 1.0]; 33],
        visibility: vec![1.0; 33],
    };
    let other = Intrinsics::pinhole(640, 480, 300.0, 300.0, 320.0, 240.0);
    assert!(matches!(
        lifter.lift(&lm, &img, &other, &mut pose),
        Err(skelact::Error::Mismatch { .. })
    ));
    let bad = DepthLookup {
        cluster_gap_m: -1.0,
        ..DepthLookup::default()
    };
    assert!(Lifter::new(Layout::ntu25(), bad).is_err());
}

fn coord() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        -3.0f32..15.0,
        Just(f32::NAN),
        Just(f32::INFINITY)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Arbitrary depth images, landmarks and intrinsics: an error or a pose
    /// whose joints are finite exactly where the confidence is positive.
    #[test]
    fn lifting_arbitrary_input_never_panics(
        w in 1usize..12,
        h in 1usize..12,
        values in prop::collection::vec(prop_oneof![Just(0u16), any::<u16>(), 500u16..3000], 144),
        pixels in prop::collection::vec((coord(), coord()), 33),
        vis in prop::collection::vec(prop_oneof![any::<f32>(), 0.0f32..1.0], 33),
        f in prop_oneof![any::<f32>(), 1.0f32..500.0],
        pp in (coord(), coord()),
        model in 0u32..6,
        coeffs in prop::array::uniform5(prop_oneof![any::<f32>(), -0.3f32..0.3]),
        scale in prop_oneof![Just(0.001f32), any::<f32>()],
    ) {
        let depth = &values[..w * h];
        let Ok(img) = DepthImage::new(depth, w, h, scale) else { return Ok(()) };
        let cam = Intrinsics {
            width: w, height: h, ppx: pp.0, ppy: pp.1, fx: f, fy: f,
            model: Distortion::from_rs2(model).unwrap(), coeffs,
        };
        let lm = Landmarks2d { pixels: pixels.iter().map(|&(x, y)| [x, y]).collect(), visibility: vis };
        for layout in [Layout::mediapipe33(), Layout::ntu25(), Layout::kinect20_ucla()] {
            let mut lifter = Lifter::new(layout, DepthLookup::default()).unwrap();
            let mut pose = Pose::new(layout.num_joints());
            if lifter.lift(&lm, &img, &cam, &mut pose).is_err() {
                continue;
            }
            prop_assert_eq!(pose.joints.len(), layout.num_joints());
            for (p, &c) in pose.joints.iter().zip(&pose.confidence) {
                prop_assert!((0.0..=1.0).contains(&c));
                prop_assert_eq!(c > 0.0, p.iter().all(|a| a.is_finite()));
            }
            if depth.iter().all(|&d| d == 0) {
                prop_assert!(pose.confidence.iter().all(|&c| c == 0.0));
            }
        }
    }

    /// The depth at a pixel is one measured in its window (or the mean of
    /// two), with validity in [0, 1], or nothing at all.
    #[test]
    fn depth_lookup_returns_a_measured_depth_or_none(
        w in 1usize..16,
        h in 1usize..16,
        values in prop::collection::vec(prop_oneof![Just(0u16), 800u16..1200, 2500u16..4000], 256),
        px in (coord(), coord()),
        radius in 0usize..5,
    ) {
        let depth = &values[..w * h];
        let img = DepthImage::new(depth, w, h, 0.001).unwrap();
        let lookup = DepthLookup { radius_px: radius, ..DepthLookup::default() };
        let s = lookup.sample(&img, [px.0, px.1], &mut Vec::new());
        prop_assert!((0.0..=1.0).contains(&s.validity));
        prop_assert_eq!(s.validity > 0.0, s.depth_m.is_finite());
        if s.depth_m.is_finite() {
            let near = |m: f32| depth.iter().any(|&d| d != 0 && (d as f32 * 0.001 - m).abs() < 0.3);
            prop_assert!(near(s.depth_m), "{} not near any depth", s.depth_m);
        }
    }
}
