//! Training-mode batch normalization as one fused CPU op with a hand-written
//! backward.
//!
//! candle-nn's `forward_train` transposes `(N, C, …)` to `(C, N·…)`, copies
//! it, and then runs nine element-wise and reduction ops, each allocating a
//! full-size tensor; backward replays all of them, plus the transpose copies
//! in both directions. A CTR-GCN block has eight batch norms, so in a
//! training step they cost more than the matrix products. Here forward is
//! two passes over `x` (statistics, then the affine map) and backward two
//! passes (two sums per channel, then `dx`), with the classical gradient
//!
//! ```text
//! x̂  = (x − μ) / σ,          σ = sqrt(var + ε)  (biased variance)
//! dβ = Σ g,  dγ = Σ g·x̂,      dx = γ/σ · (g − dβ/M − x̂·dγ/M)
//! ```
//!
//! over the `M = N·…` elements of each channel. Only f32 on the CPU takes
//! this path; other dtypes and devices use the same maths in candle ops
//! ([`batch_norm_train_ops`]).

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::cpu_slice::{f32_slice, output_buffer};
use rayon::prelude::*;

/// Per-channel batch statistics of one forward pass: mean and biased
/// variance, f32, `C` each.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Biased variance per channel (divided by `M`).
    pub var: Vec<f32>,
}

/// `x` seen as `(A, C, B)`: channel `ci` is the `A` runs
/// `x[ai·C·B + ci·B ..][..B]`.
#[derive(Debug, Clone, Copy)]
struct Dims {
    a: usize,
    c: usize,
    b: usize,
}

impl Dims {
    fn m(&self) -> usize {
        self.a * self.b
    }

    /// Channel `ci`'s `A` runs of `B` values.
    fn runs<'x>(&self, x: &'x [f32], ci: usize) -> impl Iterator<Item = &'x [f32]> + 'x {
        let (c, b) = (self.c, self.b);
        (0..self.a).map(move |ai| &x[(ai * c + ci) * b..][..b])
    }
}

/// Two-pass mean and variance per channel, accumulated in f64.
fn channel_stats(d: Dims, x: &[f32]) -> BatchStats {
    let m = d.m().max(1) as f64;
    let (mean, var): (Vec<f32>, Vec<f32>) = (0..d.c)
        .into_par_iter()
        .map(|ci| {
            let s: f64 = d
                .runs(x, ci)
                .map(|r| r.iter().map(|&v| v as f64).sum::<f64>())
                .sum();
            let mu = s / m;
            let q: f64 = d
                .runs(x, ci)
                .map(|r| r.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>())
                .sum();
            (mu as f32, (q / m) as f32)
        })
        .unzip();
    BatchStats { mean, var }
}

/// Runs `f(ci, x_run, out_run)` over every channel run, parallel over `A`.
fn map_runs(d: Dims, x: &[f32], out: &mut [f32], f: impl Fn(usize, &[f32], &mut [f32]) + Sync) {
    let (c, b) = (d.c, d.b);
    out.par_chunks_mut(c * b)
        .zip(x.par_chunks(c * b))
        .for_each(|(o, xi)| {
            for (ci, (or, xr)) in o.chunks_mut(b).zip(xi.chunks(b)).enumerate() {
                f(ci, xr, or);
            }
        });
}

/// Forward: `(x, γ, β) → y`, recording the batch statistics for backward
/// and for the running averages.
#[derive(Debug, Clone)]
struct BnForward {
    d: Dims,
    eps: f32,
    stats: Arc<OnceLock<BatchStats>>,
}

