//! ST-GCN against its PyTorch reference (`tests/fixtures/gen_stgcn.py`):
//! every traced layer in f32, the batch-norm-folded network in f32 and f16,
//! input validation, missing weights and graph mismatches, the parameter
//! count and the multiply-accumulates of the published and edge variants.

mod common;

use std::collections::HashMap;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use skelact::model::stgcn::{Config, StGcn};
use skelact::model::{flops, Encoder, Trace};
use skelact::skeleton::{graph, Layout};
use skelact::Error;

/// `sum(p.numel() for p in model.parameters())` of the reference, NTU-60
/// (printed by gen_stgcn.py).
const PUBLISHED_PARAMS: usize = 3_098_832;
/// The same for `Config::edge("ntu25", 60)`.
const EDGE_PARAMS: usize = 516_132;
/// MACs of one NTU sample (T = 64, M = 2), as gen_stgcn.py counts them.
const PUBLISHED_MACS: u64 = 3_646_479_360;
/// The same for the edge variant.
const EDGE_MACS: u64 = 612_871_680;

const FIXTURE: &str = "stgcn.safetensors";

fn fixture_path() -> std::path::PathBuf {
    common::fixtures().join(FIXTURE)
}

fn fixture_tensors() -> Result<HashMap<String, Tensor>> {
    common::fixture_tensors(FIXTURE)
}

fn fixture_vb(dtype: DType) -> Result<VarBuilder<'static>> {
    common::fixture_weights(FIXTURE, dtype)
}

fn config() -> Result<Config> {
    Ok(Config::published("ntu25", 60)?)
}

#[test]
fn fixture_metadata_matches_published_config() -> Result<()> {
    let bytes = std::fs::read(fixture_path())?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let cfg = config()?;
    assert_eq!(meta["num_class"], cfg.num_class.to_string());
    assert_eq!(meta["num_point"], cfg.num_point.to_string());
    assert_eq!(meta["num_person"], cfg.num_person.to_string());
    assert_eq!(meta["in_channels"], cfg.in_channels.to_string());
    assert_eq!(meta["layout"], cfg.layout);
    Ok(())
}

#[test]
fn adjacency_equals_reference_buffer() -> Result<()> {
    let ts = fixture_tensors()?;
    let l = Layout::ntu25();
    assert_eq!(l.root(), 20);
    let a = graph::stgcn_spatial(l, l.root(), 1, 1).to_tensor(&Device::Cpu)?;
    let want = &ts["weight.A"];
    assert_eq!(a.dims(), want.dims());
    let diff = (a - want)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    assert_eq!(diff, 0.0, "A differs from the reference's by {diff}");
    Ok(())
}

#[test]
fn every_layer_matches_reference_f32() -> Result<()> {
    let ts = fixture_tensors()?;
    let want = common::reference_traces(&ts);
    let model = StGcn::new(&config()?, fixture_vb(DType::F32)?)?;
    let mut trace = Trace::on();
    let logits = model.forward_traced(&ts["input"], false, &mut trace)?;
    let worst = common::assert_trace_matches(&trace, &want, common::F32_REL);
    common::assert_close("returned logits", &logits, &want["logits"], common::F32_REL);
    eprintln!(
        "f32 parity: {} layers, worst relative error {worst:.3e}",
        want.len()
    );
    Ok(())
}

#[test]
fn folded_matches_unfolded_and_reference() -> Result<()> {
    let ts = fixture_tensors()?;
    let want = common::reference_traces(&ts);
    let model = StGcn::new(&config()?, fixture_vb(DType::F32)?)?;
    let folded = model.fold_batch_norm()?;
    let mut t_plain = Trace::on();
    model.forward_traced(&ts["input"], false, &mut t_plain)?;
    let mut t_fold = Trace::on();
    folded.forward_traced(&ts["input"], false, &mut t_fold)?;
    // input_bn, block1..10, pooled, logits (no block{k}.gcn: a folded block
    // has no tensor with that meaning).
    assert_eq!(t_fold.entries().len(), 13);
    let (mut worst_fold, mut worst_ref) = (0f64, 0f64);
    for (name, t) in t_fold.entries() {
        let plain = t_plain
            .get(name)
            .expect("unfolded trace has every folded name");
        common::assert_close(
            &format!("{name} (fold vs unfolded)"),
            t,
            plain,
            common::FOLD_REL,
        );
        common::assert_close(
            &format!("{name} (fold vs reference)"),
            t,
            &want[name],
            common::F32_REL,
        );
        worst_fold = worst_fold.max(common::rel_err(t, plain));
        worst_ref = worst_ref.max(common::rel_err(t, &want[name]));
    }
    eprintln!("folded: worst vs unfolded {worst_fold:.3e}, vs reference {worst_ref:.3e}");
    Ok(())
}

#[test]
fn folded_f16_matches_reference() -> Result<()> {
    let ts = fixture_tensors()?;
    let want = common::reference_traces(&ts);
    let model = StGcn::new(&config()?, fixture_vb(DType::F16)?)?;
    let folded = model.fold()?;
    let x = ts["input"].to_dtype(DType::F16)?;
    let mut trace = Trace::on();
    let logits = folded.forward_traced(&x, false, &mut trace)?;
    assert_eq!(logits.dtype(), DType::F16);
    let mut worst = 0f64;
    for name in ["block9", "block10", "pooled", "logits"] {
        let got = trace.get(name).expect("traced");
        common::assert_close(&format!("{name} (f16)"), got, &want[name], common::F16_REL);
        worst = worst.max(common::rel_err(got, &want[name]));
    }
    eprintln!("folded f16: worst relative error {worst:.3e}");
    Ok(())
}

