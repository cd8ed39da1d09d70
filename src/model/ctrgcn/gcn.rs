//! CTR-GCN's spatial unit: channel-wise topology refinement (`CTRGC`) and
//! the graph convolution that sums it over adjacency subsets (`unit_gcn`),
//! following `model/ctrgcn.py` of the reference code.
//!
//! For each subset `i`, `CTRGC` computes a per-sample, per-channel
//! adjacency `alpha * conv4(tanh(q_u - k_v)) + PA[i]`, where `q`, `k` are
//! two 1x1 convs of the input averaged over time, and aggregates the joints
//! of `conv3(x)` with it. `unit_gcn` sums the subsets, applies BN, adds its
//! residual (`down`: identity, or 1x1 conv + BN when the width changes) and
//! a ReLU.
//!
//! Two exact rewrites against the reference: the time average is taken
//! before `conv1`/`conv2` rather than after (both are linear, 1x1), which
//! saves their work on every frame; and, when folding, the unit BN's scale
//! moves into each subset's `conv3` (the aggregation is linear per channel)
//! while its shift stays after the sum (the aggregation mixes joints, so a
//! shift cannot pass through it) — or merges into the `down` conv's bias.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::tcn::PointwiseBn;
use crate::model::flops;
use crate::model::layer::{add_along, add_relu, add_trailing, mean_keepdim, BatchNorm, Pointwise};

/// One subset's topology refinement and aggregation (`convs.{i}`).
#[derive(Debug, Clone)]
struct Ctrgc {
    conv1: Pointwise,
    conv2: Pointwise,
    conv3: Pointwise,
    conv4: Pointwise,
}

impl Ctrgc {
    fn new(c_in: usize, c_out: usize, rel: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: Pointwise::new(c_in, rel, 1, vb.pp("conv1"))?,
            conv2: Pointwise::new(c_in, rel, 1, vb.pp("conv2"))?,
            conv3: Pointwise::new(c_in, c_out, 1, vb.pp("conv3"))?,
            conv4: Pointwise::new(rel, c_out, 1, vb.pp("conv4"))?,
        })
    }

    /// The same refinement with `conv3`'s output scaled per channel by
    /// `scale: (C_out,)` (a following BN's scale).
    fn scale_values(&self, scale: &Tensor) -> Result<Self> {
        let w = self.conv3.weight();
        let dt = w.dtype();
        let o = w.dim(0)?;
        let w = w
            .to_dtype(DType::F32)?
            .broadcast_mul(&scale.reshape((o, 1, 1, 1))?)?
            .to_dtype(dt)?;
        let b = match self.conv3.bias() {
            Some(b) => Some((b.to_dtype(DType::F32)? * scale)?.to_dtype(dt)?),
            None => None,
        };
        Ok(Self {
            conv3: Pointwise::from_tensors(w, b, 1),
            ..self.clone()
        })
    }

    /// `x: (N, I, T, V)`, `xm: (N, I, 1, V)` its mean over time, `a: (V,
    /// V)` this subset's learnable adjacency, `alpha: (1,)` -> `(N, O, T,
    /// V)`.
    fn forward(&self, x: &Tensor, xm: &Tensor, a: &Tensor, alpha: &Tensor) -> Result<Tensor> {
        let q = self.conv1.forward(xm)?.squeeze(2)?; // (N, R, V)
        let k = self.conv2.forward(xm)?.squeeze(2)?; // (N, R, V)
        let rel = q.unsqueeze(3)?.broadcast_sub(&k.unsqueeze(2)?)?; // (N, R, U, V)
        let rel = rel.tanh()?;
        // alpha * conv4(rel), with alpha applied to conv4's (O, R) weight and
        // bias rather than to the (N, O, U, V) output.
        let w4 = self.conv4.weight();
        let alpha = alpha.to_dtype(w4.dtype())?;
        let b4 = match self.conv4.bias() {
            Some(b) => Some(b.broadcast_mul(&alpha)?),
            None => None,
        };
        let conv4 = Pointwise::from_tensors(w4.broadcast_mul(&alpha)?, b4, 1);
        let adj = conv4.forward(&rel)?; // (N, O, U, V)
        let adj = add_trailing(&adj, a)?; // (N, O, U, V)
        let val = self.conv3.forward(x)?; // (N, O, T, V)
        let (n, o, t, v) = val.dims4()?;
        // y[n, o, t, u] = sum_v val[n, o, t, v] * adj[n, o, u, v]
        flops::add((n * o * t * v * v) as u64);
        val.matmul(&adj.transpose(2, 3)?) // (N, O, T, U)
    }
}

