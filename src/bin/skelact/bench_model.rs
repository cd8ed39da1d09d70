//! `skelact bench model`: the same CTR-GCN, the same weights and the same
//! windows timed in PyTorch eager (the repo's reference implementation,
//! `tests/fixtures/bench_reference.py`) and in skelact — the candle graph
//! and the CPU plan — in one run, with the time ratios, the achieved
//! GFLOP/s next to this machine's measured matrix-product rate, and the
//! logits' agreement.
//!
//! Rust is timed twice, before and after PyTorch, so a machine that gets
//! busier or quieter during the run shows up in both sides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::Serialize;
use skelact::kernel::{matmul, MatMut, MatRef};
use skelact::model::card::Architecture;
use skelact::model::ctrgcn::{Config, CpuCtrGcn, CtrGcn};
use skelact::model::{builtin, flops, Encoder, ModelDir};

/// Options of `skelact bench model`.
#[derive(clap::Args, Debug)]
pub struct BenchModelArgs {
    /// A CTR-GCN model directory, or a built-in CTR-GCN architecture
    /// (ctrgcn = the published NTU-60 network, ctrgcn-edge).
    #[arg(long, default_value = "ctrgcn")]
    pub model: String,
    /// Frames per window.
    #[arg(long, default_value_t = 64)]
    pub frames: usize,
    /// Persons per window (built-in architectures only).
    #[arg(long, default_value_t = 1)]
    pub persons: usize,
    /// Batch sizes, comma separated.
    #[arg(long, default_value = "1,32")]
    pub batch: String,
    /// Iterations per batch size (same order), comma separated.
    #[arg(long, default_value = "20,4")]
    pub iters: String,
    /// Weight dtypes, comma separated (f32, f16, bf16).
    #[arg(long, default_value = "f32,f16")]
    pub dtype: String,
    /// Threads for both sides.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// The Python that runs the PyTorch side.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Skip the PyTorch side.
    #[arg(long)]
    pub no_reference: bool,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also print where the CPU plan's time goes at batch 1, per stage.
    #[arg(long)]
    pub profile: bool,
    /// Also time a training step (forward, cross-entropy, backward, SGD
    /// with Nesterov momentum) at this batch size on both sides (feature
    /// `train`; 0 skips it).
    #[arg(long, default_value_t = 0)]
    pub train_batch: usize,
    /// Training steps timed per side.
    #[arg(long, default_value_t = 4)]
    pub train_iters: usize,
}

#[derive(Debug, Serialize, Default, Clone)]
struct Row {
    dtype: String,
    batch: usize,
    torch_ms: Option<f64>,
    candle_ms: f64,
    skelact_ms: f64,
    /// skelact / torch.
    ratio_skelact: Option<f64>,
    /// candle / torch.
    ratio_candle: Option<f64>,
    skelact_gflops: f64,
    torch_note: Option<String>,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    model: String,
    frames: usize,
    persons: usize,
    threads: usize,
    macs_per_window: u64,
    matmul_gflops: f64,
    torch_version: Option<String>,
    /// max |skelact − torch| / max |torch| on the batch-1 logits, f32.
    logits_rel_err_f32: Option<f64>,
    rows: Vec<Row>,
    /// Training step (f32), if asked for.
    train: Option<TrainRow>,
}

#[derive(Debug, Serialize, Clone)]
struct TrainRow {
    batch: usize,
    torch_ms: Option<f64>,
    skelact_ms: f64,
    /// skelact / torch.
    ratio: Option<f64>,
    torch_samples_per_s: Option<f64>,
    skelact_samples_per_s: f64,
}