#[test]
fn features_are_the_last_block() -> Result<()> {
    let ts = fixture_tensors()?;
    let model = StGcn::new(&config()?, fixture_vb(DType::F32)?)?;
    let f = model.features(&ts["input"], false)?;
    assert_eq!(f.dims(), &[4, 256, 4, 25]);
    common::assert_close("features", &f, &ts["trace.block10"], common::F32_REL);
    Ok(())
}

#[test]
fn wrong_input_shape_is_an_error() -> Result<()> {
    let model = StGcn::new(&config()?, fixture_vb(DType::F32)?)?;
    let dev = Device::Cpu;
    for shape in [
        vec![2, 3, 16, 25],       // no person axis
        vec![2, 3, 16, 20, 2],    // 20 joints
        vec![2, 2, 16, 25, 2],    // 2 channels
        vec![2, 3, 16, 25, 1],    // 1 person
        vec![2, 3, 0, 25, 2],     // no frames
        vec![1, 2, 3, 16, 25, 2], // rank 6
    ] {
        let x = Tensor::zeros(shape.as_slice(), DType::F32, &dev)?;
        match model.forward_t(&x, false) {
            Err(Error::Shape { got, .. }) => assert_eq!(got, shape),
            other => panic!("{shape:?}: expected a shape error, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn missing_weight_is_an_error_naming_it() -> Result<()> {
    let mut ts = fixture_tensors()?;
    let name = "weight.st_gcn_networks.3.tcn.2.weight";
    assert!(ts.remove(name).is_some());
    let vb = VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu).pp("weight");
    let err = StGcn::new(&config()?, vb).expect_err("a weight is missing");
    let msg = err.to_string();
    assert!(msg.contains("st_gcn_networks.3.tcn.2.weight"), "{msg}");
    Ok(())
}

#[test]
fn other_graph_or_joint_count_is_refused() -> Result<()> {
    // A checkpoint trained on another graph carries another `A`.
    let mut ts = fixture_tensors()?;
    let a = ts["weight.A"].clone();
    let other = a.transpose(1, 2)?.contiguous()?;
    ts.insert("weight.A".into(), other);
    let vb = VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu).pp("weight");
    match StGcn::new(&config()?, vb) {
        Err(Error::Mismatch { field, .. }) => assert_eq!(field, "A"),
        other => panic!("expected a mismatch on A, got {other:?}"),
    }
    // num_point must be the layout's joint count.
    let mut cfg = config()?;
    cfg.num_point = 20;
    let vm = VarMap::new();
    match StGcn::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)) {
        Err(Error::Mismatch { field, .. }) => assert_eq!(field, "num_point"),
        other => panic!("expected a mismatch on num_point, got {other:?}"),
    }
    Ok(())
}

/// Learnable parameters of a fresh model (BN running statistics are
/// buffers in PyTorch, not parameters).
fn fresh(cfg: &Config) -> Result<(StGcn, VarMap, usize)> {
    let vm = VarMap::new();
    let model = StGcn::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))?;
    let params = vm
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
        .map(|(_, v)| v.elem_count())
        .sum();
    Ok((model, vm, params))
}

#[test]
fn parameter_counts() -> Result<()> {
    let (_, _, published) = fresh(&config()?)?;
    assert_eq!(published, PUBLISHED_PARAMS);
    let (_, _, edge) = fresh(&Config::edge("ntu25", 60)?)?;
    assert_eq!(edge, EDGE_PARAMS);
    eprintln!("params: published {published}, edge {edge}");
    Ok(())
}

#[test]
fn macs_of_one_ntu_sample() -> Result<()> {
    for (cfg, want) in [
        (config()?, PUBLISHED_MACS),
        (Config::edge("ntu25", 60)?, EDGE_MACS),
    ] {
        let (model, _, _) = fresh(&cfg)?;
        let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 25, 2), &Device::Cpu)?;
        let (y, macs) = flops::measure(|| model.forward_t(&x, false).map_err(anyhow::Error::from));
        assert_eq!(y?.dims(), &[1, 60]);
        assert_eq!(macs, want, "{} blocks", cfg.blocks.len());
        eprintln!(
            "{} blocks: {macs} MACs per 64-frame, 2-person sample",
            cfg.blocks.len()
        );
    }
    Ok(())
}

#[test]
fn training_step_reaches_every_parameter() -> Result<()> {
    let cfg = Config::edge("ntu25", 60)?;
    let (model, vm, _) = fresh(&cfg)?;
    let x = Tensor::randn(0f32, 1.0, (2, 3, 12, 25, 2), &Device::Cpu)?;
    let logits = model.forward_t(&x, true)?;
    let loss = logits.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    let data = vm.data().lock().expect("varmap lock");
    for (name, var) in data.iter() {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            continue;
        }
        let g = grads.get(var.as_tensor());
        assert!(g.is_some(), "{name} gets no gradient");
    }
    Ok(())
}
