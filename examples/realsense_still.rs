//! A photograph of a person written as a RealSense recording: the image as
//! the colour stream, a flat wall `DEPTH_M` metres away as the depth
//! stream, 30 frames a second for `SECONDS`, through the SDK's own recorder
//! (`skelact::source::realsense::RgbdWriter`). It lets the camera
//! path — BlazePose, lifting to 3D, the runtime — run on a person without a
//! camera:
//!
//! ```sh
//! cargo run --release --features realsense --example realsense_still -- \
//!     tests/fixtures/blazepose/camera.png /tmp/person.db3 [SECONDS [DEPTH_M]]
//! skelact run --source realsense:/tmp/person.db3 --pose-model ~/.cache/skelact/blazepose
//! ```
//!
//! The intrinsics are a D435 colour camera's field of view (69 degrees
//! across) at the image's size, with no distortion.

#[cfg(feature = "realsense")]
fn main() -> anyhow::Result<()> {
    use anyhow::Context;
    use skelact::lift::{Distortion, Intrinsics};
    use skelact::source::realsense::{RgbdFrame, RgbdSpec, RgbdWriter};

    let args: Vec<String> = std::env::args().collect();
    let (Some(photo), Some(out)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: realsense_still PHOTO.png OUT.db3 [SECONDS [DEPTH_M]]");
    };
    let seconds: f64 = args.get(3).map_or(Ok(4.0), |s| s.parse())?;
    let depth_m: f32 = args.get(4).map_or(Ok(2.0), |s| s.parse())?;
    let img = skelact::pose::image::read_png(photo.as_ref())?;
    let (w, h) = (img.width, img.height);
    // D435 colour: 69 degrees across.
    let f = (w as f32 / 2.0) / (69.0f32.to_radians() / 2.0).tan();
    let intrinsics = Intrinsics {
        width: w,
        height: h,
        ppx: (w as f32 - 1.0) / 2.0,
        ppy: (h as f32 - 1.0) / 2.0,
        fx: f,
        fy: f,
        model: Distortion::BrownConrady,
        coeffs: [0.0; 5],
    };
    let depth_scale_m = 0.001;
    let units = (depth_m / depth_scale_m).round();
    anyhow::ensure!(
        units >= 1.0 && units <= f32::from(u16::MAX),
        "DEPTH_M {depth_m} is outside 0.001..65.5 m"
    );
    let mut frame = RgbdFrame {
        rgb: img.rgb,
        depth: vec![units as u16; w * h],
        width: w,
        height: h,
        intrinsics: Some(intrinsics),
        depth_scale_m,
        timestamp_domain: "Hardware Clock".to_string(),
        ..RgbdFrame::default()
    };
    let spec = RgbdSpec::of_frame(&frame, 30, "skelact still photograph", "0")?;
    let mut writer =
        RgbdWriter::create(out.as_ref(), spec).with_context(|| format!("create {out}"))?;
    let frames = (seconds * 30.0).round().max(1.0) as u64;
    for k in 0..frames {
        frame.color_timestamp_ms = k as f64 * 1000.0 / 30.0;
        frame.depth_timestamp_ms = frame.color_timestamp_ms;
        (frame.color_frame_number, frame.depth_frame_number) = (k, k);
        writer.write(&frame)?;
    }
    let n = writer.finish()?;
    println!("{out}: {n} frames of {w}x{h} at 30 Hz, wall at {depth_m} m");
    Ok(())
}

#[cfg(not(feature = "realsense"))]
fn main() {
    eprintln!("this example needs --features realsense");
    std::process::exit(2);
}