/// Milliseconds per training step of the candle model (the trainer's own
/// pieces: backend, loss, optimizer), `iters` steps after one warm-up.
#[cfg(feature = "train")]
fn rust_train_steps(
    cfg: &Config,
    weights: &HashMap<String, Tensor>,
    batch: usize,
    frames: usize,
    iters: usize,
) -> Result<Vec<f64>> {
    use skelact::model::card::Architecture;
    use skelact::train::{loss, trainer, TrainConfig};
    let dev = Device::Cpu;
    let arch = Architecture::Ctrgcn(cfg.clone());
    let varmap = VarMap::new();
    let (vb, _backend) = skelact::train::backend::var_builder(&varmap, &arch, &dev, 1);
    let model = skelact::model::directory::build_encoder(&arch, vb)?;
    for (name, var) in varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("weight map poisoned"))?
        .iter()
    {
        if let Some(w) = weights.get(name) {
            var.set(&w.to_dtype(DType::F32)?)?;
        }
    }
    let tc = TrainConfig::nwucla(PathBuf::new(), PathBuf::new(), 1);
    let mut opt = tc.build_optimizer(trainer::params(&varmap)?);
    opt.set_lr(0.01);
    let x = Tensor::randn(
        0f32,
        1.0,
        (
            batch,
            cfg.in_channels,
            frames,
            cfg.num_point,
            cfg.num_person,
        ),
        &dev,
    )?;
    let labels: Vec<u32> = (0..batch).map(|i| (i % cfg.num_class) as u32).collect();
    let y = Tensor::from_vec(labels, batch, &dev)?;
    time_ms(iters, || {
        let logits = model.forward_t(&x, true)?;
        let l = loss::cross_entropy_smoothed(&logits, &y, 0.0)?;
        let grads = l.backward()?;
        opt.step(&grads, 1.0)?;
        Ok(())
    })
}

#[cfg(not(feature = "train"))]
fn rust_train_steps(
    _: &Config,
    _: &HashMap<String, Tensor>,
    _: usize,
    _: usize,
    _: usize,
) -> Result<Vec<f64>> {
    bail!("--train-batch needs a build with --features train")
}

fn parse_list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .with_context(|| format!("bad number {x:?}"))
        })
        .collect()
}

fn dtype_of(s: &str) -> Result<DType> {
    Ok(match s {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => bail!("unknown dtype {s} (f32, f16, bf16)"),
    })
}

