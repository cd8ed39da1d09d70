//! RealSense recordings written by skelact (feature `realsense`): frames
//! injected into a software device and written by the SDK's recorder
//! (`src/source/realsense/writer.rs`), played back through [`Capture`];
//! a recorded person through BlazePose, lifting and the runtime; and the
//! real D435 recording
//! (../shared/data/realsense/single_depth_color_640x480.bag) converted to
//! the SDK's ROS 2 `.db3` format and played back.
#![cfg(feature = "realsense")]

mod common;

use skelact::lift::{DepthLookup, Distortion, Intrinsics};
use skelact::pose::image::read_png;
use skelact::pose::BlazePose;
use skelact::skeleton::Layout;
use skelact::source::realsense::{
    convert, rerecord, summarize_file, Capture, CaptureConfig, Next, RealSenseSource, RgbdFrame,
    RgbdSpec, RgbdWriter,
};
use skelact::source::{Frame, JointSource};
use skelact::Error;

const BAG: &str = "realsense/single_depth_color_640x480.bag";

/// One nanosecond in milliseconds (a recording's time resolution), with
/// room for f64 rounding.
const NS_IN_MS: f64 = 1.0001e-6;

fn intrinsics(width: usize, height: usize) -> Intrinsics {
    Intrinsics {
        width,
        height,
        ppx: width as f32 / 2.0 - 0.3,
        ppy: height as f32 / 2.0 + 0.7,
        fx: 61.5,
        fy: 60.25,
        model: Distortion::BrownConrady,
        coeffs: [0.0; 5],
    }
}

/// Frame `k` of a synthetic stream: every pixel a function of its place
/// and of `k`, depth with holes (0) on a diagonal.
fn synthetic(k: u64, i: &Intrinsics) -> RgbdFrame {
    let (w, h) = (i.width, i.height);
    let mut f = RgbdFrame {
        width: w,
        height: h,
        intrinsics: Some(*i),
        depth_scale_m: 0.00025,
        color_timestamp_ms: 1000.0 + k as f64 * 1000.0 / 30.0,
        depth_timestamp_ms: 1000.25 + k as f64 * 1000.0 / 30.0,
        timestamp_domain: "Hardware Clock".to_string(),
        color_frame_number: 40 + k,
        depth_frame_number: 70 + k,
        ..RgbdFrame::default()
    };
    for y in 0..h {
        for x in 0..w {
            let d = if x == y {
                0
            } else {
                2000 + (x * 37 + y * 11) as u16 + k as u16
            };
            f.depth.push(d);
            f.rgb
                .extend([(x * 3 + k as usize) as u8, (y * 5) as u8, (x ^ y) as u8]);
        }
    }
    f
}

#[test]
fn a_written_recording_plays_back_every_pixel_timestamp_and_frame_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.db3");
    let i = intrinsics(64, 48);
    let frames: Vec<RgbdFrame> = (0..5).map(|k| synthetic(k, &i)).collect();
    let spec = RgbdSpec::of_frame(&frames[0], 30, "skelact test", "0042").unwrap();
    let mut w = RgbdWriter::create(&path, spec).unwrap();
    for f in &frames {
        w.write(f).unwrap();
    }
    assert_eq!(w.finish().unwrap(), 5);

    let s = summarize_file(&path).unwrap();
    assert_eq!(
        (s.device.as_str(), s.serial.as_str()),
        ("skelact test", "0042")
    );
    assert_eq!(s.depth_scale_m, Some(0.00025));
    assert_eq!(s.streams.len(), 2);
    for c in &s.streams {
        assert_eq!(c.frames, 5, "{}", c.stream.kind);
        assert_eq!(c.stream.fps, 30);
        assert_eq!(c.stream.intrinsics.as_ref(), Some(&i));
    }

    let mut cap = Capture::open(&CaptureConfig::file(&path)).unwrap();
    assert_eq!(cap.device_name_and_serial().0, "skelact test");
    let mut got = RgbdFrame::default();
    for want in &frames {
        assert_eq!(cap.next_frame(&mut got).unwrap(), Next::Frame);
        assert_eq!(got.intrinsics, want.intrinsics);
        assert_eq!(got.depth_scale_m, want.depth_scale_m);
        assert_eq!(got.color_frame_number, want.color_frame_number);
        assert_eq!(got.depth_frame_number, want.depth_frame_number);
        // The file keeps time to the nanosecond.
        assert!((got.color_timestamp_ms - want.color_timestamp_ms).abs() <= NS_IN_MS);
        assert!((got.depth_timestamp_ms - want.depth_timestamp_ms).abs() <= NS_IN_MS);
        assert_eq!(got.timestamp_domain, want.timestamp_domain);
        assert!(
            got.rgb == want.rgb,
            "colour of #{}",
            want.color_frame_number
        );
        assert!(
            got.depth == want.depth,
            "depth of #{}",
            want.depth_frame_number
        );
    }
    assert_eq!(cap.next_frame(&mut got).unwrap(), Next::End);
    assert_eq!(cap.incomplete(), 0);
}

