//! SCD-Net (feature `train`): InfoNCE with a queue and the four-term loss
//! on hand-computed cases, the momentum update, the queue's ring, kNN,
//! that every encoder parameter receives a gradient, and pretrain →
//! linear evaluation / kNN → fine-tuning (`--arch scdnet --init`) to a
//! loadable model directory on a few real NW-UCLA clips.
#![cfg(feature = "train")]

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use skelact::model::card::Architecture;
use skelact::model::directory::is_buffer;
use skelact::model::scdnet::{ScdNet, Widths};
use skelact::model::ModelDir;
use skelact::skeleton::Layout;
use skelact::train::scd::encoder::{EncoderConfig, ScdEncoder};
use skelact::train::scd::eval::knn_top1;
use skelact::train::scd::loss::{
    chance_level, info_nce, l2_normalize, scd_loss, Projections, QueueTensors,
};
use skelact::train::scd::momentum::momentum_update;
use skelact::train::scd::queue::Queue;
use skelact::train::scd::view::crop_indices;
use skelact::train::scd::{self, ScdConfig};
use skelact::train::{config, data, init, trainer, Benchmark, TrainConfig};

fn t(rows: &[&[f32]]) -> Tensor {
    let d = rows[0].len();
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (rows.len(), d), &Device::Cpu).unwrap()
}

fn scalar(x: &Tensor) -> f64 {
    x.to_scalar::<f32>().unwrap() as f64
}

#[test]
fn info_nce_with_a_queue_matches_hand_computation() -> anyhow::Result<()> {
    // Row 0: q.k = 1, negatives 0 and -1; row 1: q.k = 0, negatives 1, 0.
    let q = t(&[&[1.0, 0.0], &[0.0, 1.0]]);
    let k = t(&[&[1.0, 0.0], &[1.0, 0.0]]);
    let queue = t(&[&[0.0, 1.0], &[-1.0, 0.0]]);
    let tau = 0.2;
    let row = |pos: f64, negs: &[f64]| {
        let z: f64 = std::iter::once(pos)
            .chain(negs.iter().copied())
            .map(|l| (l / tau).exp())
            .sum();
        -(pos / tau) + z.ln()
    };
    let want = (row(1.0, &[0.0, -1.0]) + row(0.0, &[1.0, 0.0])) / 2.0;
    let got = scalar(&info_nce(&q, &k, &queue, tau)?);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    Ok(())
}

#[test]
fn a_query_that_sees_nothing_scores_the_chance_level() -> anyhow::Result<()> {
    // q orthogonal to its key and to all three negatives: every logit is 0,
    // and the term is ln(1 + K) whatever the temperature.
    let q = t(&[&[1.0, 0.0, 0.0]]);
    let k = t(&[&[0.0, 1.0, 0.0]]);
    let queue = t(&[&[0.0, 0.0, 1.0], &[0.0, -1.0, 0.0], &[0.0, 0.0, -1.0]]);
    let got = scalar(&info_nce(&q, &k, &queue, 0.07)?);
    let want = chance_level(3);
    assert!((want - 4f64.ln()).abs() < 1e-12);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    Ok(())
}

#[test]
fn scd_loss_pairs_queries_and_keys_as_published() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let unit = |s: &[f32]| l2_normalize(&Tensor::from_slice(s, (1, 2), &dev).unwrap()).unwrap();
    let q = Projections {
        temporal: unit(&[1.0, 0.0]),
        spatial: unit(&[0.0, 1.0]),
        instance: unit(&[1.0, 1.0]),
    };
    let k = Projections {
        temporal: unit(&[1.0, -2.0]),
        spatial: unit(&[3.0, 1.0]),
        instance: unit(&[-1.0, 2.0]),
    };
    let (qt, qs, qi) = (unit(&[0.5, 1.0]), unit(&[-1.0, 0.2]), unit(&[2.0, -1.0]));
    let queues = QueueTensors {
        temporal: &qt,
        spatial: &qs,
        instance: &qi,
    };
    let got = scalar(&scd_loss(&q, &k, &queues, 0.2)?);
    let nce = |a: &Tensor, b: &Tensor, c: &Tensor| scalar(&info_nce(a, b, c, 0.2).unwrap());
    let want = nce(&q.temporal, &k.instance, &qi)
        + nce(&q.spatial, &k.instance, &qi)
        + nce(&q.instance, &k.temporal, &qt)
        + nce(&q.instance, &k.spatial, &qs);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // A different pairing gives a different value (the test can fail).
    let swapped = nce(&q.temporal, &k.temporal, &qt)
        + nce(&q.spatial, &k.spatial, &qs)
        + nce(&q.instance, &k.instance, &qi)
        + nce(&q.instance, &k.instance, &qi);
    assert!((got - swapped).abs() > 1e-3);
    Ok(())
}

