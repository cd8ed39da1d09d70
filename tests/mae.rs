//! SkeletonMAE (feature `train`): the GIN encoder, decoder and loss
//! against a PyTorch reference, the loss on hand-computed cases, body-region
//! masking from the layout, and pretrain → fine-tune → export → load on a
//! few real NW-UCLA clips.
#![cfg(feature = "train")]

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use skelact::model::skeletonmae::{GinConfig, SkeletonMae};
use skelact::model::ModelDir;
use skelact::skeleton::part::Region;
use skelact::skeleton::Layout;
use skelact::train::mae::loss::scaled_cosine_error;
use skelact::train::mae::mask::MaskStrategy;
use skelact::train::mae::model::MaskedAutoencoder;
use skelact::train::mae::{self, MaeConfig};
use skelact::train::{config, data, init, trainer, Benchmark, TrainConfig};

#[test]
fn gin_autoencoder_and_loss_match_pytorch() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let f =
        candle_core::safetensors::load(common::fixtures().join("skeletonmae.safetensors"), &dev)?;
    let vb = VarBuilder::from_tensors(f.clone(), DType::F32, &dev);
    let mae = MaskedAutoencoder::new(&GinConfig::default(), Layout::kinect20_ucla(), vb)?;
    let encoded = mae.encoder.forward(&f["x"])?;
    common::assert_close("encoder", &encoded, &f["encoded"], common::F32_REL);
    let z = mae.forward(&f["x"], &f["mask"])?;
    common::assert_close("reconstruction", &z, &f["reconstructed"], common::F32_REL);
    let loss = scaled_cosine_error(&z, &f["x"], &f["mask"], 2.0)?;
    common::assert_close("loss", &loss.reshape(1)?, &f["loss"], common::F32_REL);
    Ok(())
}

#[test]
fn scaled_cosine_error_on_hand_computed_cases() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // node 0: orthogonal, 1 - cos = 1; node 1: 45 degrees, 1 - cos = 1 - 1/sqrt 2;
    // node 2: same direction, twice as long, 1 - cos = 0.
    let pred = Tensor::new(&[[[1f32, 0.0], [1.0, 1.0], [2.0, 4.0]]], &dev)?;
    let target = Tensor::new(&[[[0f32, 3.0], [5.0, 0.0], [1.0, 2.0]]], &dev)?;
    let d1 = 1.0 - std::f64::consts::FRAC_1_SQRT_2;
    let cases: [([f32; 3], f64, f64); 4] = [
        ([1.0, 1.0, 1.0], 2.0, (1.0 + d1 * d1) / 3.0),
        ([1.0, 1.0, 0.0], 2.0, (1.0 + d1 * d1) / 2.0),
        ([0.0, 1.0, 0.0], 2.0, d1 * d1),
        ([1.0, 1.0, 0.0], 1.0, (1.0 + d1) / 2.0),
    ];
    for (mask, beta, want) in cases {
        let m = Tensor::new(&[mask], &dev)?;
        let got = scaled_cosine_error(&pred, &target, &m, beta)?.to_scalar::<f32>()? as f64;
        assert!(
            (got - want).abs() < 1e-6,
            "mask {mask:?} beta {beta}: {got} vs {want}"
        );
    }
    // No masked node is an error, not a NaN.
    let none = Tensor::zeros((1, 3), DType::F32, &dev)?;
    assert!(scaled_cosine_error(&pred, &target, &none, 2.0).is_err());
    Ok(())
}

/// Joints of a limb judged from the names (independent of `part.rs`).
fn limb(layout: &Layout, side: &str, words: &[&str]) -> Vec<usize> {
    layout
        .joint_names()
        .iter()
        .enumerate()
        .filter(|(_, n)| n.starts_with(side) && words.iter().any(|w| n.contains(w)))
        .map(|(j, _)| j)
        .collect()
}

