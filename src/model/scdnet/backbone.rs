//! The layers of SCD-Net's encoder: GCN units, the two transformer
//! branches, and [`ScdBackbone`] that chains them (see the module docs of
//! [`super`]).
//!
//! Attention, softmax and layer norm are written from differentiable ops:
//! candle's fused `softmax_last_dim` and `layer_norm` have no backward pass
//! (CANDLE-NOTES.md), and pretraining back-propagates through all of them.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::{linear, Init, Linear, VarBuilder};

use super::Widths;
use crate::model::layer::batch_norm::BatchNorm;
use crate::model::Trace;
use crate::skeleton::{graph, Layout};
use crate::Result;

/// A linear map followed by a batch norm over its outputs; after
/// [`LinearBn::fold`] the norm lives in the map's weights.
#[derive(Clone)]
struct LinearBn {
    linear: Linear,
    bn: Option<BatchNorm>,
}

impl LinearBn {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder, bn: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear: linear(c_in, c_out, vb)?,
            bn: Some(BatchNorm::new(c_out, bn)?),
        })
    }

    /// `x: (R, C_in)` -> `(R, C_out)`.
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.linear.forward(x)?;
        Ok(match &self.bn {
            Some(bn) => bn.forward_t(&h, train)?,
            None => h,
        })
    }

    /// `W' = diag(scale) W`, `b' = scale * b + shift`, computed in f32 and
    /// stored in the weights' dtype.
    fn fold(&self) -> Result<Self> {
        let Some(bn) = &self.bn else {
            return Ok(self.clone());
        };
        let (scale, shift) = bn.scale_shift()?; // (C_out,) each
        let w = self.linear.weight();
        let dtype = w.dtype();
        let w32 = w.to_dtype(DType::F32)?;
        let folded_w = w32.broadcast_mul(&scale.unsqueeze(1)?)?;
        let b = match self.linear.bias() {
            Some(b) => ((b.to_dtype(DType::F32)? * &scale)? + &shift)?,
            None => shift,
        };
        Ok(Self {
            linear: Linear::new(folded_w.to_dtype(dtype)?, Some(b.to_dtype(dtype)?)),
            bn: None,
        })
    }
}

/// One GCN unit: graph conv, BN, ReLU, temporal conv, BN, ReLU. Weights
/// `spatial`, `bn1`, `temporal`, `bn2`.
#[derive(Clone)]
struct GcnUnit {
    spatial: LinearBn,
    temporal: LinearBn,
    kernel: usize,
}

impl GcnUnit {
    fn new(c_in: usize, c_out: usize, kernel: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            spatial: LinearBn::new(c_in, c_out, vb.pp("spatial"), vb.pp("bn1"))?,
            temporal: LinearBn::new(kernel * c_out, c_out, vb.pp("temporal"), vb.pp("bn2"))?,
            kernel,
        })
    }

    /// `x: (N, T, V, C_in)`, `adj: (V, V)` -> `(N, T, V, C_out)`.
    fn forward(&self, x: &Tensor, adj: &Tensor, train: bool) -> Result<Tensor> {
        // x: (N, T, V, C_in)
        let (n, t, v, c) = x.dims4()?;
        let frames = x.reshape((n * t, v, c))?;
        let agg = adj.broadcast_as((n * t, v, v))?.matmul(&frames)?; // (N*T, V, C_in)
        let h = self
            .spatial
            .forward(&agg.reshape((n * t * v, c))?, train)?
            .relu()?; // (N*T*V, C_out)
        let co = h.dim(1)?;
        let h = h.reshape((n, t, v, co))?;
        let p = self.kernel / 2;
        let padded = h.pad_with_zeros(1, p, p)?; // (N, T + 2p, V, C_out)
        let shifted = (0..self.kernel)
            .map(|i| padded.narrow(1, i, t))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let stacked = Tensor::cat(&shifted, 3)?; // (N, T, V, k*C_out)
        let h = self
            .temporal
            .forward(&stacked.reshape((n * t * v, self.kernel * co))?, train)?
            .relu()?; // (N*T*V, C_out)
        Ok(h.reshape((n, t, v, co))?)
    }

    fn fold(&self) -> Result<Self> {
        Ok(Self {
            spatial: self.spatial.fold()?,
            temporal: self.temporal.fold()?,
            kernel: self.kernel,
        })
    }
}

/// Layer norm over the last dimension from differentiable ops (eps 1e-5).
#[derive(Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: (B, L, d)
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        Ok(y.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

/// A post-norm transformer encoder layer (PyTorch's
/// `nn.TransformerEncoderLayer` defaults, without dropout).
#[derive(Clone)]
struct TransformerLayer {
    qkv: Linear,
    out: Linear,
    norm1: Norm,
    ff1: Linear,
    ff2: Linear,
    norm2: Norm,
    heads: usize,
}

impl TransformerLayer {
    fn new(d: usize, heads: usize, ff: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            qkv: linear(d, 3 * d, vb.pp("qkv"))?,
            out: linear(d, d, vb.pp("out"))?,
            norm1: Norm::new(d, vb.pp("norm1"))?,
            ff1: linear(d, ff, vb.pp("ff1"))?,
            ff2: linear(ff, d, vb.pp("ff2"))?,
            norm2: Norm::new(d, vb.pp("norm2"))?,
            heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: (B, L, d)
        let (b, l, d) = x.dims3()?;
        let (h, dh) = (self.heads, d / self.heads);
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, l, 3, h, dh))?
            .permute((2, 0, 3, 1, 4))?; // (3, B, H, L, dh)
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?; // (B, H, L, L)
        let attn = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let ctx = attn
            .matmul(&v)? // (B, H, L, dh)
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, l, d))?;
        let x = self.norm1.forward(&(x + self.out.forward(&ctx)?)?)?;
        let ff = self.ff2.forward(&self.ff1.forward(&x)?.relu()?)?;
        self.norm2.forward(&(x + ff)?)
    }
}

