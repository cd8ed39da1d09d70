//! Activations not provided by candle as modules, and ReLU with a one-pass
//! backward.
//!
//! candle's ReLU backward builds `grad * (x >= 0)` from four full-size
//! tensors (zeros, comparison, cast, product); a CTR-GCN block has four
//! ReLUs, each after a residual sum. [`relu`] and [`add_relu`] (the fused
//! `relu(a + b)`) compute the masked gradient in one pass from the output.
//! Only f32 on the CPU takes that path; other dtypes and devices run
//! candle's ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::cpu_slice::{f32_slice, output_buffer};
use rayon::prelude::*;

/// Swish / SiLU: `x * sigmoid(x)`.
pub fn swish(x: &Tensor) -> Result<Tensor> {
    x * candle_nn::ops::sigmoid(x)?
}

/// Hardswish as in PyTorch: `x * relu6(x + 3) / 6`.
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    let r6 = ((x + 3.0)?.clamp(0f32, 6f32)? / 6.0)?;
    x * r6
}

/// Below this many elements the element-wise loops run on one thread.
const PAR_MIN: usize = 1 << 15;
const CHUNK: usize = 1 << 13;

/// `out[i] = f(i-th elements)` over equal-length slices, in parallel chunks
/// when large.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "zip_map over unequal slices");
    // SAFETY: `b` is as long as `a`, so the loops below write every element.
    let mut out = unsafe { output_buffer(a.len()) };
    let run = |(o, (x, y)): (&mut [f32], (&[f32], &[f32]))| {
        for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
            *o = f(x, y);
        }
    };
    if a.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(run);
    } else {
        run((&mut out[..], (a, b)));
    }
    out
}

/// The forward of an element-wise op on two equal-length f32 inputs.
fn binary_fwd(
    name: &str,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<(CpuStorage, Shape)> {
    let a = f32_slice(s1, l1, name)?;
    let b = f32_slice(s2, l2, name)?;
    if a.len() != b.len() {
        candle_core::bail!("{name}: {} vs {} elements", a.len(), b.len());
    }
    Ok((CpuStorage::F32(zip_map(a, b, f)), l1.shape().clone()))
}

/// `max(x, 0)`.
#[derive(Debug, Clone, Copy)]
struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "skelact-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let out = zip_map(x, x, |v, _| v.max(0.0));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(relu_grad(res, grad)?))
    }
}

/// `max(a + b, 0)`.
#[derive(Debug, Clone, Copy)]
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "skelact-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        binary_fwd(self.name(), (s1, l1), (s2, l2), |x, y| (x + y).max(0.0))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = relu_grad(res, grad)?;
        let ga = a.track_op().then(|| g.clone());
        let gb = b.track_op().then_some(g);
        Ok((ga, gb))
    }
}

/// `grad * (res > 0)` in one pass, `res` being a ReLU's output.
#[derive(Debug, Clone, Copy)]
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "skelact-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        binary_fwd(self.name(), (s1, l1), (s2, l2), |r, g| {
            if r > 0.0 {
                g
            } else {
                0.0
            }
        })
    }
}

fn relu_grad(res: &Tensor, grad: &Tensor) -> Result<Tensor> {
    res.detach().apply_op2(&grad.contiguous()?, ReluGrad)
}

fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// `max(x, 0)`, with a one-pass backward for f32 on the CPU.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

/// `max(a + b, 0)` (a residual sum and its ReLU) as one op for f32 on the
/// CPU.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.shape() != b.shape() {
        candle_core::bail!("add_relu: {:?} + {:?}", a.dims(), b.dims());
    }
    if !fused(a) || !fused(b) {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layer::max_abs_diff;
    use candle_core::{DType, Device, Var};

    /// Forward and gradients equal candle's `relu` on both sides of zero,
    /// in the serial and the parallel path.
    #[test]
    fn relu_and_add_relu_match_candle() -> Result<()> {
        let dev = Device::Cpu;
        for shape in [&[2usize, 3, 5][..], &[4, 64, 16, 25]] {
            let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev)?)?;
            let w = Tensor::randn(0f32, 1.0, shape, &dev)?;
            // At an input of exactly 0 candle's ReLU passes the gradient
            // (x >= 0) and skelact's does not (PyTorch's convention,
            // result > 0): compare the gradients away from exact zeros,
            // which two random draws hit now and then (a = -b).
            let away = |x: &Tensor| -> Result<Tensor> { x.ne(0f32)?.to_dtype(DType::F32) };
            let masked = |g: &Tensor, m: &Tensor| -> Result<Tensor> { g * m };
            let got = relu(&a)?;
            let want = a.relu()?;
            assert_eq!(max_abs_diff(&got, &want), 0.0);
            let g1 = (&got * &w)?.sum_all()?.backward()?;
            let g2 = (&want * &w)?.sum_all()?.backward()?;
            let m = away(a.as_tensor())?;
            assert_eq!(
                max_abs_diff(
                    &masked(g1.get(&a).unwrap(), &m)?,
                    &masked(g2.get(&a).unwrap(), &m)?
                ),
                0.0
            );

            let got = add_relu(&a, &b)?;
            let sum = (a.as_tensor() + b.as_tensor())?;
            let want = sum.relu()?;
            assert!(max_abs_diff(&got, &want) == 0.0);
            let g1 = (&got * &w)?.sum_all()?.backward()?;
            let g2 = (&want * &w)?.sum_all()?.backward()?;
            let m = away(&sum)?;
            for v in [&a, &b] {
                let (p, q) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert_eq!(max_abs_diff(&masked(p, &m)?, &masked(q, &m)?), 0.0);
                // Where a + b is exactly 0, no gradient passes.
                let at_zero = (p * (1.0 - &m)?)?.abs()?.sum_all()?.to_scalar::<f32>()?;
                assert_eq!(at_zero, 0.0);
            }
        }
        Ok(())
    }

    /// A hand-computed case: relu(a + b) with a = (1, −2, 3), b = (−2, 1, 1);
    /// the gradient of Σ 2·y passes only where a + b > 0.
    #[test]
    fn add_relu_hand_computed() -> Result<()> {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::new(&[1f32, -2., 3.], &dev)?)?;
        let b = Tensor::new(&[-2f32, 1., 1.], &dev)?;
        let y = add_relu(&a, &b)?;
        assert_eq!(y.to_vec1::<f32>()?, vec![0.0, 0.0, 4.0]);
        let grads = (y * 2.0)?.sum_all()?.backward()?;
        assert_eq!(
            grads.get(&a).unwrap().to_vec1::<f32>()?,
            vec![0.0, 0.0, 2.0]
        );
        assert!(grads.get(&b).is_none(), "a constant gets no gradient");
        Ok(())
    }

    #[test]
    fn f16_falls_back_and_shapes_are_checked() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[-1f32, 2.], &dev)?.to_dtype(DType::F16)?;
        let y = relu(&x)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        assert_eq!(y, vec![0.0, 2.0]);
        let a = Tensor::zeros(3, DType::F32, &dev)?;
        let b = Tensor::zeros(4, DType::F32, &dev)?;
        assert!(add_relu(&a, &b).is_err());
        Ok(())
    }
}