impl CustomOp3 for BnForward {
    fn name(&self) -> &'static str {
        "skelact-batch-norm"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.d;
        let x = f32_slice(sx, lx, "skelact-batch-norm x")?;
        let gamma = f32_slice(sg, lg, "skelact-batch-norm weight")?;
        let beta = f32_slice(sb, lb, "skelact-batch-norm bias")?;
        if x.len() != d.a * d.c * d.b || gamma.len() != d.c || beta.len() != d.c {
            candle_core::bail!("skelact-batch-norm: shapes do not match {d:?}");
        }
        let stats = channel_stats(d, x);
        // y = x·scale + shift per channel.
        let (scale, shift): (Vec<f32>, Vec<f32>) = (0..d.c)
            .map(|ci| {
                let s = gamma[ci] / (stats.var[ci] + self.eps).sqrt();
                (s, beta[ci] - stats.mean[ci] * s)
            })
            .unzip();
        // SAFETY: `map_runs` hands every element of `y` (as long as `x`) to
        // the closure, which writes it.
        let mut y = unsafe { output_buffer(x.len()) };
        map_runs(d, x, &mut y, |ci, xr, yr| {
            let (s, t) = (scale[ci], shift[ci]);
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = v * s + t;
            }
        });
        // A forward runs once per op value; a second run (never done by
        // candle) would keep the first statistics.
        let _ = self.stats.set(stats);
        Ok((CpuStorage::F32(y), lx.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(stats) = self.stats.get() else {
            candle_core::bail!("skelact-batch-norm: backward before forward");
        };
        let d = self.d;
        let n = d.a * d.c * d.b;
        let op = BnBackward {
            d,
            eps: self.eps,
            stats: stats.clone(),
        };
        // (A·C·B + 2C,): dx, then dγ, then dβ.
        let packed = x
            .detach()
            .apply_op3(&grad.contiguous()?, &gamma.detach(), op)?;
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, n, d.c)?;
        let dbeta = packed.narrow(0, n + d.c, d.c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Backward: `(x, g, γ) → [dx | dγ | dβ]`.
#[derive(Debug, Clone)]
struct BnBackward {
    d: Dims,
    eps: f32,
    stats: BatchStats,
}

impl CustomOp3 for BnBackward {
    fn name(&self) -> &'static str {
        "skelact-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.d;
        let x = f32_slice(sx, lx, "skelact-batch-norm x")?;
        let g = f32_slice(sg, lg, "skelact-batch-norm gradient")?;
        let gamma = f32_slice(sw, lw, "skelact-batch-norm weight")?;
        let n = d.a * d.c * d.b;
        if x.len() != n || g.len() != n || gamma.len() != d.c {
            candle_core::bail!("skelact-batch-norm-backward: shapes do not match {d:?}");
        }
        let BatchStats { mean, var } = &self.stats;
        let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        // Σ g and Σ g·x̂ per channel, in f64.
        let (sg, sgx): (Vec<f64>, Vec<f64>) = (0..d.c)
            .into_par_iter()
            .map(|ci| {
                let (mu, is) = (mean[ci] as f64, inv[ci] as f64);
                let mut s = 0f64;
                let mut sx = 0f64;
                for (gr, xr) in d.runs(g, ci).zip(d.runs(x, ci)) {
                    for (&gv, &xv) in gr.iter().zip(xr) {
                        s += gv as f64;
                        sx += gv as f64 * (xv as f64 - mu) * is;
                    }
                }
                (s, sx)
            })
            .unzip();
        let m = d.m().max(1) as f64;
        // SAFETY: dx (as long as g and x) is written element by element in
        // the loop below, and the tail's 2·C statistics after it.
        let mut out = unsafe { output_buffer(n + 2 * d.c) };
        let (dx, tail) = out.split_at_mut(n);
        // dx = k·(g − a − x̂·b) with k = γ/σ, a = Σg/M, b = Σg·x̂/M.
        let coef: Vec<(f32, f32, f32, f32, f32)> = (0..d.c)
            .map(|ci| {
                let k = gamma[ci] * inv[ci];
                let a = (sg[ci] / m) as f32;
                let b = (sgx[ci] / m) as f32;
                (k, a, b, mean[ci], inv[ci])
            })
            .collect();
        let (c, b) = (d.c, d.b);
        dx.par_chunks_mut(c * b)
            .zip(g.par_chunks(c * b).zip(x.par_chunks(c * b)))
            .for_each(|(o, (gi, xi))| {
                for (ci, ((or, gr), xr)) in o
                    .chunks_mut(b)
                    .zip(gi.chunks(b))
                    .zip(xi.chunks(b))
                    .enumerate()
                {
                    let (k, a, bb, mu, is) = coef[ci];
                    for ((o, &gv), &xv) in or.iter_mut().zip(gr).zip(xr) {
                        *o = k * (gv - a - (xv - mu) * is * bb);
                    }
                }
            });
        for ci in 0..c {
            tail[ci] = sgx[ci] as f32;
            tail[c + ci] = sg[ci] as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(n + 2 * c)))
    }
}

/// Training-mode batch norm of `x: (N, C, …)` with `gamma`, `beta: (C,)`.
/// Returns the output (same shape as `x`) and the batch statistics.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    let dims = x.dims();
    if dims.len() < 2 {
        candle_core::bail!("batch norm needs (N, C, …), got {:?}", dims);
    }
    let c = dims[1];
    if gamma.dims() != [c] || beta.dims() != [c] {
        candle_core::bail!(
            "batch norm over {c} channels with weight {:?} and bias {:?}",
            gamma.dims(),
            beta.dims()
        );
    }
    let fused = x.device().is_cpu()
        && x.dtype() == DType::F32
        && gamma.dtype() == DType::F32
        && beta.dtype() == DType::F32;
    if !fused {
        return batch_norm_train_ops(x, gamma, beta, eps);
    }
    let d = Dims {
        a: dims[0],
        c,
        b: dims[2..].iter().product(),
    };
    let stats = Arc::new(OnceLock::new());
    let op = BnForward {
        d,
        eps: eps as f32,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = stats.get().cloned().unwrap_or_default();
    Ok((y, stats))
}