/// The configuration and weights to benchmark.
fn model_weights(a: &BenchModelArgs) -> Result<(Config, HashMap<String, Tensor>)> {
    let dev = Device::Cpu;
    if let Some(card) = builtin::card(&a.model) {
        let card = card?;
        let Architecture::Ctrgcn(mut cfg) = card.architecture else {
            bail!(
                "bench model compares CTR-GCN networks; {} is not one",
                a.model
            );
        };
        cfg.num_person = a.persons;
        let vm = VarMap::new();
        CtrGcn::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
        // The initialisation's unit-BN gamma of 1e-6 and alpha of 0 give
        // activations of 1e-6 and below — denormal floats, which slow both
        // sides by an order of magnitude — and BN running statistics of
        // (0, 1) let activations grow without bound over ten blocks. Give
        // the network a trained one's scale instead: gamma 1, alpha 0.5,
        // and running statistics calibrated by training-mode passes over
        // random windows.
        for (k, v) in vm
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("weight map poisoned"))?
            .iter()
        {
            let t = v.as_tensor();
            if k.ends_with("gcn1.bn.weight") {
                v.set(&t.ones_like()?)?;
            } else if k.ends_with("gcn1.alpha") {
                v.set(&(t.ones_like()? * 0.5)?)?;
            }
        }
        let model = CtrGcn::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
        let x = Tensor::randn(
            0f32,
            1.0,
            (
                4,
                cfg.in_channels,
                a.frames.min(32),
                cfg.num_point,
                cfg.num_person,
            ),
            &dev,
        )?;
        for _ in 0..12 {
            model.forward_t(&x, true)?;
        }
        let w: HashMap<String, Tensor> = vm
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("weight map poisoned"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        return Ok((cfg, w));
    }
    let dir = ModelDir::open(&a.model).with_context(|| format!("open {}", a.model))?;
    let Architecture::Ctrgcn(cfg) = dir.card().architecture.clone() else {
        bail!(
            "bench model compares CTR-GCN networks; {} is not one",
            a.model
        );
    };
    let w = skelact::model::directory::read_safetensors(&dir.weights_path(), &dev)?;
    Ok((cfg, w))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `f` `n` times after one warm-up call; milliseconds per call.
fn time_ms(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    f()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f()?;
        out.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// This machine's f32 matrix-product rate on `threads` threads (the same
/// `gemm` kernel the CPU plan calls), GFLOP/s, best of a few runs.
fn matmul_rate(threads: usize) -> f64 {
    let n = 512;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0f32; n * n];
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t0 = Instant::now();
        matmul(
            MatMut::dense(&mut c, n, n),
            MatRef::dense(&a, n, n),
            MatRef::dense(&b, n, n),
            false,
            threads,
        );
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

struct Variant {
    dtype: String,
    plan: CpuCtrGcn,
    candle: Box<dyn Encoder>,
}

fn rust_pass(
    variants: &[Variant],
    inputs: &HashMap<usize, Tensor>,
    batches: &[usize],
    iters: &[usize],
    times: &mut HashMap<(String, usize, &'static str), Vec<f64>>,
) -> Result<()> {
    for v in variants {
        let dt = dtype_of(&v.dtype)?;
        for (&b, &n) in batches.iter().zip(iters) {
            let x = inputs[&b].to_dtype(dt)?;
            let t = time_ms(n.div_ceil(2), || {
                v.plan.forward(&x)?;
                Ok(())
            })?;
            times
                .entry((v.dtype.clone(), b, "skelact"))
                .or_default()
                .extend(t);
            let t = time_ms(n.div_ceil(2), || {
                v.candle.forward_t(&x, false)?;
                Ok(())
            })?;
            times
                .entry((v.dtype.clone(), b, "candle"))
                .or_default()
                .extend(t);
        }
    }
    Ok(())
}

fn run_reference(a: &BenchModelArgs, dir: &Path) -> Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench_reference.py");
    let out = dir.join("torch.json");
    let status = Command::new(&a.python)
        .arg(&script)
        .args(["--dir".as_ref(), dir.as_os_str()])
        .args(["--threads", &a.threads.to_string()])
        .args([
            "--batches",
            &a.batch,
            "--dtypes",
            &a.dtype,
            "--iters",
            &a.iters,
        ])
        .args(["--out".as_ref(), out.as_os_str()])
        .args(["--train-batch", &a.train_batch.to_string()])
        .args(["--train-iters", &a.train_iters.to_string()])
        .status()
        .with_context(|| format!("run {} {}", a.python, script.display()))?;
    if !status.success() {
        bail!("the PyTorch side failed ({status})");
    }
    let text = std::fs::read_to_string(&out)?;
    Ok(serde_json::from_str(&text)?)
}

/// `skelact bench model`.
pub fn bench_model(a: &BenchModelArgs) -> Result<()> {
    // Both sides get the same number of threads; candle's element-wise
    // pool stays at one thread (CANDLE-NOTES.md).
    std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build_global();
    let batches = parse_list(&a.batch)?;
    let iters = parse_list(&a.iters)?;
    if batches.len() != iters.len() || batches.is_empty() {
        bail!("--batch and --iters need the same number of entries");
    }
    let dtypes: Vec<String> = a.dtype.split(',').map(|s| s.trim().to_string()).collect();
    let (cfg, weights) = model_weights(a)?;
    let dev = Device::Cpu;

    // The windows and the weights, written for the PyTorch side.
    let dir = std::env::temp_dir().join(format!("skelact-bench-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut inputs = HashMap::new();
    for &b in &batches {
        let x = Tensor::randn(
            0f32,
            1.0,
            (b, cfg.in_channels, a.frames, cfg.num_point, cfg.num_person),
            &dev,
        )?;
        inputs.insert(b, x);
    }
    let named: HashMap<String, Tensor> = inputs
        .iter()
        .map(|(b, x)| (format!("x_b{b}"), x.clone()))
        .collect();
    candle_core::safetensors::save(&named, dir.join("input.safetensors"))?;
    let f32w: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&f32w, dir.join("weights.safetensors"))?;
    std::fs::write(dir.join("config.json"), serde_json::to_string(&cfg)?)?;

    // skelact: the CPU plan and the (folded) candle graph, per weight dtype.
    let mut variants = Vec::new();
    for d in &dtypes {
        let dt = dtype_of(d)?;
        let w: HashMap<String, Tensor> = weights
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.to_dtype(dt)?)))
            .collect::<Result<_>>()?;
        let plan = CpuCtrGcn::new(&cfg, &w)?;
        let vb = VarBuilder::from_tensors(w, dt, &dev);
        let candle = CtrGcn::new(&cfg, vb)?.fold_batch_norm()?;
        variants.push(Variant {
            dtype: d.clone(),
            plan,
            candle,
        });
    }
    let x1 = Tensor::randn(
        0f32,
        1.0,
        (1, cfg.in_channels, a.frames, cfg.num_point, cfg.num_person),
        &dev,
    )?;
    let (_, macs) = flops::measure(|| variants[0].candle.forward_t(&x1, false).is_ok());
    let gemm_rate = matmul_rate(a.threads);
    eprintln!(
        "bench model: {} ({} frames, {} persons), {:.3} GMACs per window, {} threads; matmul {:.0} GFLOP/s",
        a.model,
        a.frames,
        cfg.num_person,
        macs as f64 / 1e9,
        a.threads,
        gemm_rate
    );

    let mut times = HashMap::new();
    let mut train_ms = Vec::new();
    // Rust before and after PyTorch, half of the iterations each time.
    let rust_round = |times: &mut HashMap<_, _>, train_ms: &mut Vec<f64>| -> Result<()> {
        rust_pass(&variants, &inputs, &batches, &iters, times)?;
        if a.train_batch > 0 {
            let half = a.train_iters.div_ceil(2);
            train_ms.extend(rust_train_steps(
                &cfg,
                &weights,
                a.train_batch,
                a.frames,
                half,
            )?);
        }
        Ok(())
    };
    rust_round(&mut times, &mut train_ms)?;
    let torch = if a.no_reference {
        None
    } else {
        eprintln!("bench model: PyTorch eager ...");
        Some(run_reference(a, &dir)?)
    };
    rust_round(&mut times, &mut train_ms)?;

    // Logits agreement on the batch-1 window, f32.
    let mut rel_err = None;
    if let (Some(t), Some(x)) = (&torch, inputs.get(&1)) {
        if let (Some(want), Some(v)) = (
            t["logits"]["f32"].as_array(),
            variants.iter().find(|v| v.dtype == "f32"),
        ) {
            let want: Vec<f32> = want
                .iter()
                .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                .filter_map(|x| x.as_f64().map(|x| x as f32))
                .collect();
            let got = v.plan.forward(x)?.flatten_all()?.to_vec1::<f32>()?;
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
            let diff = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            rel_err = Some((diff / scale) as f64);
        }
    }

    let mut rows = Vec::new();
    for d in &dtypes {
        for &b in &batches {
            let sk = median(times[&(d.clone(), b, "skelact")].clone());
            let ca = median(times[&(d.clone(), b, "candle")].clone());
            let mut row = Row {
                dtype: d.clone(),
                batch: b,
                candle_ms: ca,
                skelact_ms: sk,
                skelact_gflops: 2.0 * macs as f64 * b as f64 / (sk / 1e3) / 1e9,
                ..Row::default()
            };
            if let Some(t) = &torch {
                let hit = t["runs"].as_array().and_then(|runs| {
                    runs.iter()
                        .find(|r| r["dtype"] == d.as_str() && r["batch"] == b)
                        .cloned()
                });
                if let Some(r) = hit {
                    if let Some(ms) = r["median_ms"].as_f64() {
                        row.torch_ms = Some(ms);
                        row.ratio_skelact = Some(sk / ms);
                        row.ratio_candle = Some(ca / ms);
                    } else {
                        row.torch_note = r["error"].as_str().map(str::to_string);
                    }
                }
            }
            rows.push(row);
        }
    }
    let train = (a.train_batch > 0).then(|| {
        let sk = median(train_ms.clone());
        let torch_ms = torch
            .as_ref()
            .and_then(|t| t["train"]["median_ms"].as_f64());
        let per_s = |ms: f64| a.train_batch as f64 / (ms / 1e3);
        TrainRow {
            batch: a.train_batch,
            torch_ms,
            skelact_ms: sk,
            ratio: torch_ms.map(|t| sk / t),
            torch_samples_per_s: torch_ms.map(per_s),
            skelact_samples_per_s: per_s(sk),
        }
    });
    let report = BenchReport {
        model: a.model.clone(),
        frames: a.frames,
        persons: cfg.num_person,
        threads: a.threads,
        macs_per_window: macs,
        matmul_gflops: gemm_rate,
        torch_version: torch
            .as_ref()
            .and_then(|t| t["torch"].as_str().map(str::to_string)),
        logits_rel_err_f32: rel_err,
        rows,
        train,
    };
    print_report(&report);
    if a.profile {
        let (stages, wall) = variants[0].plan.profile(&x1, 20)?;
        println!(
            "CPU plan at batch 1, {} weights: {wall:.1} ms per window",
            variants[0].dtype
        );
        for (name, ms) in stages {
            println!("  {ms:>7.2} ms  {:>4.0} %  {name}", 100.0 * ms / wall);
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn print_report(r: &BenchReport) {
    println!(
        "{} — {} frames, {} person(s), {:.3} GMACs/window, {} threads, matmul rate {:.0} GFLOP/s{}",
        r.model,
        r.frames,
        r.persons,
        r.macs_per_window as f64 / 1e9,
        r.threads,
        r.matmul_gflops,
        r.torch_version
            .as_ref()
            .map(|v| format!(", torch {v}"))
            .unwrap_or_default()
    );
    println!(
        "{:<6} {:>5} {:>11} {:>11} {:>8} {:>11} {:>8} {:>9}",
        "dtype", "batch", "torch ms", "candle ms", "×torch", "skelact ms", "×torch", "GFLOP/s"
    );
    let opt = |x: Option<f64>, p: usize| x.map_or("-".to_string(), |x| format!("{x:.p$}"));
    for row in &r.rows {
        println!(
            "{:<6} {:>5} {:>11} {:>11.1} {:>8} {:>11.1} {:>8} {:>9.1}{}",
            row.dtype,
            row.batch,
            opt(row.torch_ms, 1),
            row.candle_ms,
            opt(row.ratio_candle, 2),
            row.skelact_ms,
            opt(row.ratio_skelact, 2),
            row.skelact_gflops,
            row.torch_note
                .as_ref()
                .map(|n| format!("  (torch: {n})"))
                .unwrap_or_default()
        );
    }
    if let Some(t) = &r.train {
        println!(
            "training step, batch {}, f32: torch {} ms ({} samples/s), skelact {:.0} ms ({:.1} samples/s), ×torch {}",
            t.batch,
            opt(t.torch_ms, 0),
            opt(t.torch_samples_per_s, 1),
            t.skelact_ms,
            t.skelact_samples_per_s,
            opt(t.ratio, 2)
        );
    }
    if let Some(e) = r.logits_rel_err_f32 {
        println!("batch-1 logits, skelact vs torch (f32): relative error {e:.2e}");
    }
}
