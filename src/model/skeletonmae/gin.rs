//! GIN layers over one frame's skeleton graph (Xu et al., "How Powerful are
//! Graph Neural Networks?", ICLR 2019), as SkeletonMAE uses them: nodes are
//! joints, edges the layout's bones (no self-loops; the `(1 + eps) h` term
//! keeps each node's own feature), eps fixed at 0 as in PyTorch Geometric's
//! `GINConv` default, and a two-layer MLP with a PReLU between.
//!
//! Frames are independent graphs, so a batch is `(B, V, D)` with `B` the
//! number of frames; aggregation is one batched matmul with the dense
//! adjacency `(V, V)`.

use candle_core::{Module, Tensor};
use candle_nn::{linear, prelu, Linear, PReLU, VarBuilder};

use super::GinConfig;
use crate::skeleton::{graph, Layout};
use crate::Result;

/// The layout's bone adjacency `(V, V)` (symmetric, zero diagonal).
pub fn bone_adjacency(layout: &Layout, vb: &VarBuilder) -> Result<Tensor> {
    let a = graph::undirected(layout, false);
    Ok(Tensor::from_slice(a.matrix(0), (a.v, a.v), vb.device())?.to_dtype(vb.dtype())?)
}

/// One GIN layer: `h' = lin2(PReLU(lin1((1 + eps) h + A h)))`.
#[derive(Debug, Clone)]
pub struct GinLayer {
    lin1: Linear,
    act: PReLU,
    lin2: Linear,
    eps: f64,
}

impl GinLayer {
    /// A layer from `c_in` to `c_out` channels, hidden width `c_out`
    /// (weights `lin1.*`, `act.weight`, `lin2.*`).
    pub fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            lin1: linear(c_in, c_out, vb.pp("lin1"))?,
            act: prelu(Some(c_out), vb.pp("act"))?,
            lin2: linear(c_out, c_out, vb.pp("lin2"))?,
            eps: 0.0,
        })
    }

    /// `h: (B, V, C_in)`, `adj: (V, V)` -> `(B, V, C_out)`.
    pub fn forward(&self, h: &Tensor, adj: &Tensor) -> Result<Tensor> {
        // h: (B, V, C_in)
        let (b, v, _) = h.dims3()?;
        let neighbours = adj.broadcast_as((b, v, v))?.matmul(h)?; // (B, V, C_in)
        let agg = ((h * (1.0 + self.eps))? + neighbours)?;
        let x = self.lin1.forward(&agg)?; // (B, V, C_out)
                                          // PReLU's weight is per channel on dim 1: apply it on (B*V, C_out).
        let co = x.dim(2)?;
        let x = self
            .act
            .forward(&x.reshape((b * v, co))?)?
            .reshape((b, v, co))?;
        Ok(self.lin2.forward(&x)?)
    }
}

/// Layer norm over the last dimension, from differentiable ops (candle's
/// fused `layer_norm` has no backward pass).
#[derive(Debug, Clone)]
pub struct NodeNorm {
    weight: Tensor,
    bias: Tensor,
}

impl NodeNorm {
    /// Weights `weight` (ones) and `bias` (zeros) of width `d`.
    pub fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    /// `x: (..., d)` normalised per node (eps 1e-5, as `nn.LayerNorm`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(candle_core::D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
        let y = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        Ok(y.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

/// SkeletonMAE's encoder: a linear embedding of the coordinates, then GIN
/// layers each followed by a layer norm and a PReLU, as GraphMAE's GIN
/// applies a norm and the activation after every layer (weights `embed.*`,
/// `layers.{i}.*`, `norms.{i}.*`, `acts.{i}.weight`). Without the norm the
/// sums over neighbours grow layer by layer: features reached 1e4 and their
/// batch-norm variance overflowed f16 in an exported model.
#[derive(Debug, Clone)]
pub struct GinEncoder {
    embed: Linear,
    layers: Vec<GinLayer>,
    norms: Vec<NodeNorm>,
    acts: Vec<PReLU>,
    adj: Tensor,
}

impl GinEncoder {
    /// The encoder of `cfg` over `layout`'s bones.
    pub fn new(cfg: &GinConfig, layout: &Layout, vb: VarBuilder) -> Result<Self> {
        let adj = bone_adjacency(layout, &vb)?;
        let embed = linear(cfg.in_channels, cfg.hidden, vb.pp("embed"))?;
        let mut layers = Vec::with_capacity(cfg.layers);
        let mut acts = Vec::with_capacity(cfg.layers);
        let mut norms = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            norms.push(NodeNorm::new(cfg.hidden, vb.pp(format!("norms.{i}")))?);
            layers.push(GinLayer::new(
                cfg.hidden,
                cfg.hidden,
                vb.pp(format!("layers.{i}")),
            )?);
            acts.push(prelu(Some(cfg.hidden), vb.pp(format!("acts.{i}")))?);
        }
        Ok(Self {
            embed,
            layers,
            norms,
            acts,
            adj,
        })
    }

    /// The bone adjacency `(V, V)` the layers aggregate over.
    pub fn adjacency(&self) -> &Tensor {
        &self.adj
    }

    /// `x: (B, V, C_in)` coordinates of `B` frames -> `(B, V, hidden)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // x: (B, V, C_in)
        let (b, v, _c) = x.dims3()?;
        let mut h = self.embed.forward(x)?; // (B, V, D)
        for ((layer, norm), act) in self.layers.iter().zip(&self.norms).zip(&self.acts) {
            h = norm.forward(&layer.forward(&h, &self.adj)?)?;
            let d = h.dim(2)?;
            h = act.forward(&h.reshape((b * v, d))?)?.reshape((b, v, d))?;
        }
        Ok(h)
    }
}
