//! RealSense playback and calibration on a real recording (feature
//! `realsense`): ../shared/data/realsense/single_depth_color_640x480.bag, a
//! D435 recording of an office wall from librealsense's test resources
//! (2 depth frames 640x480 z16, 1 colour frame 640x480 rgb8, depth unit
//! 1 mm, depth intrinsics fx = fy = 390.43, cx = 331.39, cy = 242.19).
//!
//! The deprojection checks compare skelact's pure-Rust
//! [`Intrinsics::deproject`] / [`Intrinsics::project`] with the SDK's own
//! `rs2_deproject_pixel_to_point` / `rs2_project_point_to_pixel`, on the
//! file's calibration and real depths, and on every distortion model with
//! non-zero coefficients.
#![cfg(feature = "realsense")]

mod common;

use realsense_sys as sys;
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use skelact::lift::{DepthLookup, Distortion, Intrinsics, LandmarkDetector, Landmarks2d};
use skelact::model::directory::build_encoder;
use skelact::model::{builtin, ModelDir};
use skelact::skeleton::Layout;
use skelact::source::realsense::RealSenseSource;
use skelact::source::realsense::{
    intrinsics_to_rs2, summarize_file, Capture, CaptureConfig, Next, RgbdFrame,
};
use skelact::source::{Frame, JointSource};
use skelact::Error;

const BAG: &str = "realsense/single_depth_color_640x480.bag";

/// Calibration values are stored as f32 in the file; the data README rounds
/// them to 2 decimals.
const README_ROUNDING: f32 = 0.005;
/// f32 formulas against the SDK's (which evaluate some terms in double):
/// relative error.
const F32_REL: f32 = 1e-5;

fn sdk_deproject(i: &Intrinsics, px: [f32; 2], depth: f32) -> [f32; 3] {
    let raw = intrinsics_to_rs2(i);
    let mut out = [0f32; 3];
    // SAFETY: plain arithmetic on the given buffers.
    unsafe { sys::rs2_deproject_pixel_to_point(out.as_mut_ptr(), &raw, px.as_ptr(), depth) };
    out
}

fn sdk_project(i: &Intrinsics, p: [f32; 3]) -> [f32; 2] {
    let raw = intrinsics_to_rs2(i);
    let mut out = [0f32; 2];
    // SAFETY: plain arithmetic on the given buffers.
    unsafe { sys::rs2_project_point_to_pixel(out.as_mut_ptr(), &raw, p.as_ptr()) };
    out
}

fn assert_close<const N: usize>(what: &str, got: [f32; N], want: [f32; N], rel: f32) {
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}: got {got:?}, SDK {want:?}"
        );
    }
}

#[test]
fn summary_counts_every_frame_and_reads_the_calibration() {
    let Some(bag) = common::shared_data(BAG) else {
        return;
    };
    let s = summarize_file(&bag).unwrap();
    assert_eq!(s.device, "Intel RealSense D435");
    assert_eq!(s.depth_scale_m, Some(0.001));
    assert_eq!(s.streams.len(), 2, "{s:#?}");
    let depth = s.streams.iter().find(|c| c.stream.kind == "Depth").unwrap();
    let color = s.streams.iter().find(|c| c.stream.kind == "Color").unwrap();
    assert_eq!((depth.stream.format.as_str(), depth.frames), ("Z16", 2));
    assert_eq!((color.stream.format.as_str(), color.frames), ("RGB8", 1));
    let d = depth.stream.intrinsics.unwrap();
    assert_eq!((d.width, d.height), (640, 480));
    for (got, want) in [
        (d.fx, 390.43),
        (d.fy, 390.43),
        (d.ppx, 331.39),
        (d.ppy, 242.19),
    ] {
        assert!((got - want).abs() <= README_ROUNDING, "{d:?}");
    }
    let c = color.stream.intrinsics.unwrap();
    assert_eq!((c.width, c.height), (640, 480));
}

