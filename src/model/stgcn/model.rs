//! ST-GCN's layers in candle: the graph convolution
//! (`ConvTemporalGraphical`), the block (`st_gcn`) and the network
//! (`Model`) of the authors' code, with its weight names.
//!
//! Inference-time batch-norm folding (see [`StGcn::fold`]) keeps the
//! network's arithmetic: the second batch norm of a block folds into the
//! temporal convolution and the residual's into its 1x1 convolution. The
//! first batch norm follows the joint aggregation `sum_k X_k A_k`, which
//! mixes joints but never channels, so its per-channel scale moves exactly
//! into the rows of the graph convolution's 1x1 convolution (weights and
//! bias), while its shift stays a per-channel bias added after the
//! aggregation (moving it before would multiply it by the column sums of
//! `A`). `data_bn` stays an input affine map: its scale differs per joint,
//! which a convolution shared by all joints cannot express.

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};

use super::Config;
use crate::model::flops;
use crate::model::layer::batch_norm::apply_channel_affine;
use crate::model::layer::{BatchNorm, Pointwise, TemporalConv};
use crate::model::{Encoder, Trace};
use crate::skeleton::{graph, Layout};
use crate::{Error, Result};

/// Largest absolute difference tolerated between a checkpoint's `A` buffer
/// and the adjacency built from the layout (f16 rounding of values ≤ 1).
const ADJACENCY_TOL: f32 = 1e-3;

/// `ConvTemporalGraphical` with a temporal kernel of 1: a 1x1 convolution
/// to `K * C_out` channels (`gcn.conv`), then aggregation over joints with
/// the `(K, V, V)` adjacency.
#[derive(Debug, Clone)]
struct GraphConv {
    conv: Pointwise,
    k: usize,
}

impl GraphConv {
    fn new(c_in: usize, c_out: usize, k: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let conv = Pointwise::new(c_in, k * c_out, 1, vb.pp("conv"))?;
        Ok(Self { conv, k })
    }

    /// `x: (N, C_in, T, V)`, `a: (K, V, W)` -> `(N, C_out, T, W)`:
    /// `y[n, c, t, w] = sum_k sum_v conv(x)[n, k * C_out + c, t, v] a[k, v, w]`
    /// (the reference's `einsum('nkctv,kvw->nctw')`).
    fn forward(&self, x: &Tensor, a: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.conv.forward(x)?; // (N, K*C, T, V)
        let (n, kc, t, v) = y.dims4()?;
        let (k, _, w) = a.dims3()?;
        let c = kc / k;
        let y = y
            .reshape((n, k, c * t, v))?
            .transpose(1, 2)? // (N, C*T, K, V)
            .contiguous()?
            .reshape((n * c * t, k * v))?;
        let a = a.reshape((k * v, w))?.to_dtype(y.dtype())?; // (K*V, W)
        flops::add((n * k * c * t * v * w) as u64);
        y.matmul(&a)?.reshape((n, c, t, w))
    }

    /// The same layer with output channel `c` of every subset multiplied by
    /// `scale[c]` (`scale: (C_out,)`, f32).
    fn scaled(&self, scale: &Tensor) -> candle_core::Result<Self> {
        let w = self.conv.weight(); // (K*C, I, 1, 1)
        let dt = w.dtype();
        let kc = w.dim(0)?;
        let rows = Tensor::cat(&vec![scale; self.k], 0)?; // (K*C,)
        let w = w
            .to_dtype(DType::F32)?
            .broadcast_mul(&rows.reshape((kc, 1, 1, 1))?)?
            .to_dtype(dt)?;
        let b = match self.conv.bias() {
            Some(b) => (b.to_dtype(DType::F32)? * &rows)?.to_dtype(dt)?,
            None => rows.zeros_like()?.to_dtype(dt)?,
        };
        Ok(Self {
            conv: Pointwise::from_tensors(w, Some(b), 1),
            k: self.k,
        })
    }
}

/// What follows the graph convolution: the first `tcn` batch norm, or,
/// once folded, only its shift.
#[derive(Debug, Clone)]
enum GcnNorm {
    /// `tcn.0`.
    Bn(BatchNorm),
    /// The folded batch norm's shift `(C,)`, f32.
    Shift(Tensor),
}