/// The same computation in candle ops, for dtypes and devices the fused op
/// does not take (statistics in f32).
pub fn batch_norm_train_ops(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    let dt = x.dtype();
    let c = x.dim(1)?;
    let xt = x.to_dtype(DType::F32)?.transpose(0, 1)?; // (C, N, …)
    let post = xt.dims().to_vec();
    let xt = xt.flatten_from(1)?.contiguous()?; // (C, M)
    let mean = xt.mean_keepdim(1)?; // (C, 1)
    let xc = xt.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(1)?; // (C, 1)
    let y = xc.broadcast_div(&(&var + eps)?.sqrt()?)?;
    let w = gamma.to_dtype(DType::F32)?.reshape((c, 1))?;
    let b = beta.to_dtype(DType::F32)?.reshape((c, 1))?;
    let y = y
        .broadcast_mul(&w)?
        .broadcast_add(&b)?
        .reshape(post)?
        .transpose(0, 1)?
        .to_dtype(dt)?;
    let stats = BatchStats {
        mean: mean.flatten_all()?.to_vec1()?,
        var: var.flatten_all()?.to_vec1()?,
    };
    Ok((y, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layer::max_abs_diff;
    use candle_core::{Device, Var};

    /// The fused op and the candle-op version agree in value, statistics
    /// and all three gradients under a loss with per-element weights.
    #[test]
    fn fused_matches_candle_ops_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for shape in [&[4usize, 6, 5, 3][..], &[3, 5, 7], &[8, 4], &[1, 3, 2, 2]] {
            let c = shape[1];
            let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, shape, &dev)? + 0.7)?)?;
            let g = Var::from_tensor(&Tensor::randn(1f32, 0.3, c, &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, c, &dev)?)?;
            let w = Tensor::randn(0f32, 1.0, shape, &dev)?;
            let (y1, s1) = batch_norm_train(&x, &g, &b, 1e-5)?;
            let (y2, s2) = batch_norm_train_ops(&x, &g, &b, 1e-5)?;
            assert!(max_abs_diff(&y1, &y2) < 1e-5, "forward {shape:?}");
            for (p, q) in s1
                .mean
                .iter()
                .zip(&s2.mean)
                .chain(s1.var.iter().zip(&s2.var))
            {
                assert!((p - q).abs() < 1e-5, "stats {p} vs {q}");
            }
            let g1 = (&y1 * &w)?.sum_all()?.backward()?;
            let g2 = (&y2 * &w)?.sum_all()?.backward()?;
            for v in [&x, &g, &b] {
                let a = g1.get(v.as_tensor()).expect("fused gradient");
                let e = g2.get(v.as_tensor()).expect("reference gradient");
                let scale = e.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
                let d = max_abs_diff(a, e);
                assert!(d < 1e-4 * scale, "gradient {shape:?}: {d}");
            }
        }
        Ok(())
    }

    /// A hand-computed case: one channel, values 1, 2, 3, 6 (μ = 3,
    /// var = 3.5), γ = 2, β = 1; loss Σ y·w with w = (1, 0, 0, 0).
    #[test]
    fn hand_computed_values_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[[1f32], [2.], [3.], [6.]], &dev)?)?; // (N=4, C=1)
        let g = Var::from_tensor(&Tensor::new(&[2f32], &dev)?)?;
        let b = Var::from_tensor(&Tensor::new(&[1f32], &dev)?)?;
        let (y, s) = batch_norm_train(&x, &g, &b, 0.0)?;
        assert_eq!(s.mean, vec![3.0]);
        assert!((s.var[0] - 3.5).abs() < 1e-6);
        let sd = 3.5f32.sqrt();
        let want = [1.0 - 4.0 / sd, 1.0 - 2.0 / sd, 1.0, 1.0 + 6.0 / sd];
        for (got, w) in y.flatten_all()?.to_vec1::<f32>()?.iter().zip(want) {
            assert!((got - w).abs() < 1e-5, "{got} vs {w}");
        }
        let w = Tensor::new(&[[1f32], [0.], [0.], [0.]], &dev)?;
        let grads = (y * w)?.sum_all()?.backward()?;
        // dβ = Σ w = 1; dγ = x̂₀ = −2/σ; dx_i = γ/σ (w_i − 1/4 − x̂_i·x̂₀/4).
        let db = grads.get(&b).unwrap().to_vec1::<f32>()?[0];
        let dg = grads.get(&g).unwrap().to_vec1::<f32>()?[0];
        assert!((db - 1.0).abs() < 1e-6);
        assert!((dg + 2.0 / sd).abs() < 1e-5);
        let xhat = [-2.0 / sd, -1.0 / sd, 0.0, 3.0 / sd];
        let dx = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        for i in 0..4 {
            let wi = if i == 0 { 1.0 } else { 0.0 };
            let want = 2.0 / sd * (wi - 0.25 - xhat[i] * xhat[0] / 4.0);
            assert!((dx[i] - want).abs() < 1e-5, "dx[{i}] {} vs {want}", dx[i]);
        }
        Ok(())
    }

    #[test]
    fn mismatched_weights_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        let w = Tensor::ones(4, DType::F32, &dev).unwrap();
        assert!(batch_norm_train(&x, &w, &w, 1e-5).is_err());
        assert!(batch_norm_train(&x.flatten_all().unwrap(), &w, &w, 1e-5).is_err());
    }
}