#[test]
fn region_masks_are_exactly_one_arm_and_one_leg() {
    for layout in [
        Layout::kinect20_ucla(),
        Layout::kinect20_utd(),
        Layout::ntu25(),
    ] {
        let arm_words = ["elbow", "wrist", "hand", "thumb"];
        let leg_words = ["knee", "ankle", "foot"];
        let mut allowed = Vec::new();
        for a in ["left", "right"] {
            for l in ["left", "right"] {
                let mut j = limb(layout, a, &arm_words);
                j.extend(limb(layout, l, &leg_words));
                j.sort_unstable();
                allowed.push(j);
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = [false; 4];
        for _ in 0..64 {
            let j = MaskStrategy::ArmAndLeg.joints(layout, &mut rng);
            let k = allowed
                .iter()
                .position(|a| *a == j)
                .unwrap_or_else(|| panic!("{}: {j:?} is not one arm + one leg", layout.name()));
            seen[k] = true;
        }
        assert!(
            seen.iter().all(|&s| s),
            "{}: every side combination drawn",
            layout.name()
        );
        let both_legs = MaskStrategy::by_name("regions:left_leg,right_leg")
            .unwrap()
            .joints(layout, &mut rng);
        let mut want = limb(layout, "left", &leg_words);
        want.extend(limb(layout, "right", &leg_words));
        want.sort_unstable();
        assert_eq!(both_legs, want, "{}", layout.name());
        let random = MaskStrategy::RandomJoints(5).joints(layout, &mut rng);
        assert_eq!(random.len(), 5);
    }
    assert_eq!(
        MaskStrategy::by_name("regions:head").unwrap(),
        MaskStrategy::Regions(vec![Region::Head])
    );
    assert!(MaskStrategy::by_name("regions:tail").is_err());
    assert!(MaskStrategy::by_name("random:x").is_err());
}

#[test]
fn pretrain_then_fine_tune_exports_a_loadable_model() -> anyhow::Result<()> {
    let Some(root) = common::shared_data("nw-ucla/all_sqe") else {
        return Ok(());
    };
    let root = root.parent().unwrap().parent().unwrap().to_path_buf();
    let work = tempfile::tempdir()?;
    let dev = Device::Cpu;
    let mut base = TrainConfig::nwucla(root, work.path().join("pre"), 1);
    base.arch = "skeletonmae".into();
    base.limit = Some(24);
    base.frames = 8;
    base.batch_size = 8;
    base.repeat = 1;
    base.lr = 1e-3;
    base.optimizer = skelact::train::optim::OptimizerKind::Adamw;
    base.progress = false;
    let split = data::load(Benchmark::NwuclaCrossView, &base.data_root, base.limit)?;
    let pre = mae::pretrain(
        &MaeConfig {
            base: base.clone(),
            mask: MaskStrategy::ArmAndLeg,
            beta: 2.0,
            out: None,
        },
        &split,
        &dev,
    )?;
    assert_eq!(pre.losses.len(), 1);
    assert!(pre.losses[0].is_finite() && pre.losses[0] > 0.0);
    let csv = std::fs::read_to_string(work.path().join("pre").join(mae::METRICS_CSV))?;
    assert_eq!(csv, format!("epoch,loss\n1,{:.6}\n", pre.losses[0]));
    common::assert_plot(&work.path().join("pre").join(mae::CURVES_PNG), 800, 500);
    // The pretrained file initialises exactly the fine-tuned network's GIN.
    let card = config::training_card(&base)?;
    let skelact::model::card::Architecture::Skeletonmae(cfg) = &card.architecture else {
        panic!("not a SkeletonMAE card");
    };
    let vm = VarMap::new();
    SkeletonMae::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let set = init::load_matching(&vm, &pre.weights, &dev)?;
    // embed (2); per layer: GIN (5), norm (2), PReLU (1)
    let gin_tensors = 2 + cfg.gin.layers * 8;
    assert_eq!(set, gin_tensors);
    let file = candle_core::safetensors::load(&pre.weights, &dev)?;
    let got = vm.data().lock().unwrap()["gin.layers.2.lin2.weight"]
        .as_tensor()
        .copy()?;
    common::assert_close("initialised", &got, &file["gin.layers.2.lin2.weight"], 0.0);
    // Fine-tune one epoch, export, load, score as the trainer did.
    let mut ft = base.clone();
    ft.work_dir = work.path().join("ft");
    ft.init = Some(pre.weights.clone());
    ft.optimizer = skelact::train::optim::OptimizerKind::Sgd;
    ft.lr = 0.05;
    ft.out = Some(work.path().join("model"));
    ft.name = "skeletonmae-test".into();
    let out = trainer::train_on(&ft, &split, &dev)?;
    assert!(out.card.provenance.notes.contains("initialised from"));
    // Every exported (f16) tensor is finite: un-normalised GIN sums once
    // overflowed the input batch norm's variance in f16.
    let exported =
        candle_core::safetensors::load(work.path().join("model/weights.safetensors"), &dev)?;
    for (name, t) in &exported {
        let t = t.to_dtype(DType::F32)?.flatten_all()?;
        let finite = t.to_vec1::<f32>()?.iter().all(|x| x.is_finite());
        assert!(finite, "{name} has a non-finite value");
    }
    let dir = ModelDir::open(work.path().join("model"))?;
    let top1 = common::reloaded_top1(&dir, &split.test, Some(DType::F32))?;
    assert_eq!(top1, out.evaluation.top1);
    // Loaded as stored (f16), it computes in f16 on the f32 windows the
    // evaluation feeds it (`skelact run`'s offline check does the same).
    let top1_f16 = common::reloaded_top1(&dir, &split.test, None)?;
    assert!((top1_f16 - top1).abs() <= 0.2, "{top1_f16} vs {top1}");
    Ok(())
}
