//! The columns of a `(K, 1)` convolution along time (im2col), as one op.
//!
//! [`super::TemporalConv`] multiplies its weight `(O, I*K)` by the columns
//! `(N, I*K, T'*V)`: for each input channel and tap, the frames that tap
//! reads for every output frame. In candle ops that is a zero pad, one
//! `narrow` and one strided subsample per tap, and a `stack`; in training
//! each `narrow`'s gradient is a zero-padded full-size tensor and the
//! subsample's another, so the backward of a 9-tap convolution allocates
//! and adds some twenty tensors the size of its input. Here forward is one
//! copy of `V`-long rows and backward one scatter-add into the input's
//! gradient, both parallel over samples and channels. f32 on the CPU only;
//! other dtypes and devices use the candle ops.
//!
//! With `K = 1` and no padding the columns are every `s`-th frame, the
//! input of a strided 1x1 convolution ([`super::subsample_time`]).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_slice::{f32_slice, output_buffer_or_zeros};

/// The geometry of one im2col: `rows` = `N * I` rows of `T` frames of `V`
/// joints; `k` taps `d` frames apart; stride `s`; `p` zero frames each side.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TimeColumns {
    rows: usize,
    t: usize,
    v: usize,
    k: usize,
    s: usize,
    d: usize,
    p: usize,
}

impl TimeColumns {
    /// Output frames, `(T + 2p - d(K-1) - 1) / s + 1`; `None` when the
    /// padded input is shorter than the kernel's reach or `s`, `d` or `k`
    /// is zero.
    fn t_out(&self) -> Option<usize> {
        if self.s == 0 || self.d == 0 || self.k == 0 {
            return None;
        }
        let reach = self.d * (self.k - 1) + 1;
        (self.t + 2 * self.p)
            .checked_sub(reach)
            .map(|x| x / self.s + 1)
    }

    /// The input frame that tap `j` reads for output frame `to`, or `None`
    /// in the padding.
    fn source(&self, j: usize, to: usize) -> Option<usize> {
        (to * self.s + j * self.d)
            .checked_sub(self.p)
            .filter(|&f| f < self.t)
    }
}

impl CustomOp1 for TimeColumns {
    fn name(&self) -> &'static str {
        "skelact-time-columns"
    }

    /// `(rows, T, V) -> (rows, K * T' * V)`, tap-major within a row.
    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(st, l, self.name())?;
        let (t, v, k) = (self.t, self.v, self.k);
        let Some(to) = self.t_out() else {
            candle_core::bail!("{}: no output frames for {self:?}", self.name());
        };
        if x.len() != self.rows * t * v {
            candle_core::bail!("{}: {} elements for {self:?}", self.name(), x.len());
        }
        let row = k * to * v;
        // SAFETY: with T > 0 the rows of `out` pair one to one with the
        // rows of `x` (length checked above), and every V-long piece of a
        // row is either copied or zeroed below.
        let mut out = unsafe { output_buffer_or_zeros(self.rows * row, t > 0) };
        out.par_chunks_mut(row.max(1))
            .zip(x.par_chunks((t * v).max(1)))
            .for_each(|(o, xr)| {
                for (c, dst) in o.chunks_mut(v.max(1)).enumerate() {
                    let (j, f) = (c / to, c % to);
                    match self.source(j, f) {
                        Some(src) => dst.copy_from_slice(&xr[src * v..][..v]),
                        None => dst.fill(0.0),
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((self.rows, row))))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = grad.contiguous()?.apply_op1(TimeColumnsGrad(*self))?;
        Ok(Some(dx))
    }
}

/// Backward of [`TimeColumns`]: `(rows, K * T' * V) -> (rows, T, V)`, every
/// column's gradient added back onto the frame it was copied from.
#[derive(Debug, Clone, Copy)]
struct TimeColumnsGrad(TimeColumns);

