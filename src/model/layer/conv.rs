//! Convolutions along time written as matrix products.
//!
//! Both layers keep PyTorch's `Conv2d` weight layout `(O, I, K, 1)` and
//! names (`weight`, `bias`), so a reference `state_dict` loads unchanged.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::batch_norm::BatchNorm;
use super::im2col::{subsample_time, time_columns};

fn conv_init(vb: &VarBuilder, o: usize, i: usize, k: usize) -> Result<Tensor> {
    // Kaiming normal, fan-out, as in CTR-GCN's `conv_init`.
    let init = Init::Kaiming {
        dist: candle_nn::init::NormalOrUniform::Normal,
        fan: candle_nn::init::FanInOut::FanOut,
        non_linearity: candle_nn::init::NonLinearity::ReLU,
    };
    vb.get_with_hints((o, i, k, 1), "weight", init)
}

/// Folds an inference batch norm that follows a convolution into its
/// weight `(O, ...)` and bias `(O,)`.
fn fold_into(weight: &Tensor, bias: Option<&Tensor>, bn: &BatchNorm) -> Result<(Tensor, Tensor)> {
    let (scale, shift) = bn.scale_shift()?;
    let dt = weight.dtype();
    let o = weight.dim(0)?;
    let mut shape = vec![1usize; weight.rank()];
    shape[0] = o;
    let w = weight
        .to_dtype(candle_core::DType::F32)?
        .broadcast_mul(&scale.reshape(shape.as_slice())?)?
        .to_dtype(dt)?;
    let b = match bias {
        Some(b) => ((b.to_dtype(candle_core::DType::F32)? * &scale)? + shift)?,
        None => shift,
    };
    Ok((w, b.to_dtype(dt)?))
}

/// A 1x1 convolution `(N, I, T, V) -> (N, O, ceil(T/s), V)` with an
/// optional temporal stride.
#[derive(Debug, Clone)]
pub struct Pointwise {
    /// `(O, I, 1, 1)`
    weight: Tensor,
    /// `(O,)`
    bias: Option<Tensor>,
    stride: usize,
}

impl Pointwise {
    /// A 1x1 convolution with bias (the usual case in these models).
    pub fn new(i: usize, o: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let weight = conv_init(&vb, o, i, 1)?;
        let bias = vb.get_with_hints(o, "bias", Init::Const(0.0))?;
        Ok(Self {
            weight,
            bias: Some(bias),
            stride,
        })
    }

    /// A 1x1 convolution without bias.
    pub fn new_no_bias(i: usize, o: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let weight = conv_init(&vb, o, i, 1)?;
        Ok(Self {
            weight,
            bias: None,
            stride,
        })
    }

    /// Builds the layer from tensors (`weight (O, I, 1, 1)`, `bias (O,)`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, stride: usize) -> Self {
        Self {
            weight,
            bias,
            stride,
        }
    }

    /// The weight `(O, I, 1, 1)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `(O,)`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// This convolution followed by `bn` (inference statistics), as one
    /// convolution with bias.
    pub fn fold_bn(&self, bn: &BatchNorm) -> Result<Self> {
        let (w, b) = fold_into(&self.weight, self.bias.as_ref(), bn)?;
        Ok(Self::from_tensors(w, Some(b), self.stride))
    }

    /// `x: (N, I, T, V) -> (N, O, T', V)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = subsample_time(x, self.stride)?;
        let (n, i, t, v) = x.dims4()?;
        let o = self.weight.dim(0)?;
        let w = self.weight.reshape((o, i))?.to_dtype(x.dtype())?; // (O, I)
        let x = x.reshape((n, i, t * v))?; // (N, I, T*V)
        crate::model::flops::add((n * o * i * t * v) as u64);
        let y = super::weight_matmul(&w, &x)?; // (N, O, T*V)
        let y = y.reshape((n, o, t, v))?;
        match &self.bias {
            Some(b) => super::add_along(&y, b, 1),
            None => Ok(y),
        }
    }
}

/// A `(K, 1)` convolution along time with zero padding, stride and dilation:
/// `(N, I, T, V) -> (N, O, T', V)`, `T' = (T + 2p - d(K-1) - 1) / s + 1`.
#[derive(Debug, Clone)]
pub struct TemporalConv {
    /// `(O, I, K, 1)`
    weight: Tensor,
    /// `(O,)`
    bias: Option<Tensor>,
    stride: usize,
    dilation: usize,
    pad: usize,
}

impl TemporalConv {
    /// A temporal convolution with bias and "same" padding
    /// `(K - 1) * d / 2`, as the CTR-GCN / ST-GCN units use it.
    pub fn new(
        i: usize,
        o: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = conv_init(&vb, o, i, k)?;
        let bias = vb.get_with_hints(o, "bias", Init::Const(0.0))?;
        Ok(Self {
            weight,
            bias: Some(bias),
            stride,
            dilation,
            pad: (k - 1) * dilation / 2,
        })
    }

