//! The joint aggregation of a graph convolution over all adjacency subsets
//! at once, with the value projection's bias folded in:
//!
//! `y[n, o, t, u] = Σₖ Σᵥ (val[n, k, o, t, v] + b[k, o]) · adj[n, k, o, u, v]`
//!
//! CTR-GCN's spatial unit computes this with one candle `matmul` per subset
//! on a transposed adjacency, a bias broadcast before it and a sum after:
//! in training that is, per subset, a full-size bias add, a strided
//! transpose copy in backward, a strided reduction for the bias gradient
//! and an addition of the subsets — memory traffic that exceeded the
//! products themselves. Here one op does the products with [`matmul`]
//! (samples and channels in parallel, each product on one thread) and one
//! backward pass returns all three gradients. The bias never meets a
//! full-size tensor: its contribution is `b[k, o] · Σᵥ adj[n, k, o, u, v]`
//! forward, and its gradient `Σₙ Σᵤ (Σₜ dy[n, o, t, u]) · Σᵥ adj[n, k, o,
//! u, v]` backward. f32 on the CPU; other dtypes and devices run the same
//! formula in candle ops.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_slice::{f32_slice, output_buffer_or_zeros};
use crate::kernel::{matmul, MatMut, MatRef};

/// The sizes of one aggregation: `val: (N, K, O, T, V)`, `adj: (N, K, O,
/// U, V)`, `bias: (K, O)` → `(N, O, T, U)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dims {
    n: usize,
    k: usize,
    o: usize,
    t: usize,
    v: usize,
    u: usize,
}

impl Dims {
    fn check(&self, val: usize, adj: usize, bias: usize, op: &str) -> Result<()> {
        let Dims { n, k, o, t, v, u } = *self;
        if val != n * k * o * t * v || adj != n * k * o * u * v || bias != k * o {
            candle_core::bail!("{op}: {val} + {adj} + {bias} elements for {self:?}");
        }
        Ok(())
    }
}

/// `Σᵥ adj[u, v]` for one `(U, V)` matrix, into `out: (U,)`.
fn row_sums(adj: &[f32], v: usize, out: &mut [f32]) {
    for (s, row) in out.iter_mut().zip(adj.chunks_exact(v)) {
        *s = row.iter().sum();
    }
}

/// `Σₜ dy[t, u]` for one `(T, U)` matrix, into `out: (U,)`.
fn col_sums(dy: &[f32], u: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|s| *s = 0.0);
    for row in dy.chunks_exact(u) {
        out.iter_mut().zip(row).for_each(|(s, &g)| *s += g);
    }
}

/// The forward op: inputs `(val, adj, bias)`.
#[derive(Debug, Clone, Copy)]
struct Aggregate(Dims);

