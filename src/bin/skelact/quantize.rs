//! `skelact quantize IN OUT --dtype f16|bf16|int8`: writes the quantized
//! model directory (the work is in `skelact::model::quantize`) and a report
//! comparing it with its source, printed and saved as `OUT/quantize.txt`
//! and `OUT/quantize.json`.
//!
//! The report: weight file sizes, parameter count, relative weight error,
//! forward time per window (source and quantized model timed interleaved in
//! this process, batch-norm folded as the runtime runs them), the largest
//! logit difference, and — with feature `train`, which holds the data set
//! readers and `skelact eval`'s evaluation — top-1 / top-5 of both models
//! on the model's test split.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use skelact::model::card::{ModelCard, Precision, CARD_FILE};
use skelact::model::quantize::{self, precision_name};
use skelact::model::{Encoder, LoadedModel, ModelDir};

/// Target precision of `skelact quantize`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DtypeArg {
    /// IEEE half precision for every float tensor.
    F16,
    /// bfloat16 for every float tensor.
    Bf16,
    /// Conv and linear weights int8 per output channel, the rest f16.
    Int8,
}

impl DtypeArg {
    fn precision(self) -> Precision {
        match self {
            DtypeArg::F16 => Precision::F16,
            DtypeArg::Bf16 => Precision::Bf16,
            DtypeArg::Int8 => Precision::Int8,
        }
    }
}

/// Compute dtype of the comparison.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ComputeArg {
    /// f32 (what a CPU board runs; f16 compute is slower on CPU).
    F32,
    /// f16.
    F16,
}

/// Options of `skelact quantize`.
#[derive(clap::Args, Debug)]
pub struct QuantizeArgs {
    /// Source model directory.
    pub input: PathBuf,
    /// Model directory to write.
    pub out: PathBuf,
    /// Target precision.
    #[arg(long, value_enum)]
    pub dtype: DtypeArg,
    /// Data root for the test-split comparison (feature `train`); default
    /// $SKELACT_DATA, else ../shared/data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Skip the test-split comparison: logits are compared on synthetic
    /// windows instead.
    #[arg(long)]
    pub no_eval: bool,
    /// Timed forward passes per model and batch size (median reported).
    #[arg(long, default_value_t = 25)]
    pub runs: usize,
    /// Compute dtype of both models in the comparison.
    #[arg(long, value_enum, default_value = "f32")]
    pub compute: ComputeArg,
}

/// Summary of the per-tensor weight errors.
#[derive(Debug, Serialize)]
struct ErrorSummary {
    tensors: usize,
    /// Largest `max|Δ| / max|w|` over the tensors.
    max_rel: f64,
    /// Mean of `max|Δ| / max|w|` over the tensors.
    mean_rel: f64,
    /// Mean of `‖Δ‖₂ / ‖w‖₂` over the tensors.
    mean_rms_rel: f64,
}

impl ErrorSummary {
    fn of<'a>(errors: impl Iterator<Item = &'a quantize::TensorError>) -> Option<Self> {
        let errors: Vec<_> = errors.collect();
        let n = errors.len();
        (n > 0).then(|| Self {
            tensors: n,
            max_rel: errors.iter().map(|e| e.max_rel).fold(0.0, f64::max),
            mean_rel: errors.iter().map(|e| e.max_rel).sum::<f64>() / n as f64,
            mean_rms_rel: errors.iter().map(|e| e.rms_rel).sum::<f64>() / n as f64,
        })
    }
}

/// Forward time at one batch size.
#[derive(Debug, Serialize)]
struct Timing {
    batch: usize,
    runs: usize,
    /// Median milliseconds per forward pass.
    source_ms: f64,
    quantized_ms: f64,
}

/// Logits of the two models on the same windows.
#[derive(Debug, Serialize)]
struct LogitDiff {
    /// "test split" or "synthetic".
    windows_from: String,
    windows: usize,
    max_abs_diff: f64,
    /// Largest |logit| of the source, for scale.
    max_abs_logit: f64,
    /// Windows whose top class differs between the two models.
    top1_changed: usize,
}

