//! `skelact realsense list|info|convert|record` and `skelact bench realsense` (feature
//! `realsense`), and the landmark detector `--source realsense` needs.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use skelact::lift::{DepthLookup, Intrinsics, LandmarkDetector, Landmarks2d};
use skelact::pose::{BlazePose, POSE_MODEL_ENV};
use skelact::runtime::Histogram;
use skelact::skeleton::Layout;
use skelact::source::realsense::{list_devices, summarize_file, CaptureConfig, RealSenseSource};
use skelact::source::{Frame, JointSource};

/// The landmark network for `--source realsense`: BlazePose from
/// `--pose-model DIR`, else from `$SKELACT_POSE_MODEL`.
pub fn landmark_detector(pose_model: Option<&Path>) -> Result<Box<dyn LandmarkDetector>> {
    let dir = match pose_model {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os(POSE_MODEL_ENV).filter(|v| !v.is_empty()) {
            Some(p) => std::path::PathBuf::from(p),
            None => {
                return Err(anyhow::Error::new(skelact::Error::config(
                    "--pose-model",
                    format!(
                        "`--source realsense` needs BlazePose's two TFLite files: pass --pose-model DIR \
                         or set {POSE_MODEL_ENV} (.ci/fetch-blazepose.sh DIR fetches them)"
                    ),
                )))
            }
        },
    };
    let bp =
        BlazePose::load(&dir).with_context(|| format!("load BlazePose from {}", dir.display()))?;
    Ok(Box::new(bp))
}

/// Opens `--source realsense[:FILE]`, lifting to MediaPipe-33 (the runtime
/// maps it to the model's layout).
pub fn open_source(file: Option<&str>, pose_model: Option<&Path>) -> Result<Box<dyn JointSource>> {
    let detector = landmark_detector(pose_model)?;
    let cfg = match file {
        Some(f) => CaptureConfig::file(f),
        None => CaptureConfig::camera(),
    };
    let src = RealSenseSource::open(
        &cfg,
        detector,
        Layout::mediapipe33(),
        DepthLookup::default(),
    )?;
    Ok(Box::new(src))
}

/// `skelact realsense list`.
pub fn list() -> Result<()> {
    let devices = list_devices()?;
    if devices.is_empty() {
        println!("no RealSense camera connected");
    }
    for d in devices {
        println!(
            "{}  serial {}  firmware {}{}",
            d.name,
            d.serial,
            d.firmware,
            d.usb.map(|u| format!("  USB {u}")).unwrap_or_default()
        );
    }
    Ok(())
}

fn intrinsics_line(i: &Intrinsics) -> String {
    format!(
        "{}x{}  fx {:.3} fy {:.3}  ppx {:.3} ppy {:.3}  {} {:?}",
        i.width,
        i.height,
        i.fx,
        i.fy,
        i.ppx,
        i.ppy,
        i.model.name(),
        i.coeffs
    )
}

/// `skelact realsense info FILE`.
pub fn info(file: &Path) -> Result<()> {
    let s = summarize_file(file).with_context(|| format!("reading {}", file.display()))?;
    println!("{}  serial {}  firmware {}", s.device, s.serial, s.firmware);
    println!(
        "duration {:.3} s  depth scale {}",
        s.duration_ns as f64 * 1e-9,
        s.depth_scale_m
            .map_or("none".to_string(), |d| format!("{d} m"))
    );
    for c in &s.streams {
        let st = &c.stream;
        println!(
            "{} {}  {}  {} Hz  {} frames{}",
            st.kind,
            st.index,
            st.format,
            st.fps,
            c.frames,
            c.frame_numbers
                .map(|(a, b)| format!(" (#{a}..#{b})"))
                .unwrap_or_default()
        );
        if let Some(i) = &st.intrinsics {
            println!("    {}", intrinsics_line(i));
        }
    }
    Ok(())
}

/// `skelact realsense convert IN OUT [--frames N]`.
pub fn convert(input: &Path, output: &Path, frames: Option<u64>) -> Result<()> {
    let c = skelact::source::realsense::convert(input, output, frames)
        .with_context(|| format!("{} -> {}", input.display(), output.display()))?;
    print_rerecorded(output, &c);
    Ok(())
}

