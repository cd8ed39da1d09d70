//! SCD-Net's dual-branch encoder (Wu et al., AAAI 2024), with widths
//! configurable so that it trains on a CPU.
//!
//! - **GCN extractor**: three units, each a graph convolution over the
//!   layout's normalised adjacency with self-loops (`D^-1/2 (A + I) D^-1/2`,
//!   then a linear map), BN, ReLU, a temporal convolution (kernel 5, same
//!   padding, written as a linear map over the stacked shifted frames), BN,
//!   ReLU. Paper widths 64, 256, 64.
//! - **Temporal branch**: tokens are frames, each the flattened `M * V * C`
//!   features; a linear map to the model width (paper: 2048), a learnable
//!   position embedding, one transformer encoder layer (8 heads, post-norm,
//!   ReLU feed-forward), max over tokens.
//! - **Spatial branch**: tokens are the joints of each person, each the
//!   flattened `T * C` features; same shape.
//! - **Projectors** to 128-d (two-layer MLPs) for the temporal feature, the
//!   spatial feature and their concatenation (the instance anchor). The
//!   downstream feature (linear evaluation, kNN) is the concatenation of the
//!   two branch features, before the projectors.
//!
//! Attention, softmax and layer norm are written from differentiable ops:
//! candle's fused `softmax_last_dim` and `layer_norm` have no backward pass
//! (CANDLE-NOTES.md).

use candle_core::{Module, ModuleT, Tensor, D};
use candle_nn::{batch_norm, linear, BatchNorm, BatchNormConfig, Init, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::loss::{l2_normalize, Projections};
use crate::skeleton::{graph, Layout};
use crate::{Error, Result};

/// SCD-Net encoder hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Widths of the three GCN units (paper: 64, 256, 64).
    pub gcn_channels: Vec<usize>,
    /// Temporal kernel of the GCN units (5).
    pub temporal_kernel: usize,
    /// Token width of both branches (paper: 2048).
    pub model_dim: usize,
    /// Attention heads (8).
    pub heads: usize,
    /// Feed-forward width of the transformer layer.
    pub ff_dim: usize,
    /// Projection width (128).
    pub proj_dim: usize,
}

impl EncoderConfig {
    /// The paper's widths.
    pub fn published() -> Self {
        Self {
            gcn_channels: vec![64, 256, 64],
            temporal_kernel: 5,
            model_dim: 2048,
            heads: 8,
            ff_dim: 2048,
            proj_dim: 128,
        }
    }

    /// A CPU-sized variant: GCN 32, 64, 32; tokens 128 wide, feed-forward
    /// 256; 8 heads and 128-d projections as published.
    pub fn small() -> Self {
        Self {
            gcn_channels: vec![32, 64, 32],
            temporal_kernel: 5,
            model_dim: 128,
            heads: 8,
            ff_dim: 256,
            proj_dim: 128,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.gcn_channels.is_empty() || self.gcn_channels.contains(&0) {
            return Err(Error::config("gcn_channels", "needs widths of at least 1"));
        }
        if self.temporal_kernel % 2 == 0 {
            return Err(Error::config("temporal_kernel", "must be odd"));
        }
        if self.heads == 0 || self.model_dim % self.heads != 0 {
            return Err(Error::config(
                "heads",
                format!(
                    "{} does not divide model_dim {}",
                    self.heads, self.model_dim
                ),
            ));
        }
        Ok(())
    }
}

/// `x: (B, C)` through a batch norm in train or inference mode.
fn bn(b: &BatchNorm, x: &Tensor, train: bool) -> Result<Tensor> {
    Ok(b.forward_t(x, train)?)
}

/// One GCN unit: graph conv, BN, ReLU, temporal conv, BN, ReLU.
struct GcnUnit {
    spatial: Linear,
    bn1: BatchNorm,
    temporal: Linear,
    bn2: BatchNorm,
    kernel: usize,
}

impl GcnUnit {
    fn new(c_in: usize, c_out: usize, kernel: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            spatial: linear(c_in, c_out, vb.pp("spatial"))?,
            bn1: batch_norm(c_out, BatchNormConfig::default(), vb.pp("bn1"))?,
            temporal: linear(kernel * c_out, c_out, vb.pp("temporal"))?,
            bn2: batch_norm(c_out, BatchNormConfig::default(), vb.pp("bn2"))?,
            kernel,
        })
    }

    /// `x: (N, T, V, C_in)`, `adj: (V, V)` -> `(N, T, V, C_out)`.
    fn forward(&self, x: &Tensor, adj: &Tensor, train: bool) -> Result<Tensor> {
        // x: (N, T, V, C_in)
        let (n, t, v, c) = x.dims4()?;
        let frames = x.reshape((n * t, v, c))?;
        let agg = adj.broadcast_as((n * t, v, v))?.matmul(&frames)?; // (N*T, V, C_in)
        let h = self.spatial.forward(&agg)?; // (N*T, V, C_out)
        let co = h.dim(2)?;
        let h = bn(&self.bn1, &h.reshape((n * t * v, co))?, train)?.relu()?;
        let h = h.reshape((n, t, v, co))?;
        let p = self.kernel / 2;
        let padded = h.pad_with_zeros(1, p, p)?; // (N, T + 2p, V, C_out)
        let shifted = (0..self.kernel)
            .map(|i| padded.narrow(1, i, t))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let stacked = Tensor::cat(&shifted, 3)?.contiguous()?; // (N, T, V, k*C_out)
        let h = self.temporal.forward(&stacked)?; // (N, T, V, C_out)
        let h = bn(&self.bn2, &h.reshape((n * t * v, co))?, train)?.relu()?;
        Ok(h.reshape((n, t, v, co))?)
    }
}