impl CustomOp3 for Aggregate {
    fn name(&self) -> &'static str {
        "skelact-graph-aggregate"
    }

    fn cpu_fwd(
        &self,
        sv: &CpuStorage,
        lv: &Layout,
        sa: &CpuStorage,
        la: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (val, adj, bias) = (
            f32_slice(sv, lv, name)?,
            f32_slice(sa, la, name)?,
            f32_slice(sb, lb, name)?,
        );
        let d = self.0;
        d.check(val.len(), adj.len(), bias.len(), name)?;
        let Dims { n, k, o, t, v, u } = d;
        // SAFETY: with K, V > 0 the first subset's product (not
        // accumulating) writes every (T, U) block.
        let mut y = unsafe { output_buffer_or_zeros(n * o * t * u, k > 0 && v > 0) };
        if t * u > 0 {
            y.par_chunks_mut(t * u).enumerate().for_each(|(no, y)| {
                let (s, c) = (no / o, no % o);
                let mut rs = vec![0f32; u];
                for sub in 0..k {
                    let i = (s * k + sub) * o + c; // (n, k, o) index
                    let a = &adj[i * u * v..][..u * v]; // (U, V)
                    if v > 0 {
                        // y += val · adjᵀ, adjᵀ read with swapped strides
                        matmul(
                            MatMut::dense(y, t, u),
                            MatRef::dense(&val[i * t * v..][..t * v], t, v),
                            MatRef::new(a, v, u, 1, v),
                            sub > 0,
                            1,
                        );
                    }
                    // y[t, u] += b · Σᵥ adj[u, v]
                    let b = bias[sub * o + c];
                    if b != 0.0 {
                        row_sums(a, v, &mut rs);
                        for row in y.chunks_exact_mut(u) {
                            row.iter_mut().zip(&rs).for_each(|(y, &r)| *y += b * r);
                        }
                    }
                }
            });
        }
        Ok((CpuStorage::F32(y), Shape::from((n, o, t, u))))
    }

    fn bwd(
        &self,
        val: &Tensor,
        adj: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Dims { n, k, o, t, v, u } = self.0;
        let (nv, na) = (n * k * o * t * v, n * k * o * u * v);
        let bias_values = bias.flatten_all()?.to_vec1::<f32>()?;
        // (N·K·O·T·V + N·K·O·U·V + K·O,): dval, dadj, dbias.
        let packed = val.detach().apply_op3(
            &adj.detach(),
            &grad.contiguous()?,
            AggregateGrad {
                dims: self.0,
                bias: bias_values,
            },
        )?;
        let dval = val
            .track_op()
            .then(|| packed.narrow(0, 0, nv)?.reshape((n, k, o, t, v)))
            .transpose()?;
        let dadj = adj
            .track_op()
            .then(|| packed.narrow(0, nv, na)?.reshape((n, k, o, u, v)))
            .transpose()?;
        let dbias = bias
            .track_op()
            .then(|| packed.narrow(0, nv + na, k * o)?.reshape((k, o)))
            .transpose()?;
        Ok((dval, dadj, dbias))
    }
}

/// Backward of [`Aggregate`]: `(val, adj, dy) → [dval | dadj | dbias]` (a
/// custom op returns one tensor); the bias, `K·O` values, rides along.
#[derive(Debug, Clone)]
struct AggregateGrad {
    dims: Dims,
    bias: Vec<f32>,
}

impl CustomOp3 for AggregateGrad {
    fn name(&self) -> &'static str {
        "skelact-graph-aggregate-backward"
    }

    fn cpu_fwd(
        &self,
        sv: &CpuStorage,
        lv: &Layout,
        sa: &CpuStorage,
        la: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (val, adj, dy) = (
            f32_slice(sv, lv, name)?,
            f32_slice(sa, la, name)?,
            f32_slice(sg, lg, name)?,
        );
        let d = self.dims;
        d.check(val.len(), adj.len(), self.bias.len(), name)?;
        let Dims { n, k, o, t, v, u } = d;
        if dy.len() != n * o * t * u {
            candle_core::bail!("{name}: {} gradient elements for {d:?}", dy.len());
        }
        let (nv, na) = (n * k * o * t * v, n * k * o * u * v);
        // SAFETY: with T, U, V > 0 every (T, V) block of dval and (U, V)
        // block of dadj is written by a non-accumulating product below, and
        // dbias is zeroed here.
        let mut out = unsafe { output_buffer_or_zeros(nv + na + k * o, t * u * v > 0) };
        let (dval, rest) = out.split_at_mut(nv);
        let (dadj, dbias) = rest.split_at_mut(na);
        dbias.fill(0.0);
        let m = n * k * o;
        // Per (n, k, o): Σᵤ (Σₜ dy[t, u]) · Σᵥ adj[u, v], summed over n below.
        let mut contrib = vec![0f32; m];
        if m > 0 && t * u * v > 0 {
            dval.par_chunks_mut(t * v)
                .zip(dadj.par_chunks_mut(u * v))
                .zip(contrib.par_iter_mut())
                .enumerate()
                .for_each(|(i, ((dval, dadj), contrib))| {
                    let (s, sub, c) = (i / (k * o), (i / o) % k, i % o);
                    let g = &dy[(s * o + c) * t * u..][..t * u]; // (T, U)
                    let a = &adj[i * u * v..][..u * v]; // (U, V)
                    let x = &val[i * t * v..][..t * v]; // (T, V)
                    if t > 0 {
                        // dval = dy · adj
                        matmul(
                            MatMut::dense(dval, t, v),
                            MatRef::dense(g, t, u),
                            MatRef::dense(a, u, v),
                            false,
                            1,
                        );
                        // dadj = dyᵀ · val, dyᵀ read with swapped strides
                        matmul(
                            MatMut::dense(dadj, u, v),
                            MatRef::new(g, u, t, 1, u),
                            MatRef::dense(x, t, v),
                            false,
                            1,
                        );
                    }
                    let mut cs = vec![0f32; u];
                    col_sums(g, u, &mut cs);
                    // dadj[u, v] += b · Σₜ dy[t, u]
                    let b = self.bias[sub * o + c];
                    if b != 0.0 {
                        for (row, &s) in dadj.chunks_exact_mut(v).zip(&cs) {
                            row.iter_mut().for_each(|d| *d += b * s);
                        }
                    }
                    *contrib = a
                        .chunks_exact(v)
                        .zip(&cs)
                        .map(|(row, &s)| s * row.iter().sum::<f32>())
                        .sum();
                });
        }
        for (i, c) in contrib.iter().enumerate() {
            dbias[i % (k * o)] += c;
        }
        Ok((CpuStorage::F32(out), Shape::from(nv + na + k * o)))
    }
}