#[test]
fn momentum_update_moves_key_parameters_only() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (key, query) = (VarMap::new(), VarMap::new());
    let kb = VarBuilder::from_varmap(&key, DType::F32, &dev);
    let qb = VarBuilder::from_varmap(&query, DType::F32, &dev);
    kb.get_with_hints(2, "w", Init::Const(1.0))?;
    qb.get_with_hints(2, "w", Init::Const(3.0))?;
    kb.get_with_hints(2, "bn.running_mean", Init::Const(5.0))?;
    qb.get_with_hints(2, "bn.running_mean", Init::Const(7.0))?;
    assert_eq!(momentum_update(&key, &query, 0.9)?, 1);
    let data = key.data().lock().unwrap();
    let w: Vec<f32> = data["w"].as_tensor().to_vec1()?;
    // 0.9 * 1 + 0.1 * 3
    assert!(w.iter().all(|&x| (x - 1.2).abs() < 1e-6), "{w:?}");
    let bn: Vec<f32> = data["bn.running_mean"].as_tensor().to_vec1()?;
    assert_eq!(bn, vec![5.0, 5.0]);
    Ok(())
}

#[test]
fn queue_enqueues_in_order_and_wraps() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut q = Queue::from_rows(vec![0.0; 6], 2)?;
    q.enqueue(&t(&[&[1.0, 1.0], &[2.0, 2.0]]))?;
    assert_eq!(q.position(), 2);
    q.enqueue(&t(&[&[3.0, 3.0], &[4.0, 4.0]]))?;
    assert_eq!(q.position(), 1);
    assert_eq!(
        q.tensor(&dev)?.to_vec2::<f32>()?,
        vec![vec![4.0, 4.0], vec![2.0, 2.0], vec![3.0, 3.0]]
    );
    // More keys than the queue holds: the last three stay, oldest first.
    q.enqueue(&t(&[&[5.0, 5.0], &[6.0, 6.0], &[7.0, 7.0], &[8.0, 8.0]]))?;
    assert_eq!(
        q.tensor(&dev)?.to_vec2::<f32>()?,
        vec![vec![8.0, 8.0], vec![6.0, 6.0], vec![7.0, 7.0]]
    );
    assert!(q.enqueue(&t(&[&[1.0, 2.0, 3.0]])).is_err());
    let r = Queue::random(4, 3, &mut ChaCha8Rng::seed_from_u64(1))?;
    for row in r.tensor(&dev)?.to_vec2::<f32>()? {
        let n: f32 = row.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
    Ok(())
}

#[test]
fn knn_takes_the_nearest_training_label() -> anyhow::Result<()> {
    let train = t(&[&[1.0, 0.0], &[0.0, 2.0]]);
    let test = t(&[&[0.9, 0.1], &[0.2, 0.8], &[3.0, 0.1]]);
    // Third is nearest to class 0 but labelled 1: 2 of 3.
    let top1 = knn_top1(&train, &[0, 1], &test, &[0, 1, 1])?;
    assert!((top1 - 2.0 / 3.0).abs() < 1e-12);
    Ok(())
}

#[test]
fn crops_stay_inside_the_clip() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for len in [1, 7, 60] {
        for _ in 0..20 {
            let idx: Vec<usize> = crop_indices(len, 16, &mut rng)
                .into_iter()
                .flatten()
                .collect();
            assert_eq!(idx.len(), 16);
            assert!(idx.windows(2).all(|w| w[0] <= w[1]));
            assert!(idx.iter().all(|&i| i < len));
        }
    }
}

fn tiny_encoder() -> EncoderConfig {
    EncoderConfig {
        widths: Widths {
            gcn_channels: vec![8, 8, 8],
            temporal_kernel: 5,
            model_dim: 16,
            heads: 8,
            ff_dim: 16,
        },
        proj_dim: 8,
    }
}

#[test]
fn every_encoder_parameter_receives_a_gradient() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let enc = ScdEncoder::new(
        &tiny_encoder(),
        Layout::kinect20_ucla(),
        8,
        1,
        3,
        VarBuilder::from_varmap(&vm, DType::F32, &dev),
    )?;
    let x = Tensor::randn(0f32, 1.0, (4, 3, 8, 20, 1), &dev)?;
    let p = enc.project(&enc.features(&x, true)?)?;
    let queue = l2_normalize(&Tensor::randn(0f32, 1.0, (6, 8), &dev)?)?;
    let other = enc.project(&enc.features(&(x * 0.5)?, true)?)?;
    let qs = QueueTensors {
        temporal: &queue,
        spatial: &queue,
        instance: &queue,
    };
    let loss = scd_loss(&p, &other, &qs, 0.2)?;
    let grads = loss.backward()?;
    let data = vm.data().lock().unwrap();
    let mut missing: Vec<&String> = data
        .iter()
        .filter(|(k, _)| !is_buffer(k))
        .filter(|(_, v)| grads.get(v.as_tensor()).is_none())
        .map(|(k, _)| k)
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    Ok(())
}

