//! `W · x[n]` for every sample: the product behind 1x1 and temporal
//! convolutions, as a custom op whose backward accumulates the weight
//! gradient in place.
//!
//! In candle ops the shared weight is `W.broadcast_left(N)`; backward then
//! forms an `(N, O, Q)` gradient, one product per sample, and sums it over
//! `N` with the CPU backend's generic strided reduction. Here the weight
//! gradient `Σₙ dy[n] · x[n]ᵀ` accumulates into one `(O, Q)` buffer per
//! thread (`gemm` with `accumulate`), and `dx[n] = Wᵀ · dy[n]` is written
//! straight into its output. Samples run in parallel, each product on one
//! thread. f32 on the CPU only; other dtypes and devices use candle's
//! `matmul`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::cpu_slice::{f32_slice, output_buffer_or_zeros};
use rayon::prelude::*;

use crate::kernel::{matmul, MatMut, MatRef};

/// `w: (O, Q)`, `x: (N, Q, P)` → `(N, O, P)`.
#[derive(Debug, Clone, Copy)]
struct WeightMatmul {
    n: usize,
    o: usize,
    q: usize,
    p: usize,
}

impl WeightMatmul {
    fn check(&self, w: usize, x: usize, name: &str) -> Result<()> {
        if w != self.o * self.q || x != self.n * self.q * self.p {
            candle_core::bail!("{name}: {w} + {x} elements for {self:?}");
        }
        Ok(())
    }
}

impl CustomOp2 for WeightMatmul {
    fn name(&self) -> &'static str {
        "skelact-weight-matmul"
    }

    fn cpu_fwd(
        &self,
        sw: &CpuStorage,
        lw: &Layout,
        sx: &CpuStorage,
        lx: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let w = f32_slice(sw, lw, self.name())?;
        let x = f32_slice(sx, lx, self.name())?;
        self.check(w.len(), x.len(), self.name())?;
        let (n, o, q, p) = (self.n, self.o, self.q, self.p);
        // SAFETY: with Q > 0 every (O, P) block of `y` is the destination of
        // one non-accumulating product, which writes all of it.
        let mut y = unsafe { output_buffer_or_zeros(n * o * p, q > 0) };
        if o * p > 0 {
            y.par_chunks_mut(o * p)
                .zip(x.par_chunks(q * p))
                .for_each(|(yn, xn)| {
                    matmul(
                        MatMut::dense(yn, o, p),
                        MatRef::dense(w, o, q),
                        MatRef::dense(xn, q, p),
                        false,
                        1,
                    )
                });
        }
        Ok((CpuStorage::F32(y), Shape::from((n, o, p))))
    }

    fn bwd(
        &self,
        w: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, o, q, p) = (self.n, self.o, self.q, self.p);
        // (N·Q·P + O·Q,): dx, then dW.
        let packed =
            w.detach()
                .apply_op3(&grad.contiguous()?, &x.detach(), WeightMatmulGrad(*self))?;
        let dx = x
            .track_op()
            .then(|| packed.narrow(0, 0, n * q * p)?.reshape((n, q, p)))
            .transpose()?;
        let dw = w
            .track_op()
            .then(|| packed.narrow(0, n * q * p, o * q)?.reshape((o, q)))
            .transpose()?;
        Ok((dw, dx))
    }
}

/// Backward of [`WeightMatmul`]: `(W, dy, x) → [dx | dW]` (one output:
/// a custom op returns one tensor).
#[derive(Debug, Clone, Copy)]
struct WeightMatmulGrad(WeightMatmul);

