//! CTR-GCN's temporal max-pool branch, `MaxPool2d((3, 1), (s, 1), (1, 0))`
//! over `(N, C, T, V)`, as one op.
//!
//! In candle ops it is a zero pad, two `maximum`s and a strided subsample;
//! the backward of each `maximum` builds two equality masks, a sum and a
//! division over the full tensor. Here forward takes the max of the three
//! frames around every `s`-th frame, and backward sends each output
//! gradient to the first frame that holds the max, as PyTorch does. f32 on
//! the CPU only; other dtypes and devices use the candle ops.
//!
//! The input must be non-negative (the branch pools a ReLU's output), so
//! that zero padding equals PyTorch's −∞ padding.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::cpu_slice::f32_slice;
use rayon::prelude::*;

use super::im2col::subsample_time;

/// `(A, T, V) → (A, T', V)`, `T' = ceil(T / s)`.
#[derive(Debug, Clone, Copy)]
struct MaxPool3 {
    a: usize,
    t: usize,
    v: usize,
    s: usize,
}

impl MaxPool3 {
    fn t_out(&self) -> usize {
        self.t.div_ceil(self.s)
    }

    /// The frames of output frame `to`'s window inside `0..T`.
    fn window(&self, to: usize) -> std::ops::Range<usize> {
        let c = to * self.s;
        c.saturating_sub(1)..(c + 2).min(self.t)
    }
}

impl CustomOp1 for MaxPool3 {
    fn name(&self) -> &'static str {
        "skelact-max-pool3"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(st, l, self.name())?;
        let (a, t, v, to) = (self.a, self.t, self.v, self.t_out());
        if x.len() != a * t * v {
            candle_core::bail!("skelact-max-pool3: {} elements", x.len());
        }
        let mut out = vec![0f32; a * to * v];
        out.par_chunks_mut(to * v)
            .zip(x.par_chunks(t * v))
            .for_each(|(oa, xa)| {
                for (k, orow) in oa.chunks_mut(v).enumerate() {
                    // Zero padding: the max starts at 0.
                    for f in self.window(k) {
                        for (o, &e) in orow.iter_mut().zip(&xa[f * v..][..v]) {
                            *o = o.max(e);
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((a, to, v))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = x
            .detach()
            .apply_op2(&grad.contiguous()?, MaxPool3Grad(*self))?;
        Ok(Some(dx))
    }
}

/// Backward of [`MaxPool3`]: `(x, g) → dx`.
#[derive(Debug, Clone, Copy)]
struct MaxPool3Grad(MaxPool3);

impl CustomOp2 for MaxPool3Grad {
    fn name(&self) -> &'static str {
        "skelact-max-pool3-backward"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = self.0;
        let x = f32_slice(sx, lx, self.name())?;
        let g = f32_slice(sg, lg, self.name())?;
        let (a, t, v, to) = (p.a, p.t, p.v, p.t_out());
        if x.len() != a * t * v || g.len() != a * to * v {
            candle_core::bail!("skelact-max-pool3-backward: shapes do not match {p:?}");
        }
        let mut dx = vec![0f32; a * t * v];
        dx.par_chunks_mut(t * v)
            .zip(x.par_chunks(t * v).zip(g.par_chunks(to * v)))
            .for_each(|(da, (xa, ga))| {
                for k in 0..to {
                    let w = p.window(k);
                    for j in 0..v {
                        // First frame holding a positive max. A zero max
                        // also lives in the padding or in ReLU-zeroed
                        // inputs, whose gradient the ReLU discards anyway.
                        let mut best = 0f32;
                        let mut at = None;
                        for f in w.clone() {
                            let e = xa[f * v + j];
                            if e > best {
                                best = e;
                                at = Some(f);
                            }
                        }
                        if let Some(f) = at {
                            da[f * v + j] += ga[k * v + j];
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dx), lx.shape().clone()))
    }
}

/// The candle-op version: zero pad, two maxima, every `s`-th frame.
fn max_pool3_ops(x: &Tensor, s: usize) -> Result<Tensor> {
    let (_n, _c, t, _v) = x.dims4()?;
    let xp = x.pad_with_zeros(2, 1, 1)?; // (N, C, T + 2, V)
    let m = xp
        .narrow(2, 0, t)?
        .maximum(&xp.narrow(2, 1, t)?)?
        .maximum(&xp.narrow(2, 2, t)?)?; // (N, C, T, V), window centred on each frame
    subsample_time(&m, s)
}

/// 3x1 max-pool along time with padding 1 and stride `s` of a
/// non-negative `x: (N, C, T, V) → (N, C, ceil(T / s), V)`.
pub fn max_pool3_time(x: &Tensor, s: usize) -> Result<Tensor> {
    let (n, c, t, v) = x.dims4()?;
    if s == 0 {
        candle_core::bail!("max_pool3_time: stride 0");
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return max_pool3_ops(x, s);
    }
    let op = MaxPool3 { a: n * c, t, v, s };
    let to = op.t_out();
    x.contiguous()?
        .reshape((n * c, t, v))?
        .apply_op1(op)?
        .reshape((n, c, to, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Same values and, away from ties, the same gradients as the candle
    /// ops, for strides 1 and 2 and odd and even lengths.
    #[test]
    fn matches_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        for (t, s) in [(8, 1), (8, 2), (7, 2), (5, 3), (1, 2)] {
            // Non-negative with exact zeros, as after a ReLU.
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, t, 4), &dev)?.relu()?)?;
            let got = max_pool3_time(&x, s)?;
            let want = max_pool3_ops(&x, s)?;
            assert_eq!(got.dims(), want.dims());
            let d = (&got - &want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert_eq!(d, 0.0, "t {t} s {s}");
            let w = Tensor::randn(0f32, 1.0, got.shape(), &dev)?;
            // The gradient reaching a zero input is discarded by the ReLU
            // before it; compare where the input is positive.
            let pos = x.gt(0f32)?.to_dtype(DType::F32)?;
            let g1 = (got * &w)?.sum_all()?.backward()?;
            let g2 = (want * &w)?.sum_all()?.backward()?;
            let a = (g1.get(&x).unwrap() * &pos)?;
            let b = (g2.get(&x).unwrap() * &pos)?;
            let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(d < 1e-6, "gradient t {t} s {s}: {d}");
        }
        Ok(())
    }

    /// A hand-computed case: frames 1, 3, 2, 5 at one joint, stride 2:
    /// windows {0,1}, {1,2,3} → 3, 5; gradients land on frames 1 and 3.
    #[test]
    fn hand_computed() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[1f32, 3., 2., 5.], &dev)?.reshape((1, 1, 4, 1))?)?;
        let y = max_pool3_time(&x, 2)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![3.0, 5.0]);
        let w = Tensor::new(&[10f32, 100.], &dev)?.reshape((1, 1, 2, 1))?;
        let grads = (y * w)?.sum_all()?.backward()?;
        let g = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(g, vec![0.0, 10.0, 0.0, 100.0]);
        Ok(())
    }
}
