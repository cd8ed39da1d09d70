//! Broadcast additions whose backward pass candle makes slow, as a custom
//! op with a fast one.
//!
//! Adding a per-channel bias `(C,)` to `(N, C, T, V)`, or a learnable
//! adjacency `(U, V)` to `(N, O, U, V)`, is cheap forward; backward, candle
//! sums the gradient over the broadcast dimensions with one generic loop
//! that pays integer divisions per element whenever those dimensions are
//! not the trailing ones. In a CTR-GCN training step that loop was 23 % of
//! the time (`perf`, batch 16). Here the sum over the trailing part is
//! candle's contiguous fast path and the sum over the leading part is one
//! matrix product with a row of ones.
//!
//! Both views are one operation: `y` seen as `(A, C, B)` plus `bias` `(C,)`
//! broadcast along `A` and `B`. On a non-CPU device the plain
//! `broadcast_add` runs instead (candle's CUDA kernels have their own
//! reductions), so the CUDA path is unchanged.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

/// `y: (A, C, B) + bias: (C,)` broadcast over `A` and `B`.
#[derive(Debug, Clone, Copy)]
struct AddAlong {
    a: usize,
    c: usize,
    b: usize,
}

/// Below this many elements the addition runs on one thread.
const PAR_MIN: usize = 1 << 15;

impl AddAlong {
    fn apply<T: Copy + Send + Sync + std::ops::Add<Output = T>>(
        &self,
        y: &[T],
        bias: &[T],
    ) -> Vec<T> {
        let (c, b) = (self.c, self.b);
        let mut out = y.to_vec();
        let row = |dst: &mut [T]| {
            for (ci, chunk) in dst.chunks_mut(b).enumerate() {
                let bc = bias[ci];
                for x in chunk {
                    *x = *x + bc;
                }
            }
        };
        if out.len() >= PAR_MIN && self.a > 1 {
            out.par_chunks_mut(c * b).for_each(row);
        } else {
            out.chunks_mut(c * b).for_each(row);
        }
        out
    }
}

impl CustomOp2 for AddAlong {
    fn name(&self) -> &'static str {
        "skelact-add-along"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (Some((o1, e1)), Some((o2, e2))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("skelact-add-along: inputs must be contiguous");
        };
        if e1 - o1 != self.a * self.c * self.b || e2 - o2 != self.c {
            candle_core::bail!(
                "skelact-add-along: {} + {} elements for ({}, {}, {})",
                e1 - o1,
                e2 - o2,
                self.a,
                self.c,
                self.b
            );
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(b)) => {
                CpuStorage::F32(self.apply(&y[o1..e1], &b[o2..e2]))
            }
            (CpuStorage::F64(y), CpuStorage::F64(b)) => {
                CpuStorage::F64(self.apply(&y[o1..e1], &b[o2..e2]))
            }
            (CpuStorage::F16(y), CpuStorage::F16(b)) => {
                CpuStorage::F16(self.apply(&y[o1..e1], &b[o2..e2]))
            }
            (CpuStorage::BF16(y), CpuStorage::BF16(b)) => {
                CpuStorage::BF16(self.apply(&y[o1..e1], &b[o2..e2]))
            }
            _ => candle_core::bail!(
                "skelact-add-along: unsupported dtypes {:?} + {:?}",
                s1.dtype(),
                s2.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A constant bias (a frozen pre-BN bias in training) needs no sum.
        if !bias.track_op() {
            return Ok((Some(grad.clone()), None));
        }
        let (a, c, b) = (self.a, self.c, self.b);
        // Sum over B: candle's contiguous last-dimension path (a trailing
        // bias, B = 1, has nothing to sum: candle would still visit every
        // element as a reduction of length one).
        let g = if b == 1 {
            grad.reshape((a, c))?
        } else {
            grad.reshape((a, c, b))?.sum(2)?
        }; // (A, C)
           // Sum over A: (1, A) · (A, C).
        let gb = if a == 1 {
            g.reshape(c)?
        } else {
            let ones = Tensor::ones((1, a), g.dtype(), g.device())?;
            ones.matmul(&g.contiguous()?)?.reshape(c)? // (C,)
        };
        Ok((Some(grad.clone()), Some(gb.to_dtype(bias.dtype())?)))
    }
}