/// Top-1 / top-5 of both models on the test split.
#[derive(Debug, Serialize)]
struct Accuracy {
    split: String,
    samples: usize,
    source_top1: f64,
    source_top5: f64,
    top1: f64,
    top5: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    source: String,
    out: String,
    source_precision: &'static str,
    precision: &'static str,
    compute: &'static str,
    parameters: usize,
    source_weight_bytes: u64,
    weight_bytes: u64,
    /// Of which the safetensors JSON header (names, dtypes, shapes).
    source_header_bytes: u64,
    header_bytes: u64,
    weight_error: Option<ErrorSummary>,
    int8_weight_error: Option<ErrorSummary>,
    timing: Vec<Timing>,
    logits: LogitDiff,
    accuracy: Option<Accuracy>,
    notes: Vec<String>,
}

impl Report {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "skelact quantize: {} ({}) -> {} ({}), compute {}",
            self.source, self.source_precision, self.out, self.precision, self.compute
        );
        let _ = writeln!(s, "parameters        {}", self.parameters);
        let _ = writeln!(
            s,
            "weights file      {} B -> {} B ({:.1} %); tensor data {} B -> {} B ({:.1} %), the rest is the safetensors header",
            self.source_weight_bytes,
            self.weight_bytes,
            100.0 * self.weight_bytes as f64 / self.source_weight_bytes.max(1) as f64,
            self.source_weight_bytes - self.source_header_bytes,
            self.weight_bytes - self.header_bytes,
            100.0 * (self.weight_bytes - self.header_bytes) as f64
                / (self.source_weight_bytes - self.source_header_bytes).max(1) as f64
        );
        let mut err_line = |what: &str, e: &Option<ErrorSummary>| {
            if let Some(e) = e {
                let _ = writeln!(
                    s,
                    "{what:<17} {} tensors: max|Δ|/max|w| max {:.3e} mean {:.3e}; ‖Δ‖/‖w‖ mean {:.3e}",
                    e.tensors, e.max_rel, e.mean_rel, e.mean_rms_rel
                );
            }
        };
        err_line("weight error", &self.weight_error);
        err_line("  int8 weights", &self.int8_weight_error);
        for t in &self.timing {
            let _ = writeln!(
                s,
                "forward batch {:<3} source {:8.2} ms ({:6.2} ms/window)  quantized {:8.2} ms ({:6.2} ms/window)  ratio {:.2}  (median of {}, interleaved)",
                t.batch,
                t.source_ms,
                t.source_ms / t.batch as f64,
                t.quantized_ms,
                t.quantized_ms / t.batch as f64,
                t.quantized_ms / t.source_ms,
                t.runs
            );
        }
        let l = &self.logits;
        let _ = writeln!(
            s,
            "logits            max |Δ| {:.4e} over {} {} windows (max |logit| {:.3}); top-1 changed on {}",
            l.max_abs_diff, l.windows, l.windows_from, l.max_abs_logit, l.top1_changed
        );
        match &self.accuracy {
            Some(a) => {
                let _ = writeln!(s, "accuracy on {} ({} clips):", a.split, a.samples);
                let _ = writeln!(
                    s,
                    "  source     top-1 {:6.2} %  top-5 {:6.2} %",
                    100.0 * a.source_top1,
                    100.0 * a.source_top5
                );
                let _ = writeln!(
                    s,
                    "  quantized  top-1 {:6.2} %  top-5 {:6.2} %  (top-1 change {:+.2} points)",
                    100.0 * a.top1,
                    100.0 * a.top5,
                    100.0 * (a.top1 - a.source_top1)
                );
            }
            None => {
                let _ = writeln!(s, "accuracy          not measured");
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Median ms per forward pass of `a` and `b` on `x`, alternating which goes
/// first, after two warm-up passes each.
fn time_interleaved(
    a: &dyn Encoder,
    b: &dyn Encoder,
    x: &Tensor,
    runs: usize,
) -> Result<(f64, f64)> {
    let once = |e: &dyn Encoder| -> Result<f64> {
        let t0 = Instant::now();
        let y = e.forward_t(x, false)?;
        // Force the result (CPU ops are eager; this keeps it honest).
        y.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..2 {
        once(a)?;
        once(b)?;
    }
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs.max(1) {
        if i % 2 == 0 {
            ta.push(once(a)?);
            tb.push(once(b)?);
        } else {
            tb.push(once(b)?);
            ta.push(once(a)?);
        }
    }
    Ok((median(ta), median(tb)))
}

/// `n` deterministic pseudo-random windows of the card's input shape.
fn synthetic_windows(card: &ModelCard, n: usize, device: &Device) -> Result<Tensor> {
    let v = card.layout()?.num_joints();
    let shape = (
        n,
        card.input.channels(),
        card.temporal.frames,
        v,
        card.input.persons,
    );
    let len = shape.0 * shape.1 * shape.2 * shape.3 * shape.4;
    let data: Vec<f32> = (0..len)
        .map(|i| ((i as f32 * 0.618_034).fract() * 2.0 - 1.0) * 0.8)
        .collect();
    Ok(Tensor::from_vec(data, shape, device)?)
}

/// Largest |Δ logit| and top-1 changes over `windows`, in batches.
fn compare_logits(
    a: &LoadedModel,
    b: &LoadedModel,
    windows: &Tensor,
    from: &str,
    compute: DType,
) -> Result<LogitDiff> {
    let n = windows.dim(0)?;
    let mut out = LogitDiff {
        windows_from: from.to_string(),
        windows: n,
        max_abs_diff: 0.0,
        max_abs_logit: 0.0,
        top1_changed: 0,
    };
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .map(|(k, _)| k)
    };
    for start in (0..n).step_by(64) {
        let x = windows
            .narrow(0, start, 64.min(n - start))?
            .to_dtype(compute)?;
        let la = a.logits(&x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let lb = b.logits(&x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        for (ra, rb) in la.iter().zip(&lb) {
            for (p, q) in ra.iter().zip(rb) {
                out.max_abs_diff = out.max_abs_diff.max(f64::from((p - q).abs()));
                out.max_abs_logit = out.max_abs_logit.max(f64::from(p.abs()));
            }
            if argmax(ra) != argmax(rb) {
                out.top1_changed += 1;
            }
        }
    }
    Ok(out)
}

/// Without feature `train` there are no data set readers: no accuracy.
#[cfg(not(feature = "train"))]
fn measure_split(
    _a: &LoadedModel,
    _b: &LoadedModel,
    _data: Option<PathBuf>,
    _device: &Device,
    notes: &mut Vec<String>,
) -> Result<Option<(Tensor, Accuracy)>> {
    notes.push(
        "accuracy needs feature `train` (data set readers and evaluation); logits compared \
         on 64 synthetic windows"
            .into(),
    );
    Ok(None)
}

/// The test split's windows through the evaluation input path, and both
/// models' accuracy through `skelact eval`'s evaluation.
#[cfg(feature = "train")]
fn measure_split(
    a: &LoadedModel,
    b: &LoadedModel,
    data: Option<PathBuf>,
    device: &Device,
    _notes: &mut Vec<String>,
) -> Result<Option<(Tensor, Accuracy)>> {
    use skelact::train::{self, data, Benchmark};
    use skelact::window::{self, PoseSeq, PrepareOptions, Prepared};

    let card = &a.card;
    let bench = match card.skeleton.layout.as_str() {
        "kinect20-ucla" => Benchmark::NwuclaCrossView,
        "kinect20-utd" => Benchmark::UtdCrossSubject,
        other => anyhow::bail!("no benchmark known for layout `{other}`; use --no-eval"),
    };
    let root = super::train::data_root(data);
    let split = data::load(bench, &root, None)
        .with_context(|| format!("reading the test split under {}", root.display()))?;
    let (_, split_name) = bench.describe();
    let mut prepared = Vec::with_capacity(split.test.len());
    for c in &split.test {
        prepared.push(window::prepare(
            PoseSeq::from_clip(c)?,
            card,
            PrepareOptions::default(),
        )?);
    }
    let refs: Vec<&Prepared> = prepared.iter().collect();
    let windows = window::to_input(&refs, card, device)?;
    let ea = train::evaluate(a.encoder.as_ref(), &a.card, &split.test, 64, device)?;
    let eb = train::evaluate(b.encoder.as_ref(), &b.card, &split.test, 64, device)?;
    Ok(Some((
        windows,
        Accuracy {
            split: split_name.to_string(),
            samples: ea.samples,
            source_top1: ea.top1,
            source_top5: ea.top5,
            top1: eb.top1,
            top5: eb.top5,
        },
    )))
}

/// Bytes of a safetensors file before its tensor data: the 8-byte length
/// and the JSON header.
fn header_len(p: &Path) -> Result<u64> {
    use std::io::Read;
    let mut n = [0u8; 8];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut n))
        .with_context(|| format!("reading {}", p.display()))?;
    Ok(8 + u64::from_le_bytes(n))
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("reading {}", p.display()))?
        .len())
}

