//! `skelact import efficientgcn` as a user runs it: the authors' NTU-60
//! checkpoint becomes a model directory that opens, validates, loads in f32
//! and f16, and gives the reference logits on the fixture's input.

mod common;

use candle_core::{DType, Device};
use skelact::model::efficientgcn::classes::FALLING_DOWN;
use skelact::model::{import, ModelDir};

const CHECKPOINT: &str = "efficientgcn/2001_EfficientGCN-B0_ntu-xsub.pth.tar";

#[test]
fn imported_efficientgcn_directory_reproduces_the_reference() {
    let Some(pth) = common::shared_data(CHECKPOINT) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("efficientgcn-b0-ntu60");
    import::efficientgcn(&pth, &out).unwrap();

    let md = ModelDir::open(&out).unwrap();
    let card = md.card();
    assert_eq!(card.classes.len(), 60);
    assert_eq!(card.classes[FALLING_DOWN], "falling down");
    assert_eq!(card.temporal.frames, 288);

    let fx = candle_core::safetensors::load(
        common::fixtures().join("efficientgcn.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let x = &fx["input"];
    let want = &fx["trace.logits"];

    let f32_model = md.load(&Device::Cpu, None).unwrap();
    // 324,708 published parameters + 11 learned edge masks of 3 x 25 x 25.
    assert_eq!(f32_model.num_params, 324_708 + 11 * 3 * 25 * 25);
    let got = f32_model.logits(x).unwrap();
    common::assert_close("logits f32", &got, want, common::F32_REL);

    let f16_model = md.load(&Device::Cpu, Some(DType::F16)).unwrap();
    let folded = f16_model.encoder.fold_batch_norm().unwrap();
    let got = folded
        .forward_t(&x.to_dtype(DType::F16).unwrap(), false)
        .unwrap();
    common::assert_close("logits f16", &got, want, common::F16_REL);
}

#[test]
fn importing_a_missing_or_foreign_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pth.tar");
    assert!(matches!(
        import::efficientgcn(&missing, &dir.path().join("out")),
        Err(skelact::Error::Io { .. })
    ));
    let junk = dir.path().join("junk.pth.tar");
    std::fs::write(&junk, b"not a zip at all").unwrap();
    assert!(matches!(
        import::efficientgcn(&junk, &dir.path().join("out")),
        Err(skelact::Error::CorruptWeights { .. })
    ));
}