#[test]
fn playback_gives_the_aligned_frame_then_ends() {
    let Some(bag) = common::shared_data(BAG) else {
        return;
    };
    let mut cap = Capture::open(&CaptureConfig::file(&bag)).unwrap();
    assert!(cap.is_playback());
    assert_eq!(cap.depth_scale_m(), 0.001);
    let mut f = RgbdFrame::default();
    // The one colour frame (t = 360713.5 ms) pairs with the depth frame
    // nearest in time: #169 at 360815.1 ms, not #170 at 360981.8 ms. (The
    // SDK pipeline gave #170 or #169 depending on thread timing.)
    assert_eq!(cap.next_frame(&mut f).unwrap(), Next::Frame);
    assert_eq!((f.width, f.height), (640, 480));
    assert_eq!((f.rgb.len(), f.depth.len()), (640 * 480 * 3, 640 * 480));
    assert_eq!((f.color_frame_number, f.depth_frame_number), (162, 169));
    assert_eq!(f.timestamp_domain, "Hardware Clock");
    assert!((f.depth_timestamp_ms - f.color_timestamp_ms - 101.566).abs() < 0.01);
    assert!(f.color_timestamp_ms > 0.0);
    assert_eq!(f.depth_scale_m, 0.001);
    // Aligned depth carries the colour stream's intrinsics.
    let color = cap
        .streams()
        .iter()
        .find(|s| s.kind == "Color")
        .unwrap()
        .intrinsics;
    assert_eq!(f.intrinsics, color);
    // An office wall a metre or more away: most pixels measured.
    let valid: Vec<f32> = f
        .depth
        .iter()
        .filter(|&&d| d != 0)
        .map(|&d| d as f32 * 1e-3)
        .collect();
    assert!(valid.len() > 640 * 480 / 2, "{} valid", valid.len());
    assert!(valid.iter().all(|&m| m > 0.1 && m < 10.0));
    assert!(
        f.rgb.iter().any(|&b| b != f.rgb[0]),
        "colour image is uniform"
    );
    assert_eq!(cap.next_frame(&mut f).unwrap(), Next::End);
    assert_eq!(cap.next_frame(&mut f).unwrap(), Next::End);
    assert_eq!(cap.frames(), 1);
}