/// `Σₖ (val[:, k] + bias[k]) · adj[:, k]ᵀ` over the joints: `val: (N, K,
/// O, T, V)`, `adj: (N, K, O, U, V)`, `bias: (K, O)` → `(N, O, T, U)`.
pub fn graph_aggregate(val: &Tensor, adj: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (n, k, o, t, v) = val.dims5()?;
    let (n2, k2, o2, u, v2) = adj.dims5()?;
    if (n2, k2, o2, v2) != (n, k, o, v) || bias.dims() != [k, o] {
        candle_core::bail!(
            "graph_aggregate: val {:?}, adj {:?}, bias {:?}",
            val.dims(),
            adj.dims(),
            bias.dims()
        );
    }
    crate::model::flops::add((n * k * o * t * u * v) as u64);
    let bias = bias.to_dtype(val.dtype())?;
    let empty = val.elem_count() == 0 || adj.elem_count() == 0;
    if empty || !val.device().is_cpu() || val.dtype() != DType::F32 {
        // candle's batched matmul takes at most two batch dimensions
        let val = val
            .broadcast_add(&bias.reshape((1, k, o, 1, 1))?)?
            .reshape((n * k, o, t, v))?;
        let adj = adj.to_dtype(val.dtype())?.reshape((n * k, o, u, v))?;
        let y = val.matmul(&adj.transpose(2, 3)?.contiguous()?)?; // (N*K, O, T, U)
        return y.reshape((n, k, o, t, u))?.sum(1);
    }
    val.contiguous()?.apply_op3(
        &adj.to_dtype(DType::F32)?.contiguous()?,
        &bias.contiguous()?,
        Aggregate(Dims { n, k, o, t, v, u }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let s = b.abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap() / s.to_scalar::<f32>().unwrap().max(1e-12)
    }

    /// The same formula in candle ops, one subset at a time.
    fn reference(val: &Tensor, adj: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (_, k, o, _, _) = val.dims5()?;
        let mut y: Option<Tensor> = None;
        for s in 0..k {
            let x = val.narrow(1, s, 1)?.squeeze(1)?; // (N, O, T, V)
            let b = bias.narrow(0, s, 1)?.reshape((1, o, 1, 1))?;
            let a = adj.narrow(1, s, 1)?.squeeze(1)?.contiguous()?; // (N, O, U, V)
            let z = x.broadcast_add(&b)?.matmul(&a.transpose(2, 3)?)?;
            y = Some(match y {
                Some(y) => (y + z)?,
                None => z,
            });
        }
        Ok(y.expect("k > 0"))
    }

    /// Value and all three gradients equal the per-subset candle ops.
    #[test]
    fn matches_per_subset_matmuls() -> Result<()> {
        let dev = Device::Cpu;
        for (n, k, o, t, v, u) in [
            (2, 3, 4, 5, 6, 6),
            (1, 1, 1, 1, 3, 2),
            (3, 3, 8, 16, 25, 25),
        ] {
            let val = Var::randn(0f32, 1.0, (n, k, o, t, v), &dev)?;
            let adj = Var::randn(0f32, 1.0, (n, k, o, u, v), &dev)?;
            let bias = Var::randn(0f32, 1.0, (k, o), &dev)?;
            let got = graph_aggregate(&val, &adj, &bias)?;
            let want = reference(&val, &adj, &bias)?;
            assert!(max_rel(&got, &want) < 1e-5);
            let r = Tensor::randn(0f32, 1.0, (n, o, t, u), &dev)?;
            let g1 = (got * &r)?.sum_all()?.backward()?;
            let g2 = (want * &r)?.sum_all()?.backward()?;
            for x in [&val, &adj, &bias] {
                let e = max_rel(g1.get(x).unwrap(), g2.get(x).unwrap());
                assert!(e < 1e-5, "({n}, {k}, {o}, {t}, {v}, {u}): {e}");
            }
        }
        Ok(())
    }

    /// A hand-computed case: one sample, two subsets, one channel, one
    /// frame, two joints.
    #[test]
    fn hand_computed() -> Result<()> {
        let dev = Device::Cpu;
        // val[k=0] = [1, 2], val[k=1] = [3, 0]; adj[0] = I, adj[1] = [[0, 1], [1, 0]].
        let val =
            Var::from_tensor(&Tensor::new(&[1f32, 2., 3., 0.], &dev)?.reshape((1, 2, 1, 1, 2))?)?;
        let adj = Var::from_tensor(
            &Tensor::new(&[1f32, 0., 0., 1., 0., 1., 1., 0.], &dev)?.reshape((1, 2, 1, 2, 2))?,
        )?;
        let bias = Var::from_tensor(&Tensor::new(&[[10f32], [0.5]], &dev)?)?;
        let y = graph_aggregate(&val, &adj, &bias)?;
        // y[u] = Σᵥ (val0 + 10) I[u, v] + Σᵥ (val1 + 0.5) P[u, v]
        //      = [11 + 0.5, 12 + 3.5] = [11.5, 15.5]
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![11.5, 15.5]);
        let grads = y.sum_all()?.backward()?;
        // dval[k][v] = Σᵤ adj[k][u, v] = [1, 1] for both subsets
        let dval = grads.get(&val).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(dval, vec![1.0, 1.0, 1.0, 1.0]);
        // dadj[k][u, v] = val[k][v] + b[k]
        let dadj = grads.get(&adj).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(dadj, vec![11.0, 12.0, 11.0, 12.0, 3.5, 0.5, 3.5, 0.5]);
        // dbias[k] = Σᵤ Σᵥ adj[k][u, v] = 2
        let db = grads.get(&bias).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(db, vec![2.0, 2.0]);
        Ok(())
    }

    /// Other dtypes take the candle-op path and agree with the CPU op.
    #[test]
    fn other_dtypes_take_the_same_formula() -> Result<()> {
        let dev = Device::Cpu;
        let val = Tensor::randn(0f32, 1.0, (2, 3, 4, 5, 6), &dev)?;
        let adj = Tensor::randn(0f32, 1.0, (2, 3, 4, 6, 6), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, (3, 4), &dev)?;
        let want = graph_aggregate(&val, &adj, &bias)?;
        let f64s = [&val, &adj, &bias].map(|t| t.to_dtype(DType::F64).unwrap());
        let got = graph_aggregate(&f64s[0], &f64s[1], &f64s[2])?;
        assert_eq!(got.dtype(), DType::F64);
        assert!(max_rel(&got.to_dtype(DType::F32)?, &want) < 1e-5);
        Ok(())
    }

    #[test]
    fn refuses_mismatched_shapes() -> Result<()> {
        let dev = Device::Cpu;
        let val = Tensor::zeros((1, 3, 2, 4, 5), DType::F32, &dev)?;
        let adj = Tensor::zeros((1, 3, 2, 5, 4), DType::F32, &dev)?;
        let bias = Tensor::zeros((3, 2), DType::F32, &dev)?;
        assert!(graph_aggregate(&val, &adj, &bias).is_err());
        let adj = Tensor::zeros((1, 3, 2, 5, 5), DType::F32, &dev)?;
        assert!(graph_aggregate(&val, &adj, &Tensor::zeros(6, DType::F32, &dev)?).is_err());
        Ok(())
    }
}
