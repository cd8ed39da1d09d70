//! The SCD-Net classifier against its PyTorch reference
//! (`tests/fixtures/gen_scdnet.py`): every traced layer in f32, the
//! batch-norm-folded network in f32 and f16, the multiply-accumulates
//! PyTorch counts (what the board fit check reads), the input checks, and
//! the card's refusal of a window length the learnt positions do not fit.

mod common;

use std::collections::HashMap;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use skelact::model::card::{Architecture, ModelCard};
use skelact::model::scdnet::{Config, ScdNet, Widths};
use skelact::model::{builtin, flops, Encoder, Trace};
use skelact::Error;

const FIXTURE: &str = "scdnet.safetensors";

fn fixture_path() -> std::path::PathBuf {
    common::fixtures().join(FIXTURE)
}

fn fixture_tensors() -> Result<HashMap<String, Tensor>> {
    common::fixture_tensors(FIXTURE)
}

fn fixture_vb(dtype: DType) -> Result<VarBuilder<'static>> {
    common::fixture_weights(FIXTURE, dtype)
}

/// The configuration gen_scdnet.py's `CFG` describes.
fn config() -> Config {
    Config {
        layout: "kinect20-ucla".into(),
        num_class: 10,
        num_point: 20,
        num_person: 2,
        in_channels: 3,
        frames: 12,
        widths: Widths {
            gcn_channels: vec![8, 16, 8],
            temporal_kernel: 5,
            model_dim: 32,
            heads: 4,
            ff_dim: 48,
        },
    }
}

#[test]
fn fixture_metadata_matches_config() -> Result<()> {
    let bytes = std::fs::read(fixture_path())?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let c = config();
    let w = &c.widths;
    let gcn: Vec<String> = w.gcn_channels.iter().map(usize::to_string).collect();
    for (key, want) in [
        ("gcn", gcn.join(",")),
        ("kernel", w.temporal_kernel.to_string()),
        ("d", w.model_dim.to_string()),
        ("heads", w.heads.to_string()),
        ("ff", w.ff_dim.to_string()),
        ("frames", c.frames.to_string()),
        ("persons", c.num_person.to_string()),
        ("channels", c.in_channels.to_string()),
        ("classes", c.num_class.to_string()),
    ] {
        assert_eq!(meta[key], want, "fixture metadata `{key}`");
    }
    Ok(())
}

#[test]
fn macs_match_pytorchs_count() -> Result<()> {
    let bytes = std::fs::read(fixture_path())?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let want: u64 = meta.metadata().clone().unwrap_or_default()["macs"].parse()?;
    let ts = fixture_tensors()?;
    let model = ScdNet::new(&config(), fixture_vb(DType::F32)?)?;
    let (ran, counted) = flops::measure(|| model.forward_t(&ts["input"], false).is_ok());
    assert!(ran);
    assert_eq!(counted, want);
    assert_eq!(model.macs(3), want);
    Ok(())
}

#[test]
fn every_layer_matches_reference_f32() -> Result<()> {
    let ts = fixture_tensors()?;
    let want = common::reference_traces(&ts);
    let model = ScdNet::new(&config(), fixture_vb(DType::F32)?)?;
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
fn folded_matches_unfolded_and_reference_in_f32_and_f16() -> Result<()> {
    let ts = fixture_tensors()?;
    let want = common::reference_traces(&ts);
    let model = ScdNet::new(&config(), fixture_vb(DType::F32)?)?;
    let folded = model.fold_batch_norm()?;
    let mut t_plain = Trace::on();
    model.forward_traced(&ts["input"], false, &mut t_plain)?;
    let mut t_fold = Trace::on();
    folded.forward_traced(&ts["input"], false, &mut t_fold)?;
    assert_eq!(t_fold.entries().len(), want.len());
    let mut worst_fold = 0f64;
    for (name, t) in t_fold.entries() {
        let plain = t_plain.get(name).expect("same names");
        worst_fold = worst_fold.max(common::rel_err(t, plain));
        common::assert_close(&format!("{name} (folded)"), t, plain, common::FOLD_REL);
        common::assert_close(
            &format!("{name} (folded vs reference)"),
            t,
            &want[name],
            common::F32_REL,
        );
    }
    eprintln!("folded vs unfolded: worst relative error {worst_fold:.3e}");
    // f16 weights; the f32 input is cast to the weights' dtype.
    let half = ScdNet::new(&config(), fixture_vb(DType::F16)?)?.fold_batch_norm()?;
    let mut t_half = Trace::on();
    let logits = half.forward_traced(&ts["input"], false, &mut t_half)?;
    assert_eq!(logits.dtype(), DType::F16);
    let worst = common::assert_trace_matches(&t_half, &want, common::F16_REL);
    eprintln!("folded f16: worst relative error {worst:.3e}");
    Ok(())
}

#[test]
fn features_map_is_the_last_gcn_unit() -> Result<()> {
    let ts = fixture_tensors()?;
    let model = ScdNet::new(&config(), fixture_vb(DType::F32)?)?;
    let (logits, map) = model.forward_with_features(&ts["input"], false)?;
    common::assert_close("logits", &logits, &ts["trace.logits"], common::F32_REL);
    // (N*M, C, T, V) against the reference's (N*M, T, V, C)
    assert_eq!(map.dims(), &[6, 8, 12, 20]);
    let want = ts["trace.gcn.2"].permute((0, 3, 1, 2))?;
    common::assert_close("map", &map, &want, common::F32_REL);
    Ok(())
}

#[test]
fn wrong_input_shape_is_an_error() -> Result<()> {
    let model = ScdNet::new(&config(), fixture_vb(DType::F32)?)?;
    let dev = Device::Cpu;
    for shape in [
        vec![2, 3, 12, 20],    // no person axis
        vec![2, 3, 16, 20, 2], // 16 frames: the positions are for 12
        vec![2, 3, 12, 25, 2], // 25 joints
        vec![2, 6, 12, 20, 2], // 6 channels
        vec![2, 3, 12, 20, 1], // 1 person
        vec![0, 3, 12, 20, 2], // empty batch
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
fn config_and_card_refuse_what_the_weights_cannot_hold() -> Result<()> {
    let mut bad = config();
    bad.widths.heads = 5; // does not divide 32
    assert!(bad.validate().is_err());
    let mut bad = config();
    bad.num_point = 25;
    assert!(bad.validate().is_err());
    let mut bad = config();
    bad.widths.temporal_kernel = 4;
    assert!(bad.validate().is_err());
    // A card whose window differs from the learnt positions' is refused.
    let mut card = builtin::card("ctrgcn-edge").expect("a builtin")?;
    let layout = card.layout()?.name();
    let mut cfg = Config::small(layout, card.classes.len(), card.temporal.frames)?;
    cfg.num_person = card.input.persons;
    card.architecture = Architecture::Scdnet(cfg);
    card.validate()?;
    let text = card.to_toml()?;
    let back = ModelCard::from_toml(&text, std::path::Path::new("model.toml"))?;
    assert_eq!(back.architecture, card.architecture);
    card.temporal.frames += 4;
    match card.validate() {
        Err(Error::Mismatch { field, .. }) => assert_eq!(field, "architecture.scdnet.frames"),
        other => panic!("expected a frames mismatch, got {other:?}"),
    }
    Ok(())
}
