//! SCD-Net's downstream protocols on a frozen encoder: features of every
//! clip through the evaluation-time input path (no augmentation), then
//! **kNN retrieval** (k = 1, cosine similarity, each test clip takes the
//! label of its nearest training clip) and **linear evaluation** (a linear
//! classifier trained on the frozen training features, scored on the test
//! features).
//!
//! The features are computed once, so the linear probe trains on fixed
//! vectors (the paper trains it on augmented clips through the frozen
//! encoder: lr 2, batch 1024, 80 epochs); skelact uses AdamW on the
//! standardised features, full batch — cheaper on a CPU, stated in the
//! results.

use candle_core::{Device, Tensor, D};
use candle_nn::{linear, Module, VarMap};

use super::encoder::ScdEncoder;
use crate::model::ModelCard;
use crate::source::Clip;
use crate::train::backend::seeded_var_builder;
use crate::train::loss::cross_entropy_smoothed;
use crate::train::optim::AdamW;
use crate::train::trainer::params;
use crate::window::{self, PoseSeq, PrepareOptions, Prepared};
use crate::{Error, Result};

/// Downstream features `(N, 2d)` of `clips`, inference mode.
pub fn features(
    enc: &ScdEncoder,
    card: &ModelCard,
    clips: &[Clip],
    device: &Device,
) -> Result<Tensor> {
    let mut out = Vec::new();
    for chunk in clips.chunks(64) {
        let prepared = chunk
            .iter()
            .map(|c| window::prepare(PoseSeq::from_clip(c)?, card, PrepareOptions::default()))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Prepared> = prepared.iter().collect();
        let x = window::to_input(&refs, card, device)?;
        // Frozen: detached, so the probe never back-propagates into the encoder.
        out.push(enc.features(&x, false)?.joined()?.detach());
    }
    if out.is_empty() {
        return Err(Error::config("data", "no clips to embed"));
    }
    Ok(Tensor::cat(&out, 0)?)
}

fn labels(clips: &[Clip], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        clips.iter().map(|c| c.label as u32).collect::<Vec<_>>(),
        clips.len(),
        device,
    )?)
}

fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let n = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&n)?)
}

/// Top-1 of 1-nearest-neighbour retrieval by cosine similarity:
/// `train: (N, F)`, `test: (M, F)`.
pub fn knn_top1(train: &Tensor, train_y: &[usize], test: &Tensor, test_y: &[usize]) -> Result<f64> {
    let sim = unit_rows(test)?.matmul(&unit_rows(train)?.t()?)?; // (M, N)
    let nearest: Vec<u32> = sim.argmax(1)?.to_vec1()?;
    let hits = nearest
        .iter()
        .zip(test_y)
        .filter(|(&i, &y)| train_y.get(i as usize) == Some(&y))
        .count();
    Ok(hits as f64 / test_y.len().max(1) as f64)
}

/// Top-1 of a linear classifier trained for `epochs` full-batch AdamW
/// steps (lr `lr`, weight decay 1e-4) on standardised `train` features;
/// the classifier's initial weights are drawn from `seed`.
#[allow(clippy::too_many_arguments)]
pub fn linear_top1(
    train: &Tensor,
    train_y: &Tensor,
    test: &Tensor,
    test_y: &Tensor,
    classes: usize,
    epochs: usize,
    lr: f64,
    device: &Device,
    seed: u64,
) -> Result<f64> {
    // train: (N, F); test: (M, F)
    let mean = train.mean_keepdim(0)?;
    let std = train
        .broadcast_sub(&mean)?
        .sqr()?
        .mean_keepdim(0)?
        .sqrt()?
        .clamp(1e-6, f64::MAX)?;
    let standard =
        |x: &Tensor| -> Result<Tensor> { Ok(x.broadcast_sub(&mean)?.broadcast_div(&std)?) };
    let (xtr, xte) = (standard(train)?, standard(test)?);
    let vm = VarMap::new();
    let fc = linear(
        train.dim(1)?,
        classes,
        seeded_var_builder(&vm, device, seed).pp("fc"),
    )?;
    let mut opt = AdamW::new(params(&vm)?, lr, 1e-4);
    for _ in 0..epochs {
        let loss = cross_entropy_smoothed(&fc.forward(&xtr)?, train_y, 0.0)?;
        opt.step(&loss.backward()?, 1.0)?;
    }
    let pred: Vec<u32> = fc.forward(&xte)?.argmax(1)?.to_vec1()?;
    let want: Vec<u32> = test_y.to_vec1()?;
    let hits = pred.iter().zip(&want).filter(|(a, b)| a == b).count();
    Ok(hits as f64 / want.len().max(1) as f64)
}

/// Both protocols on `train` / `test` clips: `(linear top-1, kNN top-1)`;
/// the linear probe starts from `seed`.
pub fn evaluate(
    enc: &ScdEncoder,
    card: &ModelCard,
    train: &[Clip],
    test: &[Clip],
    linear_epochs: usize,
    device: &Device,
    seed: u64,
) -> Result<(f64, f64)> {
    let ftr = features(enc, card, train, device)?;
    let fte = features(enc, card, test, device)?;
    let ytr: Vec<usize> = train.iter().map(|c| c.label).collect();
    let yte: Vec<usize> = test.iter().map(|c| c.label).collect();
    let knn = knn_top1(&ftr, &ytr, &fte, &yte)?;
    let lin = linear_top1(
        &ftr,
        &labels(train, device)?,
        &fte,
        &labels(test, device)?,
        card.classes.len(),
        linear_epochs,
        1e-2,
        device,
        seed,
    )?;
    Ok((lin, knn))
}