#[test]
fn frames_unlike_the_recording_and_bad_paths_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let i = intrinsics(32, 24);
    let f = synthetic(0, &i);
    let spec = RgbdSpec::of_frame(&f, 30, "skelact test", "1").unwrap();
    // The SDK writes .db3 only.
    let bag = dir.path().join("out.bag");
    assert!(matches!(
        RgbdWriter::create(&bag, spec.clone()),
        Err(Error::Config { .. })
    ));
    let mut bad = spec.clone();
    bad.depth_scale_m = f32::NAN;
    assert!(RgbdWriter::create(&dir.path().join("nan.db3"), bad).is_err());
    let mut w = RgbdWriter::create(&dir.path().join("ok.db3"), spec).unwrap();
    let mut other = synthetic(1, &intrinsics(16, 24));
    assert!(matches!(w.write(&other), Err(Error::Mismatch { .. })));
    other = synthetic(1, &i);
    other.depth.pop();
    assert!(matches!(w.write(&other), Err(Error::Mismatch { .. })));
    other = synthetic(1, &i);
    other.intrinsics.as_mut().unwrap().fx += 1.0;
    assert!(matches!(w.write(&other), Err(Error::Mismatch { .. })));
    other = synthetic(1, &i);
    other.color_frame_number = 1 << 40;
    assert!(matches!(w.write(&other), Err(Error::Config { .. })));
    w.write(&f).unwrap();
    assert_eq!(w.finish().unwrap(), 1);
}

#[test]
fn the_d435_bag_converts_to_a_db3_that_plays_back_the_same_aligned_frame() {
    let Some(bag) = common::shared_data(BAG) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db3 = dir.path().join("wall.db3");
    let c = convert(&bag, &db3, None).unwrap();
    assert_eq!(c.frames, 1);
    let read = |path: &std::path::Path| {
        let mut cap = Capture::open(&CaptureConfig::file(path)).unwrap();
        let mut f = RgbdFrame::default();
        assert_eq!(cap.next_frame(&mut f).unwrap(), Next::Frame);
        assert_eq!(
            cap.next_frame(&mut RgbdFrame::default()).unwrap(),
            Next::End
        );
        (f, cap.device_name_and_serial())
    };
    let (a, dev_a) = read(&bag);
    let (b, dev_b) = read(&db3);
    assert_eq!(dev_a, dev_b);
    assert_eq!((b.color_frame_number, b.depth_frame_number), (162, 169));
    assert_eq!(b.color_timestamp_ms, a.color_timestamp_ms);
    assert_eq!(b.depth_timestamp_ms, a.depth_timestamp_ms);
    assert_eq!(b.intrinsics, a.intrinsics);
    assert_eq!(b.depth_scale_m, a.depth_scale_m);
    assert!(b.rgb == a.rgb, "colour differs");
    let differ = a.depth.iter().zip(&b.depth).filter(|(x, y)| x != y).count();
    assert_eq!(differ, 0, "{differ} depth pixels differ");
}