/// `y + bias` with `bias: (C,)` broadcast along every dimension of `y` but
/// `dim` (which has size `C`), for example a per-channel bias on
/// `(N, C, T, V)` with `dim = 1`.
pub fn add_along(y: &Tensor, bias: &Tensor, dim: usize) -> Result<Tensor> {
    let dims = y.dims();
    let c = dims[dim];
    if bias.dims() != [c] {
        candle_core::bail!(
            "add_along: bias {:?} for dim {dim} of {:?}",
            bias.dims(),
            dims
        );
    }
    let bias = bias.to_dtype(y.dtype())?;
    let a: usize = dims[..dim].iter().product();
    let b: usize = dims[dim + 1..].iter().product();
    if is_constant_zero(y, &bias)? {
        return Ok(y.clone());
    }
    if !y.device().is_cpu() || !supported(y.dtype()) {
        let mut shape = vec![1usize; dims.len()];
        shape[dim] = c;
        return y.broadcast_add(&bias.reshape(shape)?);
    }
    y.contiguous()?
        .apply_op2(&bias.contiguous()?, AddAlong { a, c, b })
}

/// `y + t` where `t`'s shape equals the trailing dimensions of `y`, for
/// example a `(U, V)` adjacency added to `(N, O, U, V)`.
pub fn add_trailing(y: &Tensor, t: &Tensor) -> Result<Tensor> {
    let dims = y.dims();
    let k = t.rank();
    if k > dims.len() || dims[dims.len() - k..] != *t.dims() {
        candle_core::bail!("add_trailing: {:?} + {:?}", dims, t.dims());
    }
    let t = t.to_dtype(y.dtype())?;
    if !y.device().is_cpu() || !supported(y.dtype()) {
        return y.broadcast_add(&t);
    }
    let c = t.elem_count();
    let a = y.elem_count() / c.max(1);
    y.contiguous()?
        .apply_op2(&t.flatten_all()?.contiguous()?, AddAlong { a, c, b: 1 })
}

/// In a training graph, a bias that is a constant (not a variable, not
/// computed) and all zeros: the frozen pre-BN biases of
/// `train::backend`. Adding it is the identity, so the copy is skipped.
fn is_constant_zero(y: &Tensor, bias: &Tensor) -> Result<bool> {
    if !y.track_op() || bias.track_op() || !bias.device().is_cpu() {
        return Ok(false);
    }
    let v = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(v.iter().all(|&x| x == 0.0))
}

