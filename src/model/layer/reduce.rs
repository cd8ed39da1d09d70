//! The mean over one middle dimension, as a custom op.
//!
//! CTR-GCN averages `(N, C, T, V)` over time in every graph unit. candle's
//! CPU reduction over a dimension that is not the last walks the tensor
//! with integer divisions per element, and its backward broadcasts and
//! copies; here the forward adds whole `V`-rows and the backward writes
//! the spread gradient in one pass. f32 on the CPU only; other dtypes and
//! devices use `mean_keepdim`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use super::cpu_slice::f32_slice;

/// `x: (A, T, B) → (A, 1, B)`, the mean over `T`.
#[derive(Debug, Clone, Copy)]
struct MeanMid {
    a: usize,
    t: usize,
    b: usize,
}

impl CustomOp1 for MeanMid {
    fn name(&self) -> &'static str {
        "skelact-mean-mid"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let (a, t, b) = (self.a, self.t, self.b);
        if x.len() != a * t * b {
            candle_core::bail!("skelact-mean-mid: {} elements for {a}x{t}x{b}", x.len());
        }
        let inv = 1.0 / t.max(1) as f32;
        let mut out = vec![0f32; a * b];
        for (o, xa) in out.chunks_mut(b).zip(x.chunks(t * b)) {
            for row in xa.chunks(b) {
                for (o, &v) in o.iter_mut().zip(row) {
                    *o += v;
                }
            }
            o.iter_mut().for_each(|v| *v *= inv);
        }
        Ok((CpuStorage::F32(out), Shape::from((a, 1, b))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?.apply_op1(SpreadMid {
            a: self.a,
            t: self.t,
            b: self.b,
        })?;
        Ok(Some(g.reshape(x.shape())?))
    }
}

/// Backward of [`MeanMid`]: `g: (A, 1, B) → (A, T, B)`, each row `g / T`.
#[derive(Debug, Clone, Copy)]
struct SpreadMid {
    a: usize,
    t: usize,
    b: usize,
}

impl CustomOp1 for SpreadMid {
    fn name(&self) -> &'static str {
        "skelact-mean-mid-backward"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l, self.name())?;
        let (a, t, b) = (self.a, self.t, self.b);
        if g.len() != a * b {
            candle_core::bail!("skelact-mean-mid-backward: {} elements", g.len());
        }
        let inv = 1.0 / t.max(1) as f32;
        let mut out = vec![0f32; a * t * b];
        for (oa, ga) in out.chunks_mut(t * b).zip(g.chunks(b)) {
            for row in oa.chunks_mut(b) {
                for (o, &v) in row.iter_mut().zip(ga) {
                    *o = v * inv;
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((a, t, b))))
    }
}

/// The mean of `x` over `dim`, keeping it with size 1.
pub fn mean_keepdim(x: &Tensor, dim: usize) -> Result<Tensor> {
    let dims = x.dims();
    if dim >= dims.len() {
        candle_core::bail!("mean over dim {dim} of {:?}", dims);
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.mean_keepdim(dim);
    }
    let op = MeanMid {
        a: dims[..dim].iter().product(),
        t: dims[dim],
        b: dims[dim + 1..].iter().product(),
    };
    let mut keep = dims.to_vec();
    keep[dim] = 1;
    x.contiguous()?
        .reshape((op.a, op.t, op.b))?
        .apply_op1(op)?
        .reshape(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 5, 4), &dev)?)?;
        for dim in 0..4 {
            let got = mean_keepdim(&x, dim)?;
            let want = x.mean_keepdim(dim)?;
            assert_eq!(got.dims(), want.dims());
            let d = (&got - &want)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(d < 1e-6, "dim {dim}: {d}");
            let w = Tensor::randn(0f32, 1.0, got.shape(), &dev)?;
            let g1 = (got * &w)?.sum_all()?.backward()?;
            let g2 = (want * &w)?.sum_all()?.backward()?;
            let d = (g1.get(&x).unwrap() - g2.get(&x).unwrap())?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(d < 1e-6, "gradient, dim {dim}: {d}");
        }
        Ok(())
    }

    #[test]
    fn hand_computed_mean() -> Result<()> {
        let dev = Device::Cpu;
        // (1, 3, 2): rows (1, 2), (3, 4), (8, 0) → (4, 2).
        let x = Tensor::new(&[[[1f32, 2.], [3., 4.], [8., 0.]]], &dev)?;
        let m = mean_keepdim(&x, 1)?;
        assert_eq!(m.dims(), [1, 1, 2]);
        assert_eq!(m.flatten_all()?.to_vec1::<f32>()?, vec![4.0, 2.0]);
        assert!(mean_keepdim(&x, 3).is_err());
        Ok(())
    }
}
