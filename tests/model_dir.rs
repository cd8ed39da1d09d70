//! Model directories: the card round-trips, loading refuses every kind of
//! mismatch with an error naming the field, and bad weight files or inputs
//! give typed errors, never panics.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use skelact::model::card::{ModelCard, CARD_FILE, WEIGHTS_FILE};
use skelact::model::directory::{build_encoder, is_statistic, read_safetensors, write_safetensors};
use skelact::model::{builtin, ModelDir};
use skelact::Error;

fn edge_card() -> ModelCard {
    builtin::card("ctrgcn-edge").expect("known").expect("valid")
}

fn window(card: &ModelCard, n: usize) -> Tensor {
    let v = card.layout().unwrap().num_joints();
    Tensor::randn(
        0f32,
        0.5,
        (
            n,
            card.input.channels(),
            card.temporal.frames,
            v,
            card.input.persons,
        ),
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn card_round_trips_through_toml() {
    for name in builtin::NAMES {
        let card = builtin::card(name).unwrap().unwrap();
        let text = card.to_toml().unwrap();
        let back = ModelCard::from_toml(&text, "model.toml".as_ref()).unwrap();
        assert_eq!(back, card, "{name}");
        back.validate().unwrap();
    }
}

#[test]
fn unknown_card_key_is_refused_naming_it() {
    let text = edge_card().to_toml().unwrap();
    let text = text.replacen("[input]\n", "[input]\nstreems = [\"joint\"]\n", 1);
    let err = ModelCard::from_toml(&text, "model.toml".as_ref()).unwrap_err();
    assert!(matches!(err, Error::Toml { .. }), "{err}");
    assert!(err.to_string().contains("streems"), "{err}");
}

#[test]
fn mismatches_are_refused_naming_the_field() {
    let mut card = edge_card();
    card.skeleton.edge_hash = "0000".into();
    let err = card.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch { field, .. } if field == "skeleton.edge_hash"),
        "{err}"
    );

    let mut card = edge_card();
    card.classes.pop();
    let err = card.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch { field, .. } if field.ends_with("num_class")),
        "{err}"
    );

    let mut card = edge_card();
    card.input.persons = 2;
    let err = card.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch { field, .. } if field.ends_with("num_person")),
        "{err}"
    );

    let mut card = edge_card();
    card.input.streams.push(skelact::window::Stream::Bone);
    let err = card.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch { field, .. } if field.ends_with("in_channels")),
        "{err}"
    );

    let mut card = edge_card();
    card.skeleton.layout = "ntu25".into();
    card.skeleton.edge_hash = skelact::skeleton::Layout::ntu25().edge_hash();
    let err = card.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch { field, .. } if field.ends_with("num_point")),
        "{err}"
    );

    let mut card = edge_card();
    card.skeleton.layout = "kinect99".into();
    assert!(matches!(
        card.validate().unwrap_err(),
        Error::Unknown { kind: "layout", .. }
    ));
}

/// Test-time views are part of the card: written only when present, read
/// back, and refused when not finite or too many.
#[test]
fn test_time_views_round_trip_and_are_checked() {
    let text = edge_card().to_toml().unwrap();
    assert!(!text.contains("views"), "an empty list is not written");
    let mut card = edge_card();
    card.input.views = vec![-30.0, 0.0, 30.0];
    let back = ModelCard::from_toml(&card.to_toml().unwrap(), "model.toml".as_ref()).unwrap();
    assert_eq!(back.input.views, vec![-30.0, 0.0, 30.0]);
    back.validate().unwrap();
    card.input.views = vec![0.0, f32::NAN];
    let err = card.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch { field, .. } if field == "input.views"),
        "{err}"
    );
    card.input.views = vec![0.0; skelact::model::card::MAX_VIEWS + 1];
    let err = card.validate().unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch { field, .. } if field == "input.views"),
        "{err}"
    );
}

#[test]
fn create_then_load_gives_the_same_outputs() {
    let card = edge_card();
    let weights = common::seeded_weights(&card, 1);
    let dir = tempfile::tempdir().unwrap();
    let md = ModelDir::create(dir.path(), &card, &weights).unwrap();
    let loaded = ModelDir::open(md.path())
        .unwrap()
        .load(&Device::Cpu, None)
        .unwrap();
    let x = window(&card, 2);
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    let reference = build_encoder(&card.architecture, vb).unwrap();
    let want = reference.forward_t(&x, false).unwrap();
    let got = loaded.logits(&x).unwrap();
    assert_eq!(got.dims(), &[2, card.classes.len()]);
    common::assert_close("logits", &got, &want, 0.0);
}