/// Tokens -> linear embedding + position -> transformer layer -> max.
/// Weights `embed`, `pos`, `layer`.
#[derive(Clone)]
struct Branch {
    embed: Linear,
    pos: Tensor,
    layer: TransformerLayer,
}

impl Branch {
    fn new(tokens: usize, c_in: usize, w: &Widths, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            embed: linear(c_in, w.model_dim, vb.pp("embed"))?,
            pos: vb.get_with_hints(
                (1, tokens, w.model_dim),
                "pos",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            layer: TransformerLayer::new(w.model_dim, w.heads, w.ff_dim, vb.pp("layer"))?,
        })
    }

    /// `tokens: (B, L, C_in)` -> `(B, d)`.
    fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let h = self.embed.forward(tokens)?.broadcast_add(&self.pos)?; // (B, L, d)
        Ok(self.layer.forward(&h)?.max(1)?)
    }
}

/// The two branch features of a batch, each `(N, d)`, and the last GCN
/// unit's feature map.
pub struct Features {
    /// Temporal branch.
    pub temporal: Tensor,
    /// Spatial branch.
    pub spatial: Tensor,
    /// The GCN extractor's output, `(N*M, C, T, V)` (the map GAP pools
    /// body parts from), a strided view.
    pub map: Tensor,
}

impl Features {
    /// The downstream feature: both branches concatenated, `(N, 2d)`.
    pub fn joined(&self) -> Result<Tensor> {
        Ok(Tensor::cat(&[&self.temporal, &self.spatial], 1)?)
    }
}

/// `D^-1/2 (A + I) D^-1/2` of the layout's bones, `(V, V)`, in `dtype`.
fn normalized_adjacency(layout: &Layout, vb: &VarBuilder) -> Result<Tensor> {
    let a = graph::undirected(layout, true);
    let v = a.v;
    let m = a.matrix(0);
    let deg: Vec<f32> = (0..v).map(|i| m[i * v..(i + 1) * v].iter().sum()).collect();
    let norm: Vec<f32> = (0..v * v)
        .map(|k| m[k] / (deg[k / v] * deg[k % v]).sqrt().max(1e-12))
        .collect();
    Ok(Tensor::from_vec(norm, (v, v), vb.device())?.to_dtype(vb.dtype())?)
}

/// GCN extractor and both branches (no head, no projectors). Weights
/// `gcn.{i}.*`, `temporal.*`, `spatial.*` under the builder it is given.
#[derive(Clone)]
pub struct ScdBackbone {
    adj: Tensor,
    units: Vec<GcnUnit>,
    temporal: Branch,
    spatial: Branch,
}

impl ScdBackbone {
    /// The encoder for `frames`-frame windows of `persons` persons on
    /// `layout` with `coords` input channels.
    pub fn new(
        w: &Widths,
        layout: &Layout,
        frames: usize,
        persons: usize,
        coords: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        w.validate()?;
        let v = layout.num_joints();
        let mut units = Vec::new();
        let mut c = coords;
        for (i, &width) in w.gcn_channels.iter().enumerate() {
            units.push(GcnUnit::new(
                c,
                width,
                w.temporal_kernel,
                vb.pp(format!("gcn.{i}")),
            )?);
            c = width;
        }
        Ok(Self {
            adj: normalized_adjacency(layout, &vb)?,
            units,
            temporal: Branch::new(frames, persons * v * c, w, vb.pp("temporal"))?,
            spatial: Branch::new(persons * v, frames * c, w, vb.pp("spatial"))?,
        })
    }

    /// `x: (N, C, T, V, M)` -> the two branch features; records
    /// `gcn.{i}` (each `(N*M, T, V, C')`), `temporal` and `spatial`.
    pub fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Features> {
        // x: (N, C, T, V, M)
        let (n, c, t, v, m) = x.dims5()?;
        let mut h = x
            .permute((0, 4, 2, 3, 1))? // (N, M, T, V, C)
            .contiguous()?
            .reshape((n * m, t, v, c))?;
        for (i, unit) in self.units.iter().enumerate() {
            h = unit.forward(&h, &self.adj, train)?; // (N*M, T, V, C')
            trace.record(|| format!("gcn.{i}"), &h);
        }
        let c = h.dim(3)?;
        let map = h.permute((0, 3, 1, 2))?; // (N*M, C, T, V)
        let h = h.reshape((n, m, t, v, c))?;
        let frames = h
            .permute((0, 2, 1, 3, 4))? // (N, T, M, V, C)
            .contiguous()?
            .reshape((n, t, m * v * c))?;
        let joints = h
            .permute((0, 1, 3, 2, 4))? // (N, M, V, T, C)
            .contiguous()?
            .reshape((n, m * v, t * c))?;
        let temporal = self.temporal.forward(&frames)?; // (N, d)
        trace.record(|| "temporal".into(), &temporal);
        let spatial = self.spatial.forward(&joints)?; // (N, d)
        trace.record(|| "spatial".into(), &spatial);
        Ok(Features {
            temporal,
            spatial,
            map,
        })
    }

    /// [`Self::forward_traced`] without a trace.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Features> {
        self.forward_traced(x, train, &mut Trace::off())
    }

    /// The same encoder with every batch norm folded into the linear map
    /// before it.
    pub fn fold(&self) -> Result<Self> {
        Ok(Self {
            units: self
                .units
                .iter()
                .map(GcnUnit::fold)
                .collect::<Result<_>>()?,
            ..self.clone()
        })
    }
}