/// A person in front of a wall 1.5 m away, 30 frames a second: the
/// cameraman photograph (512x512, head to knees; BlazePose's fixture) as
/// colour, a flat depth plane.
fn person_recording(path: &std::path::Path, frames: u64) {
    let img = read_png(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/blazepose/camera.png"),
    )
    .unwrap();
    let i = Intrinsics {
        width: img.width,
        height: img.height,
        ppx: 255.5,
        ppy: 255.5,
        fx: 190.0,
        fy: 190.0,
        model: Distortion::BrownConrady,
        coeffs: [0.0; 5],
    };
    let mut f = RgbdFrame {
        rgb: img.rgb,
        depth: vec![1500; i.width * i.height],
        width: i.width,
        height: i.height,
        intrinsics: Some(i),
        depth_scale_m: 0.001,
        timestamp_domain: "Hardware Clock".to_string(),
        ..RgbdFrame::default()
    };
    let spec = RgbdSpec::of_frame(&f, 30, "skelact test", "1").unwrap();
    let mut w = RgbdWriter::create(path, spec).unwrap();
    for k in 0..frames {
        f.color_timestamp_ms = k as f64 * 1000.0 / 30.0;
        f.depth_timestamp_ms = f.color_timestamp_ms;
        (f.color_frame_number, f.depth_frame_number) = (k, k);
        w.write(&f).unwrap();
    }
    assert_eq!(w.finish().unwrap(), frames);
}

#[test]
fn a_recorded_person_goes_through_blazepose_lifting_and_the_shipped_model() {
    let Some(pose) = common::pose_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("person.db3");
    person_recording(&file, 60);
    let open = || {
        RealSenseSource::open(
            &CaptureConfig::file(&file),
            Box::new(BlazePose::load(&pose).unwrap()),
            Layout::mediapipe33(),
            DepthLookup::default(),
        )
        .unwrap()
    };
    // The source alone: one person on every frame; every landmark seen
    // lies on the wall's plane, 1.5 m away.
    let mut src = open();
    assert_eq!(src.fps(), 30.0);
    let mut frame = Frame::new(Layout::mediapipe33(), 2);
    for k in 0..3 {
        assert!(src.next_frame(&mut frame).unwrap());
        assert_eq!(frame.people.len(), 1, "frame {k}");
        let p = &frame.people[0];
        let seen: Vec<_> = p
            .joints
            .iter()
            .zip(&p.confidence)
            .filter(|(_, &c)| c > 0.5)
            .collect();
        // Head to knees in the photograph: face, arms, hips.
        assert!(seen.len() >= 20, "{:?}", p.confidence);
        for (j, _) in seen {
            assert!((j[2] - 1.5).abs() < 1e-4, "{j:?}");
        }
    }
    drop(src);

    // Through the runtime with the shipped NW-UCLA model (30 fps card):
    // every frame is captured, posed and windowed.
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ctrgcn-edge-nwucla");
    let r = common::run_fast(open(), &model);
    assert_eq!(r.frames, 60, "{r}");
    assert_eq!(
        (r.latency.capture.count, r.latency.pose.count),
        (60, 60),
        "{r}"
    );
    assert!(r.latency.inference.count >= 1, "{r}");
}

#[test]
fn recording_a_camera_is_a_typed_error_without_one_or_without_a_frame_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("camera.db3");
    // No camera here: "no RealSense camera connected"; with one, the
    // missing frame count (a camera never ends).
    match rerecord(&CaptureConfig::camera(), &out, None) {
        Err(Error::RealSense { .. }) | Err(Error::Config { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!out.exists());
}