#[test]
fn pretrain_evaluate_then_fine_tune_on_real_clips() -> anyhow::Result<()> {
    let Some(root) = common::shared_data("nw-ucla/all_sqe") else {
        return Ok(());
    };
    let root = root.parent().unwrap().parent().unwrap().to_path_buf();
    let work = tempfile::tempdir()?;
    let mut base = TrainConfig::nwucla(root, work.path().join("scd"), 2);
    base.limit = Some(24);
    base.frames = 8;
    base.batch_size = 8;
    base.repeat = 1;
    base.lr = 0.01;
    base.progress = false;
    let split = data::load(Benchmark::NwuclaCrossView, &base.data_root, base.limit)?;
    let cfg = ScdConfig {
        base,
        encoder: tiny_encoder(),
        queue_len: 16,
        momentum: 0.999,
        temperature: 0.2,
        linear_epochs: 20,
    };
    let out = scd::pretrain(&cfg, &split, &Device::Cpu)?;
    assert_eq!(out.losses.len(), 2);
    assert!(out.losses.iter().all(|l| l.is_finite() && *l > 0.0));
    // The history: the four terms per epoch sum to the loss, and the CSV
    // and the curves beside the weights carry them.
    assert_eq!(out.term_losses.len(), 2);
    for (l, t) in out.losses.iter().zip(&out.term_losses) {
        assert!((t.iter().sum::<f64>() - l).abs() < 1e-9, "{t:?} vs {l}");
    }
    let csv = std::fs::read_to_string(work.path().join("scd").join(scd::METRICS_CSV))?;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,loss,temporal-instance,spatial-instance,instance-temporal,instance-spatial"
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[2].starts_with("2,"));
    common::assert_plot(&work.path().join("scd").join(scd::CURVES_PNG), 800, 500);
    assert!((0.0..=1.0).contains(&out.linear_top1));
    assert!((0.0..=1.0).contains(&out.knn_top1));
    assert!(out.weights.exists());

    // The saved encoder decides the classifier's widths and initialises
    // everything but the head; fine-tuning exports a model directory that
    // loads and scores as the trainer did.
    let dev = Device::Cpu;
    let widths = init::scdnet_widths(&out.weights)?;
    assert_eq!(widths, tiny_encoder().widths);
    let mut ft = cfg.base.clone();
    ft.arch = "scdnet".into();
    ft.init = Some(out.weights.clone());
    ft.epochs = 1;
    ft.lr = 0.05;
    ft.work_dir = work.path().join("ft");
    ft.out = Some(work.path().join("model"));
    ft.name = "scdnet-test".into();
    let card = config::training_card(&ft)?;
    let Architecture::Scdnet(arch) = &card.architecture else {
        panic!("not an SCD-Net card");
    };
    assert_eq!(arch.widths, widths);
    assert_eq!(arch.frames, 8);
    let vm = VarMap::new();
    ScdNet::new(arch, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let set = init::load_matching(&vm, &out.weights, &dev)?;
    let head = vm
        .data()
        .lock()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("fc."))
        .count();
    assert_eq!(head, 2);
    assert_eq!(set, vm.data().lock().unwrap().len() - head);
    let trained = trainer::train_on(&ft, &split, &dev)?;
    assert!(trained.card.provenance.notes.contains("initialised from"));
    let dir = ModelDir::open(work.path().join("model"))?;
    let top1 = common::reloaded_top1(&dir, &split.test, Some(DType::F32))?;
    assert_eq!(top1, trained.evaluation.top1);
    // Loaded as stored (f16), it computes in f16 on the f32 windows the
    // evaluation feeds it (`skelact run`'s offline check does the same).
    let top1_f16 = common::reloaded_top1(&dir, &split.test, None)?;
    assert!((top1_f16 - top1).abs() <= 0.2, "{top1_f16} vs {top1}");
    // A file that is not an SCD-Net encoder is refused with a typed error.
    let other = work.path().join("other.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("x".to_string(), Tensor::zeros(2, DType::F32, &dev)?)]),
        &other,
    )?;
    assert!(init::scdnet_widths(&other).is_err());
    Ok(())
}