/// The residual of a `unit_gcn`.
#[derive(Debug, Clone)]
enum Down {
    /// Same width: the input itself.
    Identity,
    /// Width changes: 1x1 conv + BN (`down.0`, `down.1`).
    Conv(PointwiseBn),
}

/// `unit_gcn` in adaptive mode: `(N, I, T, V) -> (N, O, T, V)`.
#[derive(Debug, Clone)]
pub(super) struct UnitGcn {
    convs: Vec<Ctrgc>,
    /// `(K, V, V)`, the learnable adjacency `PA` (the reference uses it in
    /// place of the fixed graph, which only initialises it).
    pa: Tensor,
    /// `(1,)`, shared by the subsets, initialised to 0.
    alpha: Tensor,
    /// `None` once folded.
    bn: Option<BatchNorm>,
    /// `(O,)`, the folded BN's shift when it could not merge into `down`.
    shift: Option<Tensor>,
    down: Down,
}

impl UnitGcn {
    /// `a: (K, V, V)` is the layout's adjacency stack; it initialises `PA`
    /// when `vb` creates weights (a fresh `VarMap`); loaded weights keep
    /// their own `PA`.
    pub(super) fn new(
        c_in: usize,
        c_out: usize,
        rel: usize,
        a: &Tensor,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (k, v, _) = a.dims3()?;
        let convs = (0..k)
            .map(|i| Ctrgc::new(c_in, c_out, rel, vb.pp("convs").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let fresh = !vb.contains_tensor("PA");
        let pa = vb.get_with_hints((k, v, v), "PA", Init::Const(0.0))?;
        if fresh {
            // The backend just created PA (as zeros): write the graph into
            // that variable's storage.
            pa.slice_set(&a.to_dtype(pa.dtype())?.contiguous()?, 0, 0)?;
        }
        let alpha = vb.get_with_hints(1, "alpha", Init::Const(0.0))?;
        let bn = BatchNorm::with_gamma(c_out, 1e-6, vb.pp("bn"))?;
        let down = if c_in == c_out {
            Down::Identity
        } else {
            Down::Conv(PointwiseBn::new(
                c_in,
                c_out,
                1,
                vb.pp("down").pp("0"),
                vb.pp("down").pp("1"),
            )?)
        };
        Ok(Self {
            convs,
            pa,
            alpha,
            bn: Some(bn),
            shift: None,
            down,
        })
    }

    /// The unit BN's scale folded into every `conv3`, its shift into the
    /// `down` conv's bias (or kept as a bias after the sum), and `down`'s
    /// own BN into its conv.
    pub(super) fn fold(&self) -> Result<Self> {
        let Some(bn) = &self.bn else {
            return Ok(self.clone());
        };
        let (scale, shift) = bn.scale_shift()?; // (O,), (O,) f32
        let convs = self
            .convs
            .iter()
            .map(|c| c.scale_values(&scale))
            .collect::<Result<Vec<_>>>()?;
        let (down, shift) = match &self.down {
            Down::Identity => (Down::Identity, Some(shift)),
            Down::Conv(d) => (Down::Conv(d.fold()?.add_to_bias(&shift)?), None),
        };
        Ok(Self {
            convs,
            pa: self.pa.clone(),
            alpha: self.alpha.clone(),
            bn: None,
            shift,
            down,
        })
    }

    /// `x: (N, I, T, V) -> (N, O, T, V)`.
    pub(super) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_n, _i, _t, _v) = x.dims4()?;
        // Shared by the subsets; averaged in f32: a sum over frames can
        // overflow f16.
        let xm = mean_keepdim(&x.to_dtype(DType::F32)?, 2)?.to_dtype(x.dtype())?; // (N, I, 1, V)
        let mut y: Option<Tensor> = None;
        for (i, conv) in self.convs.iter().enumerate() {
            let z = conv.forward(x, &xm, &self.pa.get(i)?, &self.alpha)?; // (N, O, T, V)
            y = Some(match y {
                Some(y) => (y + z)?,
                None => z,
            });
        }
        let Some(y) = y else {
            candle_core::bail!("unit_gcn without adjacency subsets");
        };
        let y = match (&self.bn, &self.shift) {
            (Some(bn), _) => bn.forward_t(&y, train)?,
            (None, Some(s)) => add_along(&y, s, 1)?,
            (None, None) => y,
        };
        let res = match &self.down {
            Down::Identity => x.clone(),
            Down::Conv(d) => d.forward_t(x, train)?,
        };
        add_relu(&y, &res)
    }
}