impl CustomOp3 for WeightMatmulGrad {
    fn name(&self) -> &'static str {
        "skelact-weight-matmul-backward"
    }

    fn cpu_fwd(
        &self,
        sw: &CpuStorage,
        lw: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
        sx: &CpuStorage,
        lx: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let WeightMatmul { n, o, q, p } = self.0;
        let w = f32_slice(sw, lw, self.name())?;
        let g = f32_slice(sg, lg, self.name())?;
        let x = f32_slice(sx, lx, self.name())?;
        if g.len() != n * o * p {
            candle_core::bail!("{}: {} gradient elements", self.name(), g.len());
        }
        self.0.check(w.len(), x.len(), self.name())?;
        // SAFETY: with O > 0 every (Q, P) block of dx is written by a
        // non-accumulating product, and with N·P > 0 dW is copied in full
        // from the partial sums below.
        let mut out = unsafe { output_buffer_or_zeros(n * q * p + o * q, o > 0 && n * p > 0) };
        let (dx, dw) = out.split_at_mut(n * q * p);
        if n * q * p > 0 && o > 0 {
            // dx[n] = Wᵀ · dy[n]: Wᵀ is W read with swapped strides.
            dx.par_chunks_mut(q * p)
                .zip(g.par_chunks(o * p))
                .for_each(|(dxn, gn)| {
                    matmul(
                        MatMut::dense(dxn, q, p),
                        MatRef::new(w, q, o, 1, q),
                        MatRef::dense(gn, o, p),
                        false,
                        1,
                    )
                });
        }
        if o * q > 0 && n * p > 0 {
            // dW = Σₙ dy[n] · x[n]ᵀ, one partial sum per rayon split.
            let partial = (0..n)
                .into_par_iter()
                .fold(
                    || vec![0f32; o * q],
                    |mut acc, s| {
                        matmul(
                            MatMut::dense(&mut acc, o, q),
                            MatRef::dense(&g[s * o * p..][..o * p], o, p),
                            MatRef::new(&x[s * q * p..][..q * p], p, q, 1, p),
                            true,
                            1,
                        );
                        acc
                    },
                )
                .reduce(
                    || vec![0f32; o * q],
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                        a
                    },
                );
            dw.copy_from_slice(&partial);
        }
        Ok((CpuStorage::F32(out), Shape::from(n * q * p + o * q)))
    }
}

/// `w: (O, Q)` times each `x[n]: (Q, P)` → `(N, O, P)`.
pub fn weight_matmul(w: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (o, q) = w.dims2()?;
    let (n, q2, p) = x.dims3()?;
    if q != q2 {
        candle_core::bail!("weight_matmul: ({o}, {q}) · ({n}, {q2}, {p})");
    }
    let w = w.to_dtype(x.dtype())?;
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return w.broadcast_left(n)?.matmul(&x.contiguous()?);
    }
    w.contiguous()?
        .apply_op2(&x.contiguous()?, WeightMatmul { n, o, q, p })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let s = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        d.to_scalar::<f32>().unwrap() / s.max(1e-12)
    }

    /// Value and both gradients equal candle's broadcast matmul.
    #[test]
    fn matches_broadcast_matmul() -> Result<()> {
        let dev = Device::Cpu;
        for (n, o, q, p) in [(3, 4, 5, 6), (1, 2, 3, 1), (16, 24, 72, 130)] {
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (o, q), &dev)?)?;
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, q, p), &dev)?)?;
            let got = weight_matmul(&w, &x)?;
            let want = w.broadcast_left(n)?.matmul(&x)?;
            assert!(max_rel(&got, &want) < 1e-5);
            let r = Tensor::randn(0f32, 1.0, (n, o, p), &dev)?;
            let g1 = (got * &r)?.sum_all()?.backward()?;
            let g2 = (want * &r)?.sum_all()?.backward()?;
            for v in [&w, &x] {
                let e = max_rel(g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(e < 1e-5, "({n}, {o}, {q}, {p}): {e}");
            }
        }
        Ok(())
    }

    /// A hand-computed case: W = [[1, 2]], x[0] = [[1], [3]], x[1] = [[2], [0]].
    #[test]
    fn hand_computed() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[[1f32, 2.]], &dev)?)?;
        let x = Var::from_tensor(&Tensor::new(&[[[1f32], [3.]], [[2.], [0.]]], &dev)?)?;
        let y = weight_matmul(&w, &x)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![7.0, 2.0]);
        let grads = y.sum_all()?.backward()?;
        // dW = x[0]ᵀ + x[1]ᵀ; dx[n] = Wᵀ.
        assert_eq!(
            grads.get(&w).unwrap().to_vec2::<f32>()?,
            vec![vec![3.0, 3.0]]
        );
        let dx = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(dx, vec![1.0, 2.0, 1.0, 2.0]);
        assert!(weight_matmul(&w, &Tensor::zeros((1, 3, 1), DType::F32, &dev)?).is_err());
        Ok(())
    }
}