pub fn quantize(a: &QuantizeArgs) -> Result<()> {
    let device = Device::Cpu;
    let to = a.dtype.precision();
    let src = ModelDir::open(&a.input)?;
    let q = quantize::quantize_dir(&src, &a.out, to)?;
    let (compute, compute_name) = match a.compute {
        ComputeArg::F32 => (DType::F32, "f32"),
        ComputeArg::F16 => (DType::F16, "f16"),
    };
    let ma = src.load(&device, Some(compute))?;
    let mb = q.dir.load(&device, Some(compute))?;
    let mut notes = vec![
        "int8 and f16/bf16 weights are converted to the compute dtype at load; forward times \
         differ only by noise unless the compute dtype differs"
            .to_string(),
    ];

    let measured = if a.no_eval {
        notes.push("--no-eval: logits compared on 64 synthetic windows".into());
        None
    } else {
        measure_split(&ma, &mb, a.data.clone(), &device, &mut notes)?
    };
    let (windows, windows_from, accuracy) = match measured {
        Some((w, acc)) => (w, "test split", Some(acc)),
        None => (synthetic_windows(&ma.card, 64, &device)?, "synthetic", None),
    };
    let logits = compare_logits(&ma, &mb, &windows, windows_from, compute)?;

    // Timed as the runtime runs them: batch norm folded.
    let fa = ma.encoder.fold_batch_norm()?;
    let fb = mb.encoder.fold_batch_norm()?;
    let mut timing = Vec::new();
    for batch in [1usize, 16] {
        let n = windows.dim(0)?;
        let x = if n >= batch {
            windows.narrow(0, 0, batch)?
        } else {
            synthetic_windows(&ma.card, batch, &device)?
        };
        let x = x.to_dtype(compute)?;
        let (ta, tb) = time_interleaved(fa.as_ref(), fb.as_ref(), &x, a.runs)?;
        timing.push(Timing {
            batch,
            runs: a.runs.max(1),
            source_ms: ta,
            quantized_ms: tb,
        });
    }

    // The quantized model's own metrics go into its card beside the source's.
    if let Some(acc) = &accuracy {
        let mut card = q.dir.card().clone();
        let m = &mut card.provenance.metrics;
        m.insert("top1".into(), acc.top1);
        m.insert("top5".into(), acc.top5);
        m.insert("test_samples".into(), acc.samples as f64);
        card.validate()?;
        let path = a.out.join(CARD_FILE);
        std::fs::write(&path, card.to_toml()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let report = Report {
        source: a.input.display().to_string(),
        out: a.out.display().to_string(),
        source_precision: precision_name(src.card().precision),
        precision: precision_name(to),
        compute: compute_name,
        parameters: ma.num_params,
        source_weight_bytes: file_len(&src.weights_path())?,
        weight_bytes: file_len(&q.dir.weights_path())?,
        source_header_bytes: header_len(&src.weights_path())?,
        header_bytes: header_len(&q.dir.weights_path())?,
        weight_error: ErrorSummary::of(q.errors.iter()),
        int8_weight_error: ErrorSummary::of(q.errors.iter().filter(|e| e.int8)),
        timing,
        logits,
        accuracy,
        notes,
    };
    let text = report.text();
    print!("{text}");
    let txt = a.out.join("quantize.txt");
    std::fs::write(&txt, &text).with_context(|| format!("writing {}", txt.display()))?;
    let json = a.out.join("quantize.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    Ok(())
}