/// A batch norm makes the layer before it scale-free, so training can leave
/// a running variance past f16's largest value (65504; a distilled NW-UCLA
/// run left 6e7). An f16 directory keeps the statistics in f32: the model
/// loads and computes as its f32 weights rounded to f16 with exact
/// statistics, where rounding them too would make the variance infinite.
#[test]
fn batch_norm_statistics_beyond_f16_range_survive_an_f16_directory() {
    use skelact::model::card::Precision;
    let mut card = edge_card();
    card.precision = Precision::F16;
    let mut weights = common::seeded_weights(&card, 1);
    let c = weights["l1.gcn1.bn.running_var"].dim(0).unwrap();
    let big = |v: f32| Tensor::from_vec(vec![v; c], c, &Device::Cpu).unwrap();
    weights.insert("l1.gcn1.bn.running_var".into(), big(6.0e7));
    weights.insert("l1.gcn1.bn.running_mean".into(), big(-1.8e4));
    weights.insert("l1.gcn1.bn.weight".into(), big(1.0)); // CTR-GCN starts it at 1e-6
    let dir = tempfile::tempdir().unwrap();
    let md = ModelDir::create(dir.path(), &card, &weights).unwrap();
    let stored = read_safetensors(&md.weights_path(), &Device::Cpu).unwrap();
    assert_eq!(stored["l1.gcn1.bn.running_var"].dtype(), DType::F32);
    assert_eq!(stored["l1.gcn1.convs.0.conv3.weight"].dtype(), DType::F16);
    let rounded = |keep_stats: bool| {
        let w = weights
            .iter()
            .map(|(k, t)| {
                let exact = keep_stats && is_statistic(k);
                let t = if exact {
                    t.clone()
                } else {
                    t.to_dtype(DType::F16)
                        .unwrap()
                        .to_dtype(DType::F32)
                        .unwrap()
                };
                (k.clone(), t)
            })
            .collect();
        build_encoder(
            &card.architecture,
            VarBuilder::from_tensors(w, DType::F32, &Device::Cpu),
        )
        .unwrap()
    };
    let x = window(&card, 2);
    let want = rounded(true).forward_t(&x, false).unwrap();
    let all_f16 = rounded(false).forward_t(&x, false).unwrap();
    let diff = (&want - &all_f16)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(
        diff.to_scalar::<f32>().unwrap() > 1e-3,
        "the variance must matter"
    );
    for dtype in [Some(DType::F32), None] {
        let loaded = ModelDir::open(md.path())
            .unwrap()
            .load(&Device::Cpu, dtype)
            .unwrap();
        let got = loaded.logits(&x).unwrap().to_dtype(DType::F32).unwrap();
        let tol = if dtype.is_some() { 1e-6 } else { 1e-2 };
        common::assert_close("logits", &got, &want, tol);
    }
    let plan = ModelDir::open(md.path())
        .unwrap()
        .load_inference(&Device::Cpu, Some(DType::F32))
        .unwrap();
    common::assert_close("CPU plan logits", &plan.logits(&x).unwrap(), &want, 1e-4);
}

#[test]
fn weight_problems_are_typed_errors() {
    let card = edge_card();
    let dir = tempfile::tempdir().unwrap();
    let weights = common::seeded_weights(&card, 1);
    let md = ModelDir::create(dir.path(), &card, &weights).unwrap();
    let wpath = dir.path().join(WEIGHTS_FILE);

    // A missing tensor is named.
    let mut w = weights.clone();
    let victim = w.keys().find(|k| k.ends_with("weight")).unwrap().clone();
    w.remove(&victim);
    write_safetensors(&wpath, &w).unwrap();
    match md.load(&Device::Cpu, None).unwrap_err() {
        Error::MissingWeight { name, .. } => assert_eq!(name, victim),
        e => panic!("expected MissingWeight, got {e}"),
    }

    // A tensor of the wrong shape is named.
    let mut w = weights.clone();
    w.insert(
        victim.clone(),
        Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
    );
    write_safetensors(&wpath, &w).unwrap();
    match md.load(&Device::Cpu, None).unwrap_err() {
        Error::Mismatch { field, .. } => assert_eq!(field, format!("weights.{victim}")),
        e => panic!("expected Mismatch, got {e}"),
    }

    // An extra tensor is refused (weights trained on another graph).
    let mut w = weights.clone();
    w.insert(
        "extra.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    write_safetensors(&wpath, &w).unwrap();
    assert!(matches!(
        md.load(&Device::Cpu, None).unwrap_err(),
        Error::Mismatch { .. }
    ));

    // Truncated and garbage files.
    write_safetensors(&wpath, &weights).unwrap();
    let bytes = std::fs::read(&wpath).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&wpath, &bytes[..cut]).unwrap();
        let err = md.load(&Device::Cpu, None).unwrap_err();
        assert!(
            matches!(err, Error::CorruptWeights { .. }),
            "cut {cut}: {err}"
        );
    }
    std::fs::remove_file(&wpath).unwrap();
    assert!(matches!(
        md.load(&Device::Cpu, None).unwrap_err(),
        Error::Io { .. }
    ));

    // A missing or broken card.
    std::fs::write(dir.path().join(CARD_FILE), "name = 3").unwrap();
    assert!(matches!(
        ModelDir::open(dir.path()).unwrap_err(),
        Error::Toml { .. }
    ));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let card = edge_card();
    let loaded = builtin::fresh(&card, &Device::Cpu).unwrap();
    let x = window(&card, 1);
    // Wrong frame count.
    let short = x.narrow(2, 0, 10).unwrap();
    assert!(matches!(
        loaded.logits(&short).unwrap_err(),
        Error::Shape { .. }
    ));
    // Wrong rank.
    let flat = x.flatten_all().unwrap();
    assert!(matches!(
        loaded.logits(&flat).unwrap_err(),
        Error::Shape { .. }
    ));
    // NaN joints.
    let mut v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[5] = f32::NAN;
    v[9] = f32::INFINITY;
    let bad = Tensor::from_vec(v, x.shape(), &Device::Cpu).unwrap();
    match loaded.logits(&bad).unwrap_err() {
        Error::NonFinite { count, .. } => assert_eq!(count, 2),
        e => panic!("expected NonFinite, got {e}"),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Arbitrary bytes in place of a weight file never panic.
    #[test]
    fn arbitrary_weight_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let _ = read_safetensors(&p, &Device::Cpu);
    }
}