#[test]
fn a_looped_file_keeps_giving_frames() {
    let Some(bag) = common::shared_data(BAG) else {
        return;
    };
    let mut cfg = CaptureConfig::file(&bag);
    cfg.loop_file = true;
    let mut cap = Capture::open(&cfg).unwrap();
    let mut f = RgbdFrame::default();
    for _ in 0..3 {
        assert_eq!(cap.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(f.color_frame_number, 162);
    }
}

#[test]
fn deprojection_equals_the_sdk_on_the_recording() {
    let Some(bag) = common::shared_data(BAG) else {
        return;
    };
    let mut cap = Capture::open(&CaptureConfig::file(&bag)).unwrap();
    let mut f = RgbdFrame::default();
    assert_eq!(cap.next_frame(&mut f).unwrap(), Next::Frame);
    let intr = f.intrinsics.unwrap();
    let depth_intr = cap
        .streams()
        .iter()
        .find(|s| s.kind == "Depth")
        .unwrap()
        .intrinsics
        .unwrap();
    let mut checked = 0;
    for y in (0..480).step_by(37) {
        for x in (0..640).step_by(41) {
            let d = f.depth[y * 640 + x];
            if d == 0 {
                continue;
            }
            let m = d as f32 * f.depth_scale_m;
            let px = [x as f32 + 0.25, y as f32 - 0.25];
            for i in [&intr, &depth_intr] {
                let got = i.deproject(px, m);
                assert_close("deproject", got, sdk_deproject(i, px, m), F32_REL);
                assert_close("project", i.project(got), sdk_project(i, got), F32_REL);
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} pixels with depth");
}

#[test]
fn every_distortion_model_equals_the_sdk() {
    let base = Intrinsics::pinhole(640, 480, 390.43, 390.43, 331.39, 242.19);
    let cases = [
        (Distortion::None, [0.0; 5]),
        (
            Distortion::ModifiedBrownConrady,
            [0.1, -0.05, 0.001, -0.002, 0.01],
        ),
        (
            Distortion::InverseBrownConrady,
            [-0.05, 0.06, 0.0008, 0.0005, -0.02],
        ),
        (
            Distortion::BrownConrady,
            [0.12, -0.25, 0.001, -0.0015, 0.08],
        ),
        (Distortion::KannalaBrandt4, [-0.01, 0.04, -0.04, 0.015, 0.0]),
        (Distortion::FTheta, [0.9, 0.0, 0.0, 0.0, 0.0]),
    ];
    for (model, coeffs) in cases {
        let i = Intrinsics {
            model,
            coeffs,
            ..base
        };
        for y in (0..480).step_by(60) {
            for x in (0..640).step_by(80) {
                let px = [x as f32 + 0.5, y as f32 + 0.5];
                let depth = 0.5 + (x + y) as f32 / 400.0;
                let got = i.deproject(px, depth);
                assert_close(
                    &format!("{model:?} deproject {px:?}"),
                    got,
                    sdk_deproject(&i, px, depth),
                    F32_REL,
                );
                let p = [got[0], got[1], got[2]];
                assert_close(
                    &format!("{model:?} project {p:?}"),
                    i.project(p),
                    sdk_project(&i, p),
                    F32_REL,
                );
            }
        }
    }
}

#[test]
fn missing_or_corrupt_recordings_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.bag");
    assert!(matches!(summarize_file(&missing), Err(Error::Io { .. })));
    assert!(matches!(
        Capture::open(&CaptureConfig::file(&missing)),
        Err(Error::Io { .. })
    ));
    let junk = dir.path().join("junk.bag");
    std::fs::write(&junk, b"#ROSBAG V2.0\n\x00\x01garbage").unwrap();
    assert!(matches!(
        summarize_file(&junk),
        Err(Error::RealSense { .. })
    ));
    assert!(matches!(
        Capture::open(&CaptureConfig::file(&junk)),
        Err(Error::RealSense { .. })
    ));
    // A truncated copy of the real recording.
    if let Some(bag) = common::shared_data(BAG) {
        let bytes = std::fs::read(bag).unwrap();
        let cut = dir.path().join("cut.bag");
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        match Capture::open(&CaptureConfig::file(&cut)) {
            Err(e) => assert!(matches!(e, Error::RealSense { .. }), "{e}"),
            Ok(mut cap) => {
                let mut f = RgbdFrame::default();
                for _ in 0..10 {
                    if cap.next_frame(&mut f).unwrap_or(Next::End) == Next::End {
                        break;
                    }
                }
            }
        }
    }
}

/// A stand-in for BlazePose: one person whose 33 landmarks sit on a grid
/// over the image centre (on the recorded wall).
struct GridDetector;

impl LandmarkDetector for GridDetector {
    fn detect(&mut self, rgb: &[u8], w: usize, h: usize) -> skelact::Result<Vec<Landmarks2d>> {
        assert_eq!(rgb.len(), w * h * 3);
        let pixels = (0..33)
            .map(|j| {
                [
                    w as f32 * (0.3 + 0.08 * (j % 6) as f32),
                    h as f32 * (0.2 + 0.12 * (j / 6) as f32),
                ]
            })
            .collect();
        Ok(vec![Landmarks2d {
            pixels,
            visibility: vec![1.0; 33],
        }])
    }
}

#[test]
fn realsense_source_feeds_the_runtime_with_capture_and_pose_stages() {
    let Some(bag) = common::shared_data(BAG) else {
        return;
    };
    let open = || {
        RealSenseSource::open(
            &CaptureConfig::file(&bag),
            Box::new(GridDetector),
            Layout::ntu25(),
            DepthLookup::default(),
        )
        .unwrap()
    };
    // The source alone: one frame of one person on the wall, then the end.
    let mut src = open();
    assert_eq!(src.layout(), Layout::ntu25());
    let mut frame = Frame::new(Layout::ntu25(), 2);
    assert!(src.next_frame(&mut frame).unwrap());
    assert_eq!(
        (frame.seq, frame.captured_at_ns, frame.people.len()),
        (0, 0, 1)
    );
    let p = &frame.people[0];
    let seen = p.confidence.iter().filter(|&&c| c > 0.0).count();
    assert!(seen >= 20, "{:?}", p.confidence);
    for (j, c) in p.joints.iter().zip(&p.confidence) {
        if *c > 0.0 {
            assert!(j[2] > 0.3 && j[2] < 10.0, "{j:?}");
        }
    }
    let st = src.stage_times().unwrap();
    assert!(st.capture_ns > 0 && st.pose_ns > 0);
    assert!(!src.next_frame(&mut frame).unwrap());

    // Through the runtime (fresh CTR-GCN edge weights): the report has the
    // capture and pose stages.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let mut card = builtin::card("ctrgcn-edge").unwrap().unwrap();
    // The recording runs at 6 Hz; the runtime refuses a rate mismatch.
    card.temporal.source_fps = 6.0;
    let varmap = VarMap::new();
    build_encoder(
        &card.architecture,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let weights: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    ModelDir::create(&path, &card, &weights).unwrap();
    let r = common::run_fast(open(), &path);
    assert_eq!(r.frames, 1);
    assert_eq!(
        (r.latency.capture.count, r.latency.pose.count),
        (1, 1),
        "{r}"
    );
    assert!(r.latency.capture.max_ms > 0.0 && r.latency.pose.max_ms > 0.0);
    assert!(r.to_string().contains("capture"), "{r}");
}