fn supported(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// `sum(w ⊙ f(y, bias))` with fixed weights `w`, so that every output
    /// element has its own gradient.
    fn loss(out: &Tensor, w: &Tensor) -> Result<Tensor> {
        (out * w)?.sum_all()
    }

    /// Central differences of `loss` in f64 against the custom op's
    /// gradients, and the forward against candle's `broadcast_add`.
    fn check(
        y_shape: &[usize],
        bias_shape: &[usize],
        f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<()> {
        let dev = Device::Cpu;
        let y = Var::from_tensor(&Tensor::randn(0f64, 1.0, y_shape, &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f64, 1.0, bias_shape, &dev)?)?;
        let out = f(y.as_tensor(), b.as_tensor())?;
        let want = reference(y.as_tensor(), b.as_tensor())?;
        let diff = (&out - &want)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "forward differs by {diff}");
        let w = Tensor::randn(0f64, 1.0, out.shape(), &dev)?;
        let grads = loss(&out, &w)?.backward()?;
        let eps = 1e-6;
        for var in [&y, &b] {
            let g = grads
                .get(var.as_tensor())
                .expect("gradient")
                .flatten_all()?
                .to_vec1::<f64>()?;
            let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            for (i, gi) in g.iter().enumerate() {
                let at = |d: f64| -> Result<f64> {
                    let mut v = base.clone();
                    v[i] += d;
                    let t = Tensor::from_vec(v, var.shape(), &dev)?;
                    let out = if std::ptr::eq(var, &y) {
                        f(&t, b.as_tensor())?
                    } else {
                        f(y.as_tensor(), &t)?
                    };
                    loss(&out, &w)?.to_scalar::<f64>()
                };
                let num = (at(eps)? - at(-eps)?) / (2.0 * eps);
                assert!(
                    (num - gi).abs() < 1e-6 * (1.0 + num.abs()),
                    "element {i}: numeric {num} vs analytic {gi}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn add_along_gradients_match_central_differences() -> Result<()> {
        check(
            &[2, 3, 4, 5],
            &[3],
            |y, b| add_along(y, b, 1),
            |y, b| y.broadcast_add(&b.reshape((1, 3, 1, 1))?),
        )?;
        // Leading and trailing extents of one.
        check(
            &[1, 4, 3],
            &[4],
            |y, b| add_along(y, b, 1),
            |y, b| y.broadcast_add(&b.reshape((1, 4, 1))?),
        )?;
        check(
            &[3, 5],
            &[5],
            |y, b| add_along(y, b, 1),
            |y, b| y.broadcast_add(b),
        )
    }

    #[test]
    fn add_trailing_gradients_match_central_differences() -> Result<()> {
        check(&[2, 3, 4, 4], &[4, 4], add_trailing, |y, b| {
            y.broadcast_add(b)
        })?;
        check(&[4, 4], &[4, 4], add_trailing, |y, b| y.broadcast_add(b))
    }

    #[test]
    fn f32_and_f16_forward_match_broadcast_add() -> Result<()> {
        let dev = Device::Cpu;
        // Large enough for the parallel path.
        let y = Tensor::randn(0f32, 1.0, (4, 64, 16, 25), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 64, &dev)?;
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let (y, b) = (y.to_dtype(dt)?, b.to_dtype(dt)?);
            let got = add_along(&y, &b, 1)?.to_dtype(DType::F32)?;
            let want = y
                .broadcast_add(&b.reshape((1, 64, 1, 1))?)?
                .to_dtype(DType::F32)?;
            let d = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(d, 0.0, "{dt:?}");
        }
        Ok(())
    }

    /// A constant zero bias in a training graph is skipped forward and
    /// gets no gradient; a variable one still does.
    #[test]
    fn constant_zero_bias_is_skipped() -> Result<()> {
        let dev = Device::Cpu;
        let y = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 4), &dev)?)?;
        let zero = Tensor::zeros(3, DType::F32, &dev)?;
        let out = add_along(&y, &zero, 1)?;
        let grads = out.sum_all()?.backward()?;
        assert!(grads.get(&zero).is_none());
        assert_eq!(grads.get(&y).unwrap().sum_all()?.to_scalar::<f32>()?, 24.0);
        let b = Var::from_tensor(&zero)?;
        let grads = add_along(&y, &b, 1)?.sum_all()?.backward()?;
        assert_eq!(grads.get(&b).unwrap().to_vec1::<f32>()?, vec![8.0; 3]);
        Ok(())
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let dev = Device::Cpu;
        let y = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        assert!(add_along(&y, &Tensor::zeros(4, DType::F32, &dev).unwrap(), 1).is_err());
        assert!(add_trailing(&y, &Tensor::zeros((3, 5), DType::F32, &dev).unwrap()).is_err());
    }

    #[test]
    fn strided_input_is_handled() -> Result<()> {
        let dev = Device::Cpu;
        let y = Tensor::randn(0f32, 1.0, (3, 2, 5), &dev)?.transpose(0, 1)?; // (2, 3, 5), strided
        let b = Tensor::randn(0f32, 1.0, 3, &dev)?;
        let got = add_along(&y, &b, 1)?;
        let want = y.broadcast_add(&b.reshape((1, 3, 1))?)?;
        let d = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(d, 0.0);
        Ok(())
    }
}