/// A block's shortcut.
#[derive(Debug, Clone)]
enum Residual {
    /// The first block: no shortcut.
    None,
    /// Same width and stride 1: `x`.
    Identity,
    /// `residual.0` (strided 1x1 conv) and `residual.1` (batch norm, `None`
    /// once folded).
    Conv {
        conv: Pointwise,
        bn: Option<BatchNorm>,
    },
}

/// One `st_gcn` unit: graph convolution, then `tcn` = BN, ReLU, `(K_t, 1)`
/// convolution, BN, dropout; plus the residual; then ReLU.
#[derive(Debug, Clone)]
struct Block {
    gcn: GraphConv,
    gcn_norm: GcnNorm,
    /// `tcn.2`
    tcn_conv: TemporalConv,
    /// `tcn.3` (`None` once folded).
    tcn_bn: Option<BatchNorm>,
    residual: Residual,
    /// The spatial partition `(K, V, V)`, f32 (times the edge importance
    /// once folded).
    adjacency: Tensor,
    /// `edge_importance.{i}` `(K, V, V)`, multiplied into the adjacency at
    /// every forward (learnable).
    edge_importance: Option<Tensor>,
    dropout: f32,
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn new(
        c_in: usize,
        spec: super::BlockSpec,
        cfg: &Config,
        first: bool,
        adjacency: &Tensor,
        edge_importance: Option<Tensor>,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let c_out = spec.out_channels;
        let k = cfg.num_subsets();
        let gcn = GraphConv::new(c_in, c_out, k, vb.pp("gcn"))?;
        let tcn = vb.pp("tcn");
        let gcn_norm = GcnNorm::Bn(BatchNorm::new(c_out, tcn.pp("0"))?);
        let tcn_conv = TemporalConv::new(
            c_out,
            c_out,
            cfg.temporal_kernel,
            spec.stride,
            1,
            tcn.pp("2"),
        )?;
        let tcn_bn = Some(BatchNorm::new(c_out, tcn.pp("3"))?);
        let residual = if first {
            Residual::None
        } else if c_in == c_out && spec.stride == 1 {
            Residual::Identity
        } else {
            let res = vb.pp("residual");
            Residual::Conv {
                conv: Pointwise::new(c_in, c_out, spec.stride, res.pp("0"))?,
                bn: Some(BatchNorm::new(c_out, res.pp("1"))?),
            }
        };
        Ok(Self {
            gcn,
            gcn_norm,
            tcn_conv,
            tcn_bn,
            residual,
            adjacency: adjacency.clone(),
            edge_importance,
            // The reference builds the first block without dropout.
            dropout: if first { 0.0 } else { cfg.dropout as f32 },
        })
    }

    /// The adjacency this block aggregates with, `(K, V, V)`.
    fn effective_adjacency(&self) -> candle_core::Result<Tensor> {
        match &self.edge_importance {
            Some(e) => self.adjacency.broadcast_mul(&e.to_dtype(DType::F32)?),
            None => Ok(self.adjacency.clone()),
        }
    }

    /// `x: (N, C_in, T, V) -> (N, C_out, T', V)`; records the graph
    /// convolution's output as `block{idx}.gcn` (unfolded blocks only: a
    /// folded block has no tensor with that meaning).
    fn forward_traced(
        &self,
        x: &Tensor,
        train: bool,
        trace: &mut Trace,
        idx: usize,
    ) -> candle_core::Result<Tensor> {
        let res = match &self.residual {
            Residual::None => None,
            Residual::Identity => Some(x.clone()),
            Residual::Conv { conv, bn } => {
                let r = conv.forward(x)?;
                Some(match bn {
                    Some(bn) => bn.forward_t(&r, train)?,
                    None => r,
                })
            }
        };
        let a = self.effective_adjacency()?;
        let y = self.gcn.forward(x, &a)?; // (N, C_out, T, V)
        let y = match &self.gcn_norm {
            GcnNorm::Bn(bn) => {
                trace.record(|| format!("block{idx}.gcn"), &y);
                bn.forward_t(&y, train)?
            }
            GcnNorm::Shift(shift) => {
                let c = shift.dim(0)?;
                y.broadcast_add(&shift.to_dtype(y.dtype())?.reshape((1, c, 1, 1))?)?
            }
        };
        let y = self.tcn_conv.forward(&y.relu()?)?; // (N, C_out, T', V)
        let y = match &self.tcn_bn {
            Some(bn) => bn.forward_t(&y, train)?,
            None => y,
        };
        let y = if train && self.dropout > 0.0 {
            candle_nn::ops::dropout(&y, self.dropout)?
        } else {
            y
        };
        let y = match res {
            Some(r) => (y + r)?,
            None => y,
        };
        y.relu()
    }