impl CustomOp1 for TimeColumnsGrad {
    fn name(&self) -> &'static str {
        "skelact-time-columns-backward"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let c = self.0;
        let g = f32_slice(st, l, self.name())?;
        let (t, v, k) = (c.t, c.v, c.k);
        let Some(to) = c.t_out() else {
            candle_core::bail!("{}: no output frames for {c:?}", self.name());
        };
        let row = k * to * v;
        if g.len() != c.rows * row {
            candle_core::bail!("{}: {} elements for {c:?}", self.name(), g.len());
        }
        let mut dx = vec![0f32; c.rows * t * v];
        dx.par_chunks_mut((t * v).max(1))
            .zip(g.par_chunks(row.max(1)))
            .for_each(|(d, gr)| {
                for (i, src) in gr.chunks(v.max(1)).enumerate() {
                    if let Some(f) = c.source(i / to, i % to) {
                        for (a, &b) in d[f * v..][..v].iter_mut().zip(src) {
                            *a += b;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(dx), Shape::from((c.rows, t, v))))
    }
}

/// The candle-op version: zero pad, then per tap a `narrow` and every
/// `s`-th frame, stacked.
fn time_columns_ops(
    x: &Tensor,
    k: usize,
    s: usize,
    d: usize,
    p: usize,
    t_out: usize,
) -> Result<Tensor> {
    let (n, i, _t, v) = x.dims4()?;
    let xp = x.pad_with_zeros(2, p, p)?; // (N, I, T + 2p, V)
    let span = (t_out - 1) * s + 1;
    let taps = (0..k)
        .map(|j| subsample_ops(&xp.narrow(2, j * d, span)?, s)) // (N, I, T', V)
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&taps, 2)?.reshape((n, i * k, t_out * v)) // (N, I*K, T'*V)
}

/// Every `s`-th frame of `(N, C, T, V)` in candle ops.
fn subsample_ops(x: &Tensor, s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(x.clone());
    }
    let (n, c, t, v) = x.dims4()?;
    let t_out = t.div_ceil(s);
    let x = if t_out * s > t {
        x.pad_with_zeros(2, 0, t_out * s - t)?
    } else {
        x.clone()
    };
    x.reshape((n, c, t_out, s, v))?.narrow(3, 0, 1)?.squeeze(3)
}

/// The columns of a temporal convolution with `k` taps `d` frames apart,
/// stride `s` and `p` zero frames each side: `x: (N, I, T, V) ->
/// (N, I*K, T'*V)`, row `i*K + j` holding the frames tap `j` of input
/// channel `i` reads, `T' = (T + 2p - d(K-1) - 1) / s + 1`.
pub fn time_columns(x: &Tensor, k: usize, s: usize, d: usize, p: usize) -> Result<Tensor> {
    let (n, i, t, v) = x.dims4()?;
    let op = TimeColumns {
        rows: n * i,
        t,
        v,
        k,
        s,
        d,
        p,
    };
    let Some(t_out) = op.t_out() else {
        candle_core::bail!("time_columns: {t} frames with padding {p} are shorter than a {k}-tap kernel of dilation {d} (or a stride is 0)");
    };
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.elem_count() == 0 {
        return time_columns_ops(x, k, s, d, p, t_out);
    }
    x.contiguous()?
        .reshape((n * i, t, v))?
        .apply_op1(op)?
        .reshape((n, i * k, t_out * v))
}

