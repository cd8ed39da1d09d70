//! Depthwise temporal convolution: a `(K, 1)` kernel per channel
//! (PyTorch `Conv2d(C, C, (K, 1), (s, 1), (p, 0), groups=C)`), as in
//! EfficientGCN's separable temporal layer.
//!
//! candle's grouped convolution runs a loop over the groups (19x slower
//! than PyTorch on these shapes, see CANDLE-NOTES.md). A depthwise kernel is
//! only `K` multiply-adds per output, so it is written here as a sum over the
//! `K` taps of a per-channel scale times a shifted, strided slice of the
//! padded input — exact, and a handful of element-wise passes. The strided
//! slices are views: the padded input is reshaped to `(N, C, T/s, s, V)` so
//! that frame `to * s + j` of tap `j = q * s + r` is element `(to + q, r)`.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::model::layer::BatchNorm;

/// A depthwise `(K, 1)` temporal convolution with zero padding and stride:
/// `(N, C, T, V) -> (N, C, T', V)`, `T' = (T + 2p - K) / s + 1`.
#[derive(Debug, Clone)]
pub struct DepthwiseTemporalConv {
    /// `(C, 1, K, 1)`, PyTorch's layout.
    weight: Tensor,
    /// `(C,)`
    bias: Option<Tensor>,
    stride: usize,
    pad: usize,
}

impl DepthwiseTemporalConv {
    /// A depthwise convolution over `c` channels with kernel `k`, "same"
    /// padding `(k - 1) / 2` and temporal stride `stride`; weights `weight`
    /// and (when `bias`) `bias` from `vb`.
    pub fn new(c: usize, k: usize, stride: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        // PyTorch's default (Kaiming uniform, a = sqrt(5)) for fan-in k.
        let bound = 1.0 / (k as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((c, 1, k, 1), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(c, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            pad: (k - 1) / 2,
        })
    }

    /// Builds the layer from tensors: `weight (C, 1, K, 1)`, `bias (C,)`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, stride: usize, pad: usize) -> Self {
        Self {
            weight,
            bias,
            stride,
            pad,
        }
    }

    /// The weight `(C, 1, K, 1)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `(C,)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Kernel length.
    pub fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    /// Output length for an input of `t` frames.
    pub fn out_len(&self, t: usize) -> usize {
        (t + 2 * self.pad - self.kernel()) / self.stride + 1
    }

    /// This convolution followed by `bn` (inference statistics), as one
    /// depthwise convolution with bias.
    pub fn fold_bn(&self, bn: &BatchNorm) -> Result<Self> {
        let (scale, shift) = bn.scale_shift()?; // (C,) each, f32
        let dt = self.weight.dtype();
        let c = self.weight.dim(0)?;
        let w = self
            .weight
            .to_dtype(DType::F32)?
            .broadcast_mul(&scale.reshape((c, 1, 1, 1))?)?
            .to_dtype(dt)?;
        let b = match &self.bias {
            Some(b) => ((b.to_dtype(DType::F32)? * &scale)? + shift)?,
            None => shift,
        };
        Ok(Self::from_tensors(
            w,
            Some(b.to_dtype(dt)?),
            self.stride,
            self.pad,
        ))
    }