    /// This block with every batch norm folded and the edge importance
    /// multiplied into the adjacency (inference statistics).
    fn fold(&self) -> candle_core::Result<Self> {
        let (gcn, gcn_norm) = match &self.gcn_norm {
            GcnNorm::Bn(bn) => {
                let (scale, shift) = bn.scale_shift()?;
                (self.gcn.scaled(&scale)?, GcnNorm::Shift(shift))
            }
            GcnNorm::Shift(s) => (self.gcn.clone(), GcnNorm::Shift(s.clone())),
        };
        let tcn_conv = match &self.tcn_bn {
            Some(bn) => self.tcn_conv.fold_bn(bn)?,
            None => self.tcn_conv.clone(),
        };
        let residual = match &self.residual {
            Residual::Conv { conv, bn: Some(bn) } => Residual::Conv {
                conv: conv.fold_bn(bn)?,
                bn: None,
            },
            other => other.clone(),
        };
        Ok(Self {
            gcn,
            gcn_norm,
            tcn_conv,
            tcn_bn: None,
            residual,
            adjacency: self.effective_adjacency()?,
            edge_importance: None,
            dropout: self.dropout,
        })
    }
}

/// The input normalization: `data_bn`, or its affine map once folded.
#[derive(Debug, Clone)]
enum InputNorm {
    Bn(BatchNorm),
    /// `(scale, shift)`, each `(V*C,)` f32.
    Affine(Tensor, Tensor),
}

/// ST-GCN (Yan et al., AAAI 2018) as an [`Encoder`]: `(N, C, T, V, M)`
/// skeleton windows in, `(N, num_class)` logits out.
///
/// Trace points of [`Encoder::forward_traced`]: `input_bn` `(N*M, C, T, V)`
/// after `data_bn`; `block{k}.gcn` `(N*M, C_k, T, V)`, the graph
/// convolution's output before the block's `tcn` (unfolded model only);
/// `block{k}` `(N*M, C_k, T_k, V)` for `k = 1..=blocks`; `pooled`
/// `(N, C_last)` after the mean over persons; `logits` `(N, num_class)`.
#[derive(Debug, Clone)]
pub struct StGcn {
    cfg: Config,
    data_bn: InputNorm,
    blocks: Vec<Block>,
    /// `fcn`: 1x1 convolution `C_last -> num_class`.
    fcn: Pointwise,
}

impl StGcn {
    /// Builds the network of `cfg` with weights from `vb` (names as the
    /// reference's `state_dict`). The adjacency is built from the layout
    /// (`graph::stgcn_spatial` centred on the layout's root); when `vb`
    /// holds the reference's `A` buffer, it must equal that adjacency, or
    /// the weights were trained on another graph (`Error::Mismatch`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let layout = Layout::by_name(&cfg.layout)?;
        if layout.num_joints() != cfg.num_point {
            return Err(Error::mismatch(
                "num_point",
                format!(
                    "{} (joints of layout {})",
                    layout.num_joints(),
                    layout.name()
                ),
                cfg.num_point,
            ));
        }
        let adj = graph::stgcn_spatial(layout, layout.root(), cfg.max_hop, 1);
        let (k, v) = (adj.k, adj.v);
        let adjacency = adj.to_tensor(vb.device())?; // (K, V, V) f32
        if vb.contains_tensor("A") {
            check_adjacency(&vb.get((k, v, v), "A")?, &adjacency)?;
        }