    /// Builds the layer from tensors.
    pub fn from_tensors(
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        dilation: usize,
        pad: usize,
    ) -> Self {
        Self {
            weight,
            bias,
            stride,
            dilation,
            pad,
        }
    }

    /// Kernel length along time.
    pub fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    /// The weight `(O, I, K, 1)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// This convolution followed by `bn`, as one convolution with bias.
    pub fn fold_bn(&self, bn: &BatchNorm) -> Result<Self> {
        let (w, b) = fold_into(&self.weight, self.bias.as_ref(), bn)?;
        Ok(Self::from_tensors(
            w,
            Some(b),
            self.stride,
            self.dilation,
            self.pad,
        ))
    }

    /// Output length for an input of `t` frames.
    pub fn out_len(&self, t: usize) -> usize {
        let k = self.kernel();
        (t + 2 * self.pad - self.dilation * (k - 1) - 1) / self.stride + 1
    }

    /// `x: (N, I, T, V) -> (N, O, T', V)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, i, t, v) = x.dims4()?;
        let (o, _, k, _) = self.weight.dims4()?;
        // Refuses an input shorter than the kernel's reach, so `out_len`
        // below cannot underflow.
        let cols = time_columns(x, k, self.stride, self.dilation, self.pad)?; // (N, I*K, T'*V)
        let t_out = self.out_len(t);
        let w = self.weight.reshape((o, i * k))?.to_dtype(x.dtype())?; // (O, I*K)
        crate::model::flops::add((n * o * i * k * t_out * v) as u64);
        let y = super::weight_matmul(&w, &cols)?; // (N, O, T'*V)
        let y = y.reshape((n, o, t_out, v))?;
        match &self.bias {
            Some(b) => super::add_along(&y, b, 1),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp, D};

    /// Direct evaluation of the convolution sum, for comparison.
    #[allow(clippy::needless_range_loop)]
    fn naive(x: &Tensor, w: &Tensor, s: usize, d: usize, p: usize) -> Vec<Vec<Vec<Vec<f32>>>> {
        let (n, i, t, v) = x.dims4().unwrap();
        let (o, _, k, _) = w.dims4().unwrap();
        let t_out = (t + 2 * p - d * (k - 1) - 1) / s + 1;
        let mut out = vec![vec![vec![vec![0f32; v]; t_out]; o]; n];
        for b in 0..n {
            let xb = x.i(b).unwrap().to_vec3::<f32>().unwrap();
            for oc in 0..o {
                let wo = w
                    .i(oc)
                    .unwrap()
                    .squeeze(D::Minus1)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                for to in 0..t_out {
                    for vv in 0..v {
                        let mut acc = 0f32;
                        for ic in 0..i {
                            for j in 0..k {
                                let ti = (to * s + j * d) as isize - p as isize;
                                if ti >= 0 && (ti as usize) < t {
                                    acc += wo[ic][j] * xb[ic][ti as usize][vv];
                                }
                            }
                        }
                        out[b][oc][to][vv] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn temporal_conv_matches_direct_sum() -> Result<()> {
        let dev = Device::Cpu;
        for &(k, s, d) in &[
            (9, 1, 1),
            (9, 2, 1),
            (5, 1, 2),
            (5, 2, 2),
            (3, 1, 1),
            (1, 2, 1),
        ] {
            let x = Tensor::randn(0f32, 1.0, (2, 3, 11, 4), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (5, 3, k, 1), &dev)?;
            let p = (k - 1) * d / 2;
            let conv = TemporalConv::from_tensors(w.clone(), None, s, d, p);
            let y = conv.forward(&x)?;
            let want = naive(&x, &w, s, d, p);
            assert_eq!(y.dims()[2], want[0][0].len(), "k={k} s={s} d={d}");
            for b in 0..2 {
                let yb = y.i(b)?.to_vec3::<f32>()?;
                for (ro, wo) in yb.iter().zip(&want[b]) {
                    for (rt, wt) in ro.iter().zip(wo) {
                        for (a, e) in rt.iter().zip(wt) {
                            assert!((a - e).abs() < 1e-4, "k={k} s={s} d={d}: {a} vs {e}");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn pointwise_stride_takes_every_other_frame() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2.0 * 5.0 * 3.0, &dev)?.reshape((1, 2, 5, 3))?;
        let w = Tensor::ones((1, 2, 1, 1), candle_core::DType::F32, &dev)?;
        let y = Pointwise::from_tensors(w, None, 2).forward(&x)?;
        assert_eq!(y.dims(), &[1, 1, 3, 3]);
        // frame 2 of channel 0 is 6,7,8 and of channel 1 is 21,22,23.
        assert_eq!(y.i((0, 0, 1))?.to_vec1::<f32>()?, vec![27.0, 29.0, 31.0]);
        Ok(())
    }
}