/// Every `s`-th frame, `(N, C, T, V) -> (N, C, ceil(T/s), V)`: the frames a
/// stride-`s` convolution with kernel 1 and no padding reads.
pub fn subsample_time(x: &Tensor, s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(x.clone());
    }
    let (n, c, t, v) = x.dims4()?;
    if s == 0 {
        candle_core::bail!("subsample_time: stride 0");
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.elem_count() == 0 {
        return subsample_ops(x, s);
    }
    time_columns(x, 1, s, 1, 0)?.reshape((n, c, t.div_ceil(s), v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layer::max_abs_diff;
    use candle_core::{Device, Var};

    /// Same columns and the same input gradient as the candle ops, for the
    /// kernels, strides, dilations and paddings the encoders use and some
    /// they do not (no padding, a kernel longer than the padding).
    #[test]
    fn matches_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        for &(t, k, s, d, p) in &[
            (11, 9, 1, 1, 4),
            (11, 9, 2, 1, 4),
            (10, 5, 1, 2, 4),
            (10, 5, 2, 2, 4),
            (7, 3, 1, 1, 1),
            (7, 1, 2, 1, 0),
            (8, 1, 2, 1, 0),
            (9, 3, 3, 1, 0),
            (4, 5, 1, 1, 2),
        ] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, t, 4), &dev)?)?;
            let got = time_columns(&x, k, s, d, p)?;
            let t_out = (t + 2 * p - d * (k - 1) - 1) / s + 1;
            let want = time_columns_ops(&x, k, s, d, p, t_out)?;
            assert_eq!(got.dims(), want.dims(), "t {t} k {k} s {s} d {d} p {p}");
            assert_eq!(max_abs_diff(&got, &want), 0.0);
            let w = Tensor::randn(0f32, 1.0, got.shape(), &dev)?;
            let g1 = (got * &w)?.sum_all()?.backward()?;
            let g2 = (want * &w)?.sum_all()?.backward()?;
            let diff = max_abs_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap());
            assert!(
                diff < 1e-5,
                "gradient t {t} k {k} s {s} d {d} p {p}: {diff}"
            );
        }
        Ok(())
    }

    /// Frames 1..=4 at one joint, 3 taps, padding 1, stride 2: output
    /// frames 0 and 1 read (0, 1, 2) and (2, 3, 4) of the padded frames;
    /// the gradient of frame 2 (value 2) is the sum of two columns.
    #[test]
    fn hand_computed() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[1f32, 2., 3., 4.], &dev)?.reshape((1, 1, 4, 1))?)?;
        let c = time_columns(&x, 3, 2, 1, 1)?;
        assert_eq!(c.dims(), &[1, 3, 2]);
        assert_eq!(
            c.flatten_all()?.to_vec1::<f32>()?,
            vec![0.0, 2.0, 1.0, 3.0, 2.0, 4.0]
        );
        let w =
            Tensor::new(&[1f32, 10., 100., 1000., 10000., 100000.], &dev)?.reshape((1, 3, 2))?;
        let grads = (c * w)?.sum_all()?.backward()?;
        let g = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(g, vec![100.0, 10010.0, 1000.0, 100000.0]);
        Ok(())
    }

    #[test]
    fn subsample_matches_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        for (t, s) in [(8, 2), (7, 2), (5, 3), (1, 2), (6, 1)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, t, 4), &dev)?)?;
            let got = subsample_time(&x, s)?;
            let want = subsample_ops(&x, s)?;
            assert_eq!(got.dims(), want.dims());
            assert_eq!(max_abs_diff(&got, &want), 0.0);
            let w = Tensor::randn(0f32, 1.0, got.shape(), &dev)?;
            let g1 = (got * &w)?.sum_all()?.backward()?;
            let g2 = (want * &w)?.sum_all()?.backward()?;
            assert_eq!(max_abs_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()), 0.0);
        }
        Ok(())
    }

    #[test]
    fn too_short_or_zero_stride_is_an_error() {
        let x = Tensor::zeros((1, 1, 2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(time_columns(&x, 9, 1, 1, 0).is_err());
        assert!(time_columns(&x, 3, 0, 1, 1).is_err());
        assert!(subsample_time(&x, 0).is_err());
    }

    /// f16 runs the candle ops and gives the same columns as f32.
    #[test]
    fn other_dtypes_use_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 2, 9, 3), &dev)?;
        let a = time_columns(&x, 5, 2, 2, 4)?;
        let b = time_columns(&x.to_dtype(DType::F16)?, 5, 2, 2, 4)?.to_dtype(DType::F32)?;
        assert!(max_abs_diff(&a, &b) < 1e-2);
        Ok(())
    }
}