        let data_bn = InputNorm::Bn(BatchNorm::new(v * cfg.in_channels, vb.pp("data_bn"))?);
        let mut blocks = Vec::with_capacity(cfg.blocks.len());
        let mut c_in = cfg.in_channels;
        for (i, spec) in cfg.blocks.iter().enumerate() {
            let importance = if cfg.edge_importance_weighting {
                Some(vb.pp("edge_importance").get_with_hints(
                    (k, v, v),
                    &i.to_string(),
                    Init::Const(1.0),
                )?)
            } else {
                None
            };
            let vb_i = vb.pp("st_gcn_networks").pp(i.to_string());
            blocks.push(Block::new(
                c_in,
                *spec,
                cfg,
                i == 0,
                &adjacency,
                importance,
                vb_i,
            )?);
            c_in = spec.out_channels;
        }
        let fcn = Pointwise::new(c_in, cfg.num_class, 1, vb.pp("fcn"))?;
        Ok(Self {
            cfg: cfg.clone(),
            data_bn,
            blocks,
            fcn,
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The same network with every batch norm folded (inference statistics)
    /// and each block's edge importance multiplied into its adjacency. Meant
    /// for inference: in training mode the folded network has no batch norm
    /// left to update.
    pub fn fold(&self) -> Result<Self> {
        let data_bn = match &self.data_bn {
            InputNorm::Bn(bn) => {
                let (scale, shift) = bn.scale_shift()?;
                InputNorm::Affine(scale, shift)
            }
            other => other.clone(),
        };
        let blocks = self
            .blocks
            .iter()
            .map(Block::fold)
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            cfg: self.cfg.clone(),
            data_bn,
            blocks,
            fcn: self.fcn.clone(),
        })
    }

    /// The last block's feature map `(N*M, C_last, T', V)` for `x: (N, C, T,
    /// V, M)` (persons folded into the batch, person-major: row `n * M + m`).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.features_traced(x, train, &mut Trace::off())
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let c = &self.cfg;
        let ok = match x.dims() {
            &[n, ch, t, v, m] => {
                n > 0 && t > 0 && ch == c.in_channels && v == c.num_point && m == c.num_person
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::shape(
                "ST-GCN input",
                format!(
                    "(N, {}, T, {}, {}) with N, T > 0",
                    c.in_channels, c.num_point, c.num_person
                ),
                x.dims(),
            ))
        }
    }

    fn features_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        // x: (N, C, T, V, M)
        self.check_input(x)?;
        let (n, c, t, v, m) = x.dims5()?;
        let x = x
            .permute((0, 4, 3, 1, 2))? // (N, M, V, C, T)
            .contiguous()?
            .reshape((n * m, v * c, t))?;
        let x = match &self.data_bn {
            InputNorm::Bn(bn) => bn.forward_t(&x, train)?,
            InputNorm::Affine(scale, shift) => apply_channel_affine(&x, scale, shift)?,
        };
        let mut x = x
            .reshape((n, m, v, c, t))?
            .permute((0, 1, 3, 4, 2))? // (N, M, C, T, V)
            .contiguous()?
            .reshape((n * m, c, t, v))?;
        trace.record(|| "input_bn".to_string(), &x);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward_traced(&x, train, trace, i + 1)?;
            trace.record(|| format!("block{}", i + 1), &x);
        }
        Ok(x)
    }
}

/// Compares a checkpoint's `A` buffer with the layout's adjacency.
fn check_adjacency(stored: &Tensor, built: &Tensor) -> Result<()> {
    let diff = (stored.to_dtype(DType::F32)? - built)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    if diff > ADJACENCY_TOL {
        return Err(Error::mismatch(
            "A",
            "the layout's spatial-partition adjacency",
            format!("an adjacency differing by up to {diff:.3e}: trained on another graph?"),
        ));
    }
    Ok(())
}

impl StGcn {
    /// The head: average of `f: (N*M, C, T', V)` over time, joints and
    /// persons, then the 1x1 classifier, `-> (N, K)`.
    fn classify(&self, f: &Tensor, trace: &mut Trace) -> Result<Tensor> {
        let (nm, c, t, v) = f.dims4()?;
        let m = self.cfg.num_person;
        let n = nm / m;
        let pooled = f
            .reshape((nm, c, t * v))?
            .mean(2)? // (N*M, C)
            .reshape((n, m, c))?
            .mean(1)?; // (N, C)
        trace.record(|| "pooled".to_string(), &pooled);
        let logits = self
            .fcn
            .forward(&pooled.reshape((n, c, 1, 1))?)?
            .reshape((n, self.cfg.num_class))?;
        trace.record(|| "logits".to_string(), &logits);
        Ok(logits)
    }
}

impl Encoder for StGcn {
    fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        let f = self.features_traced(x, train, trace)?; // (N*M, C, T', V)
        self.classify(&f, trace)
    }

    fn forward_with_features(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let mut trace = Trace::off();
        let f = self.features_traced(x, train, &mut trace)?; // (N*M, C, T', V)
        let logits = self.classify(&f, &mut trace)?;
        Ok((logits, f))
    }

    fn fold_batch_norm(&self) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(self.fold()?))
    }
}
