//! Model directories: the card round-trips, loading refuses every kind of
//! mismatch with an error naming the field, and bad weight files or inputs
//! give typed errors, never panics.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use skelact::model::card::{ModelCard, CARD_FILE, WEIGHTS_FILE};
use skelact::model::directory::{build_encoder, read_safetensors, write_safetensors};
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
