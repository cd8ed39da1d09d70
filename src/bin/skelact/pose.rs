//! `skelact pose IMAGE.png` (the 33 BlazePose landmarks of the person in a
//! photograph) and `skelact bench pose` (per-frame detector, landmark and
//! total time on this CPU, with MediaPipe's own timing beside it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use skelact::pose::image::read_png;
use skelact::pose::{BlazePose, POSE_MODEL_ENV};
use skelact::skeleton::Layout;

/// Arguments of `skelact pose`.
#[derive(clap::Args, Debug)]
pub struct PoseArgs {
    /// A PNG photograph (any colour type).
    pub image: PathBuf,
    /// Folder with pose_detection.tflite and pose_landmark_full.tflite
    /// (default: $SKELACT_POSE_MODEL; see .ci/fetch-blazepose.sh).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `skelact bench pose`.
#[derive(clap::Args, Debug)]
pub struct BenchPoseArgs {
    /// The photograph (default: the astronaut fixture).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Model folder (default: $SKELACT_POSE_MODEL).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Frames per mode (detector every frame / tracked).
    #[arg(long, default_value_t = 20)]
    pub frames: usize,
    /// A Python with mediapipe==0.10.21 and ai-edge-litert: times
    /// MediaPipe on the same image in the same run
    /// (tests/fixtures/gen_blazepose.py --time).
    #[arg(long)]
    pub python: Option<String>,
    /// Also time each kind of operator of both networks (on a constant
    /// input of the network's size, `--frames` runs each).
    #[arg(long)]
    pub profile: bool,
}

fn model_dir(model: &Option<PathBuf>) -> Result<PathBuf> {
    match model {
        Some(m) => Ok(m.clone()),
        None => match std::env::var_os(POSE_MODEL_ENV).filter(|v| !v.is_empty()) {
            Some(p) => Ok(PathBuf::from(p)),
            None => bail!("no model folder: pass --model DIR or set {POSE_MODEL_ENV} (.ci/fetch-blazepose.sh DIR fetches it)"),
        },
    }
}

/// `skelact pose IMAGE.png`.
pub fn pose(a: &PoseArgs) -> Result<()> {
    let dir = model_dir(&a.model)?;
    let img = read_png(&a.image)?;
    let mut bp =
        BlazePose::load(&dir).with_context(|| format!("load BlazePose from {}", dir.display()))?;
    let people = bp.estimate(&img.rgb, img.width, img.height)?;
    let names = Layout::mediapipe33().joint_names();
    if a.json {
        let doc: Vec<serde_json::Value> = people
            .iter()
            .map(|p| {
                serde_json::json!({
                    "presence": p.presence,
                    "landmarks": (0..p.pixels.len()).map(|i| serde_json::json!({
                        "name": names.get(i).copied().unwrap_or(""),
                        "x_px": p.pixels[i][0], "y_px": p.pixels[i][1], "z": p.z[i], "visibility": p.visibility[i],
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if people.is_empty() {
        println!(
            "no pose found in {} ({}x{})",
            a.image.display(),
            img.width,
            img.height
        );
        return Ok(());
    }
    for p in &people {
        println!(
            "{} ({}x{}): pose presence {:.3}",
            a.image.display(),
            img.width,
            img.height,
            p.presence
        );
        println!(
            "{:>3}  {:<18} {:>9} {:>9} {:>9} {:>10}",
            "#", "landmark", "x_px", "y_px", "z", "visibility"
        );
        for i in 0..p.pixels.len() {
            println!(
                "{i:>3}  {:<18} {:>9.2} {:>9.2} {:>9.2} {:>10.3}",
                names.get(i).copied().unwrap_or(""),
                p.pixels[i][0],
                p.pixels[i][1],
                p.z[i],
                p.visibility[i]
            );
        }
    }
    Ok(())
}

fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    (median, v.iter().sum::<f64>() / v.len() as f64)
}

/// `skelact bench pose`.
pub fn bench_pose(a: &BenchPoseArgs) -> Result<()> {
    let dir = model_dir(&a.model)?;
    let image = a.image.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blazepose/astronaut.png")
    });
    let img = read_png(&image)?;
    let mut bp = BlazePose::load(&dir)?;
    let frames = a.frames.max(1);
    // One untimed frame of each kind first.
    bp.estimate(&img.rgb, img.width, img.height)?;
    let (mut det, mut lmk, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..frames {
        bp.reset();
        let t = Instant::now();
        let found = bp.estimate(&img.rgb, img.width, img.height)?;
        total.push(t.elapsed().as_secs_f64() * 1e3);
        if found.is_empty() {
            bail!("no pose in {}", image.display());
        }
        det.push(bp.last_times().detector_ms);
        lmk.push(bp.last_times().landmark_ms);
    }
    let mut tracked = Vec::new();
    for _ in 0..frames {
        let t = Instant::now();
        bp.estimate(&img.rgb, img.width, img.height)?;
        tracked.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "skelact BlazePose on {} ({}x{}), CPU, {} frames per row, RAYON_NUM_THREADS={}",
        image.display(),
        img.width,
        img.height,
        frames,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
    );
    println!("{:<38} {:>10} {:>10}", "stage", "median ms", "mean ms");
    for (name, v) in [
        ("detector (letterbox+net+NMS)", &mut det),
        ("landmark (warp+net+decode)", &mut lmk),
        ("frame with detection", &mut total),
        ("tracked frame (no detector)", &mut tracked),
    ] {
        let (m, mean) = stats(v);
        println!("{name:<38} {m:>10.1} {mean:>10.1}");
    }
    if a.profile {
        for (name, net) in [
            ("detector", bp.detector()),
            ("landmark model", bp.landmark_model()),
        ] {
            let len: usize = net.input_shape(0).map_or(0, |s| s.iter().product());
            let x = vec![0.5f32; len];
            let ops = net.profile(&[&x], frames)?;
            let total: f64 = ops.iter().map(|o| o.ms).sum();
            println!(
                "{name} network, {} steps: {:.1} ms per run in operators",
                net.num_steps(),
                total / frames as f64
            );
            for o in &ops {
                println!(
                    "  {:<24} {:>3} ops {:>8.2} ms {:>5.1} %",
                    o.op,
                    o.count,
                    o.ms / frames as f64,
                    100.0 * o.ms / total.max(1e-9)
                );
            }
        }
    }
    if let Some(py) = &a.python {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gen_blazepose.py");
        let out = Command::new(py)
            .arg(&script)
            .arg(&dir)
            .arg("--time")
            .arg(&image)
            .output()
            .with_context(|| format!("run {py} {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "{py} {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        let t: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("MediaPipe timing: {line}"))?;
        println!("MediaPipe 0.10.21 (same run, same image, XNNPACK, 1 thread):");
        for (k, label) in [
            ("detector_ms", "detector network only"),
            ("landmark_ms", "landmark network only"),
            ("static_ms", "pose solution, static image mode"),
            ("tracked_ms", "pose solution, tracked (video mode)"),
        ] {
            if let Some(v) = t[k].as_f64() {
                println!("{label:<38} {v:>10.1}");
            }
        }
    }
    Ok(())
}