    /// `x: (N, C, T, V) -> (N, C, T', V)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, t, v) = x.dims4()?;
        let k = self.kernel();
        let s = self.stride;
        if t + 2 * self.pad < k {
            candle_core::bail!(
                "depthwise conv: {t} frames with padding {} is shorter than the kernel {k}",
                self.pad
            );
        }
        let t_out = self.out_len(t);
        // Frames read: to * s + j for to < t_out, j < k, in the padded input.
        // Pad on the right up to a multiple of s covering them all.
        let m = t_out + (k - 1) / s + 1; // rows of s frames
        let right = m * s - t - self.pad;
        let xp = x.pad_with_zeros(2, self.pad, right)?; // (N, C, m*s, V)
        let xr = xp.reshape((n, c, m, s, v))?; // frame f = row * s + phase
        let w = self.weight.to_dtype(x.dtype())?.reshape((c, k))?; // (C, K)
        crate::model::flops::add((n * c * k * t_out * v) as u64);
        let mut acc: Option<Tensor> = None;
        for j in 0..k {
            let (q, r) = (j / s, j % s);
            let tap = xr.narrow(2, q, t_out)?.narrow(3, r, 1)?; // (N, C, T', 1, V) view
            let wj = w.narrow(1, j, 1)?.reshape((1, c, 1, 1, 1))?;
            let term = tap.broadcast_mul(&wj)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
        let y = match acc {
            Some(a) => a.reshape((n, c, t_out, v))?,
            None => candle_core::bail!("depthwise conv with an empty kernel"),
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?.reshape((1, c, 1, 1))?),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    /// Direct evaluation of the depthwise sum.
    fn naive(x: &Tensor, w: &Tensor, b: &[f32], s: usize, p: usize) -> Vec<f32> {
        let (n, c, t, v) = x.dims4().unwrap();
        let k = w.dims()[2];
        let t_out = (t + 2 * p - k) / s + 1;
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let wv = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out = vec![0f32; n * c * t_out * v];
        for bi in 0..n {
            for ci in 0..c {
                for to in 0..t_out {
                    for vi in 0..v {
                        let mut acc = b[ci];
                        for j in 0..k {
                            let ti = (to * s + j) as isize - p as isize;
                            if ti >= 0 && (ti as usize) < t {
                                acc +=
                                    wv[ci * k + j] * xv[((bi * c + ci) * t + ti as usize) * v + vi];
                            }
                        }
                        out[((bi * c + ci) * t_out + to) * v + vi] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_sum() -> Result<()> {
        let dev = Device::Cpu;
        for &(k, s, t) in &[
            (5, 2, 12),
            (5, 2, 11),
            (5, 1, 9),
            (3, 2, 7),
            (9, 2, 10),
            (1, 2, 5),
        ] {
            let x = Tensor::randn(0f32, 1.0, (2, 3, t, 4), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (3, 1, k, 1), &dev)?;
            let b = vec![0.1f32, -0.2, 0.3];
            let p = (k - 1) / 2;
            let conv = DepthwiseTemporalConv::from_tensors(
                w.clone(),
                Some(Tensor::new(b.as_slice(), &dev)?),
                s,
                p,
            );
            let y = conv.forward(&x)?;
            let want = naive(&x, &w, &b, s, p);
            assert_eq!(y.dims()[2], (t + 2 * p - k) / s + 1, "k={k} s={s} t={t}");
            let got = y.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(got.len(), want.len());
            for (a, e) in got.iter().zip(&want) {
                assert!((a - e).abs() < 1e-5, "k={k} s={s} t={t}: {a} vs {e}");
            }
        }
        Ok(())
    }

    #[test]
    fn matches_pytorch_output_length() -> Result<()> {
        // PyTorch: floor((T + 2*2 - 5) / 2) + 1 = ceil(T / 2) for k=5, s=2.
        let dev = Device::Cpu;
        let w = Tensor::ones((1, 1, 5, 1), DType::F32, &dev)?;
        let conv = DepthwiseTemporalConv::from_tensors(w, None, 2, 2);
        for t in 1..12 {
            let x = Tensor::ones((1, 1, t, 1), DType::F32, &dev)?;
            assert_eq!(conv.forward(&x)?.dims()[2], t.div_ceil(2));
        }
        // interior output of an all-ones input sums the 5 taps
        let x = Tensor::ones((1, 1, 10, 1), DType::F32, &dev)?;
        assert_eq!(conv.forward(&x)?.i((0, 0, 2, 0))?.to_scalar::<f32>()?, 5.0);
        Ok(())
    }
}
