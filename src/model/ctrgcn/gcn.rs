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
//!
//! One rewrite of the computation's shape: the subsets' `conv3` run as one
//! product with their weights stacked, and the aggregation of all subsets,
//! with `conv3`'s bias, is one op ([`graph_aggregate`]) instead of a
//! transposed `matmul`, a bias add and a sum per subset — the same
//! arithmetic, and in training about a tenth of the step less memory
//! traffic.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::tcn::PointwiseBn;
use crate::model::flops;
use crate::model::layer::{
    add_along, add_relu, add_trailing, graph_aggregate, mean_keepdim, weight_matmul, BatchNorm,
    Pointwise,
};

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

    /// This subset's refined adjacency, `alpha * conv4(tanh(q_u - k_v)) +
    /// a`: `xm: (N, I, 1, V)` the input's mean over time, `a: (V, V)` the
    /// learnable adjacency, `alpha: (1,)` -> `(N, O, U, V)`.
    fn adjacency(&self, xm: &Tensor, a: &Tensor, alpha: &Tensor) -> Result<Tensor> {
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
        add_trailing(&adj, a) // (N, O, U, V)
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
        let (n, i, t, v) = x.dims4()?;
        let Some(o) = self.convs.first().map(|c| c.conv3.out_channels()) else {
            candle_core::bail!("unit_gcn without adjacency subsets");
        };
        // Shared by the subsets; averaged in f32: a sum over frames can
        // overflow f16.
        let xm = mean_keepdim(&x.to_dtype(DType::F32)?, 2)?.to_dtype(x.dtype())?; // (N, I, 1, V)
        let adj = self
            .convs
            .iter()
            .enumerate()
            .map(|(s, c)| c.adjacency(&xm, &self.pa.get(s)?, &self.alpha))
            .collect::<Result<Vec<_>>>()?;
        let adj = Tensor::stack(&adj, 1)?; // (N, K, O, U, V)
                                           // Every subset's conv3 in one product: (K*O, I) weights, (K, O) biases.
        let k = self.convs.len();
        let w3 = self
            .convs
            .iter()
            .map(|c| c.conv3.weight().reshape((o, i)))
            .collect::<Result<Vec<_>>>()?;
        let w3 = Tensor::cat(&w3, 0)?; // (K*O, I)
        let b3 = self
            .convs
            .iter()
            .map(|c| match c.conv3.bias() {
                Some(b) => Ok(b.clone()),
                None => Tensor::zeros(o, w3.dtype(), w3.device()),
            })
            .collect::<Result<Vec<_>>>()?;
        let b3 = Tensor::stack(&b3, 0)?; // (K, O)
        flops::add((n * k * o * i * t * v) as u64);
        let val = weight_matmul(&w3, &x.reshape((n, i, t * v))?)?; // (N, K*O, T*V)
        let val = val.reshape((n, k, o, t, v))?;
        // y[n, o, t, u] = sum_k sum_v (val + b)[n, k, o, t, v] * adj[n, k, o, u, v]
        let y = graph_aggregate(&val, &adj, &b3)?; // (N, O, T, U)
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