/// Layer norm over the last dimension from differentiable ops.
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
struct Branch {
    embed: Linear,
    pos: Tensor,
    layer: TransformerLayer,
}

impl Branch {
    fn new(tokens: usize, c_in: usize, cfg: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            embed: linear(c_in, cfg.model_dim, vb.pp("embed"))?,
            pos: vb.get_with_hints(
                (1, tokens, cfg.model_dim),
                "pos",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            layer: TransformerLayer::new(cfg.model_dim, cfg.heads, cfg.ff_dim, vb.pp("layer"))?,
        })
    }

    /// `tokens: (B, L, C_in)` -> `(B, d)`.
    fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let h = self.embed.forward(tokens)?.broadcast_add(&self.pos)?; // (B, L, d)
        Ok(self.layer.forward(&h)?.max(1)?)
    }
}

/// Linear, ReLU, linear.
struct Projector {
    fc1: Linear,
    fc2: Linear,
}

impl Projector {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(c_in, c_in, vb.pp("fc1"))?,
            fc2: linear(c_in, c_out, vb.pp("fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward(&self.fc1.forward(x)?.relu()?)?)
    }
}

/// The two branch features of a batch, each `(N, d)`.
pub struct Features {
    /// Temporal branch.
    pub temporal: Tensor,
    /// Spatial branch.
    pub spatial: Tensor,
}

impl Features {
    /// The downstream feature: both branches concatenated, `(N, 2d)`.
    pub fn joined(&self) -> Result<Tensor> {
        Ok(Tensor::cat(&[&self.temporal, &self.spatial], 1)?)
    }
}

/// SCD-Net's encoder with its projectors.
pub struct ScdEncoder {
    adj: Tensor,
    units: Vec<GcnUnit>,
    temporal: Branch,
    spatial: Branch,
    proj_t: Projector,
    proj_s: Projector,
    proj_i: Projector,
}

/// `D^-1/2 (A + I) D^-1/2` of the layout's bones, `(V, V)`.
fn normalized_adjacency(layout: &Layout, vb: &VarBuilder) -> Result<Tensor> {
    let a = graph::undirected(layout, true);
    let v = a.v;
    let m = a.matrix(0);
    let deg: Vec<f32> = (0..v).map(|i| m[i * v..(i + 1) * v].iter().sum()).collect();
    let norm: Vec<f32> = (0..v * v)
        .map(|k| m[k] / (deg[k / v] * deg[k % v]).sqrt().max(1e-12))
        .collect();
    Ok(Tensor::from_vec(norm, (v, v), vb.device())?)
}

impl ScdEncoder {
    /// The encoder for `frames`-frame windows of `persons` persons on
    /// `layout` with `coords` input channels.
    pub fn new(
        cfg: &EncoderConfig,
        layout: &Layout,
        frames: usize,
        persons: usize,
        coords: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()?;
        let v = layout.num_joints();
        let mut units = Vec::new();
        let mut c = coords;
        for (i, &w) in cfg.gcn_channels.iter().enumerate() {
            units.push(GcnUnit::new(
                c,
                w,
                cfg.temporal_kernel,
                vb.pp(format!("gcn.{i}")),
            )?);
            c = w;
        }
        let d = cfg.model_dim;
        Ok(Self {
            adj: normalized_adjacency(layout, &vb)?,
            units,
            temporal: Branch::new(frames, persons * v * c, cfg, vb.pp("temporal"))?,
            spatial: Branch::new(persons * v, frames * c, cfg, vb.pp("spatial"))?,
            proj_t: Projector::new(d, cfg.proj_dim, vb.pp("proj_t"))?,
            proj_s: Projector::new(d, cfg.proj_dim, vb.pp("proj_s"))?,
            proj_i: Projector::new(2 * d, cfg.proj_dim, vb.pp("proj_i"))?,
        })
    }

    /// `x: (N, C, T, V, M)` -> the two branch features.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Features> {
        // x: (N, C, T, V, M)
        let (n, c, t, v, m) = x.dims5()?;
        let mut h = x
            .permute((0, 4, 2, 3, 1))? // (N, M, T, V, C)
            .contiguous()?
            .reshape((n * m, t, v, c))?;
        for unit in &self.units {
            h = unit.forward(&h, &self.adj, train)?; // (N*M, T, V, C')
        }
        let c = h.dim(3)?;
        let h = h.reshape((n, m, t, v, c))?;
        let frames = h
            .permute((0, 2, 1, 3, 4))? // (N, T, M, V, C)
            .contiguous()?
            .reshape((n, t, m * v * c))?;
        let joints = h
            .permute((0, 1, 3, 2, 4))? // (N, M, V, T, C)
            .contiguous()?
            .reshape((n, m * v, t * c))?;
        Ok(Features {
            temporal: self.temporal.forward(&frames)?,
            spatial: self.spatial.forward(&joints)?,
        })
    }

    /// The unit projections of `f`: temporal, spatial, instance.
    pub fn project(&self, f: &Features) -> Result<Projections> {
        Ok(Projections {
            temporal: l2_normalize(&self.proj_t.forward(&f.temporal)?)?,
            spatial: l2_normalize(&self.proj_s.forward(&f.spatial)?)?,
            instance: l2_normalize(&self.proj_i.forward(&f.joined()?)?)?,
        })
    }
}