/// `skelact realsense record OUT [--frames N] [--serial S] [--size WxH] [--fps F]`.
pub fn record(
    output: &Path,
    frames: u64,
    serial: Option<String>,
    size: &str,
    fps: u32,
) -> Result<()> {
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
        .ok_or_else(|| skelact::Error::config("--size", format!("{size:?} is not WIDTHxHEIGHT")))?;
    let cfg = CaptureConfig {
        input: skelact::source::realsense::Input::Camera { serial },
        width: w,
        height: h,
        fps,
        ..CaptureConfig::camera()
    };
    let c = skelact::source::realsense::rerecord(&cfg, output, Some(frames))
        .with_context(|| format!("camera -> {}", output.display()))?;
    print_rerecorded(output, &c);
    Ok(())
}

fn print_rerecorded(output: &Path, c: &skelact::source::realsense::Rerecorded) {
    println!(
        "{}: {} aligned frames written ({} colour frames without depth left out)",
        output.display(),
        c.frames,
        c.incomplete
    );
}

/// A stand-in detector for the benchmark: one person, 33 landmarks on a
/// fixed grid over the image centre, fully visible (no network time).
struct GridDetector;

impl LandmarkDetector for GridDetector {
    fn detect(
        &mut self,
        _rgb: &[u8],
        width: usize,
        height: usize,
    ) -> skelact::Result<Vec<Landmarks2d>> {
        let pixels = (0..33)
            .map(|j| {
                let (c, r) = ((j % 6) as f32, (j / 6) as f32);
                [
                    width as f32 * (0.3 + 0.08 * c),
                    height as f32 * (0.2 + 0.12 * r),
                ]
            })
            .collect();
        Ok(vec![Landmarks2d {
            pixels,
            visibility: vec![1.0; 33],
        }])
    }

    fn describe(&self) -> String {
        "grid stand-in detector".to_string()
    }
}

/// `skelact bench realsense FILE`: the file played in a loop (real-time
/// mode off) through capture + align + copy and detect + lift, `frames`
/// frames after one warm-up frame. The detector is BlazePose from
/// `pose_model` when given (capture to joints, as `--source realsense`
/// runs it), else a stand-in with no network time.
pub fn bench(file: &Path, frames: u64, layout: &str, pose_model: Option<&Path>) -> Result<()> {
    let layout = Layout::by_name(layout)?;
    let detector: Box<dyn LandmarkDetector> = match pose_model {
        Some(dir) => landmark_detector(Some(dir))?,
        None => Box::new(GridDetector),
    };
    let detector_name = detector.describe();
    let (mut capture, mut pose) = (Histogram::new(), Histogram::new());
    let t_open = Instant::now();
    let mut cfg = CaptureConfig::file(file);
    cfg.loop_file = true;
    let mut src = RealSenseSource::open(&cfg, detector, layout, DepthLookup::default())?;
    let mut frame = Frame::new(layout, 4);
    // warm-up: pipeline start, first frameset
    while src.next_frame(&mut frame)? && frame.seq == skelact::source::live::NO_FRAME {}
    let open_s = t_open.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut n = 0u64;
    while n < frames && src.next_frame(&mut frame)? {
        if frame.seq == skelact::source::live::NO_FRAME {
            continue;
        }
        let Some(t) = src.stage_times() else { continue };
        capture.record(t.capture_ns);
        pose.record(t.pose_ns);
        n += 1;
    }
    let wall = t0.elapsed().as_secs_f64();
    let size = src
        .capture()
        .color_stream()
        .and_then(|s| s.intrinsics)
        .map_or("?".to_string(), |i| format!("{}x{}", i.width, i.height));
    println!(
        "{}: open + first frame {open_s:.2} s; then {n} aligned {size} frames (file looped) in {wall:.2} s = {:.1} frames/s; detector: {detector_name}; people lifted to {}",
        file.display(),
        n as f64 / wall,
        layout.name()
    );
    println!("stage              count      p50      p99      max   (ms)");
    for (name, h) in [("capture+align", &capture), ("detect+lift", &pose)] {
        let s = h.summary();
        println!(
            "{name:<16} {:>7} {:>8.3} {:>8.3} {:>8.3}",
            s.count, s.p50_ms, s.p99_ms, s.max_ms
        );
    }
    Ok(())
}
