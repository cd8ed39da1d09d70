//! The CTR-GCN network: input BN over persons x joints x channels, a list of
//! `TCN_GCN_unit` blocks, global average pooling over time, joints and
//! persons, dropout and a linear classifier (`Model` in the reference
//! `model/ctrgcn.py`).
//!
//! Weight names: `data_bn.*`, `l{k}.gcn1.*`, `l{k}.tcn1.*`,
//! `l{k}.residual.{conv,bn}.*` and `fc.*`, as in the reference state dict.

use candle_core::{DType, Tensor};
use candle_nn::{Dropout, Init, VarBuilder};

use super::gcn::UnitGcn;
use super::tcn::{MultiScaleTcn, PointwiseBn};
use super::Config;
use crate::model::layer::{add_relu, relu, BatchNorm};
use crate::model::{flops, Encoder, Trace};
use crate::skeleton::{graph, Layout};
use crate::{Error, Result};

/// The residual of a block.
#[derive(Debug, Clone)]
enum Residual {
    /// The first block: none.
    None,
    /// Same width and stride 1: the input itself.
    Identity,
    /// Otherwise the reference's `unit_tcn` with kernel 1: strided 1x1 conv
    /// + BN (`residual.conv`, `residual.bn`).
    Conv(PointwiseBn),
}

/// `TCN_GCN_unit`: `relu(tcn1(gcn1(x)) + residual(x))`,
/// `(N, I, T, V) -> (N, O, ceil(T / stride), V)`.
#[derive(Debug, Clone)]
struct Block {
    gcn1: UnitGcn,
    tcn1: MultiScaleTcn,
    residual: Residual,
}

impl Block {
    fn new(
        cfg: &Config,
        c_in: usize,
        c_out: usize,
        stride: usize,
        residual: bool,
        a: &Tensor,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let gcn1 = UnitGcn::new(c_in, c_out, cfg.rel_channels(c_in), a, vb.pp("gcn1"))?;
        let tcn1 = MultiScaleTcn::new(
            c_out,
            cfg.temporal_kernel,
            stride,
            &cfg.dilations,
            vb.pp("tcn1"),
        )?;
        let residual = if !residual {
            Residual::None
        } else if c_in == c_out && stride == 1 {
            Residual::Identity
        } else {
            let r = vb.pp("residual");
            Residual::Conv(PointwiseBn::new(
                c_in,
                c_out,
                stride,
                r.pp("conv"),
                r.pp("bn"),
            )?)
        };
        Ok(Self {
            gcn1,
            tcn1,
            residual,
        })
    }

    fn fold(&self) -> candle_core::Result<Self> {
        Ok(Self {
            gcn1: self.gcn1.fold()?,
            tcn1: self.tcn1.fold()?,
            residual: match &self.residual {
                Residual::Conv(r) => Residual::Conv(r.fold()?),
                other => other.clone(),
            },
        })
    }

    /// `x: (N, I, T, V)` -> `(gcn1 output (N, O, T, V), block output
    /// (N, O, T', V))`.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        let g = self.gcn1.forward_t(x, train)?; // (N, O, T, V)
        let y = self.tcn1.forward_t(&g, train)?; // (N, O, T', V)
        let y = match &self.residual {
            Residual::None => relu(&y)?,
            Residual::Identity => add_relu(&y, x)?,
            Residual::Conv(r) => add_relu(&y, &r.forward_t(x, train)?)?,
        };
        Ok((g, y))
    }
}

/// CTR-GCN (Chen et al., ICCV 2021): `(N, C, T, V, M)` skeleton windows to
/// `(N, num_class)` logits.
///
/// Trace names: `input_bn` `(N*M, C, T, V)` after the input BN,
/// `block{k}.gcn` (the spatial unit's output) and `block{k}` (the block's
/// output) for `k = 1..=blocks`, `pooled` `(N, C_last)` after the mean over
/// time, joints and persons, `logits`.
#[derive(Debug, Clone)]
pub struct CtrGcn {
    cfg: Config,
    data_bn: BatchNorm,
    blocks: Vec<Block>,
    dropout: Dropout,
    /// `(K, C_last)`
    fc_weight: Tensor,
    /// `(K,)`
    fc_bias: Tensor,
    folded: bool,
}

impl CtrGcn {
    /// Builds the network; weights under `vb` carry the reference's names
    /// (`data_bn.weight`, `l1.gcn1.PA`, ..., `fc.bias`). With a fresh
    /// `VarMap` the weights are initialised as in the reference (Kaiming
    /// normal fan-out convs, `PA` = the layout's CTR-GCN adjacency, `alpha`
    /// = 0, unit BN gamma = 1e-6, `fc` ~ N(0, 2 / num_class)).
    ///
    /// Fails with [`Error::Mismatch`] when `num_point` differs from the
    /// layout's joint count, [`Error::Config`] on an unusable config, and
    /// with the name of the tensor when a weight is missing or misshapen.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let layout = Layout::by_name(&cfg.layout)?;
        let a = graph::ctrgcn_spatial(layout).to_tensor(vb.device())?; // (3, V, V)
        let (m, v, c) = (cfg.num_person, cfg.num_point, cfg.in_channels);
        let data_bn = BatchNorm::new(m * v * c, vb.pp("data_bn"))?;
        let mut blocks = Vec::with_capacity(cfg.blocks.len());
        let mut c_in = c;
        for (k, spec) in cfg.blocks.iter().enumerate() {
            blocks.push(Block::new(
                cfg,
                c_in,
                spec.out_channels,
                spec.stride,
                k > 0,
                &a,
                vb.pp(format!("l{}", k + 1)),
            )?);
            c_in = spec.out_channels;
        }
        let fc_vb = vb.pp("fc");
        let fc_w = fc_vb.get_with_hints(
            (cfg.num_class, c_in),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: (2.0 / cfg.num_class as f64).sqrt(),
            },
        )?;
        let bound = 1.0 / (c_in as f64).sqrt();
        let fc_b = fc_vb.get_with_hints(
            cfg.num_class,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            data_bn,
            blocks,
            dropout: Dropout::new(cfg.drop_out as f32),
            fc_weight: fc_w,
            fc_bias: fc_b,
            folded: false,
        })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether the batch norms are folded (inference only).
    pub fn is_folded(&self) -> bool {
        self.folded
    }

    /// The same network with every BN that follows a convolution folded
    /// into it, and each spatial unit's BN folded into its value convs and a
    /// bias. The input BN stays an affine map. The result is inference-only.
    pub fn fold(&self) -> Result<Self> {
        let blocks = self
            .blocks
            .iter()
            .map(Block::fold)
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            blocks,
            folded: true,
            ..self.clone()
        })
    }

    /// Checks `x: (N, C, T, V, M)` against the configuration.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        let expected = || {
            format!(
                "(N, {}, T, {}, {}) = (batch, channels, frames, joints, persons)",
                self.cfg.in_channels, self.cfg.num_point, self.cfg.num_person
            )
        };
        let d = x.dims();
        if d.len() != 5
            || d[1] != self.cfg.in_channels
            || d[3] != self.cfg.num_point
            || d[4] != self.cfg.num_person
            || d[0] == 0
            || d[2] == 0
        {
            return Err(Error::shape("CTR-GCN input", expected(), d));
        }
        Ok(())
    }

    /// The input BN: `x: (N, C, T, V, M) -> (N*M, C, T, V)`.
    fn input_bn(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (n, c, t, v, m) = x.dims5()?;
        let x = x.permute((0, 4, 3, 1, 2))?.contiguous()?; // (N, M, V, C, T)
        let x = x.reshape((n, m * v * c, t))?;
        let x = self.data_bn.forward_t(&x, train)?; // (N, M*V*C, T)
        x.reshape((n, m, v, c, t))?
            .permute((0, 1, 3, 4, 2))? // (N, M, C, T, V)
            .contiguous()?
            .reshape((n * m, c, t, v))
    }

    /// Runs the input BN and every block, recording into `trace`:
    /// `x: (N, C, T, V, M) -> (N*M, C_last, T', V)`.
    fn backbone(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        self.check_input(x)?;
        if train && self.folded {
            return Err(Error::config(
                "train",
                "a BN-folded CTR-GCN is inference-only",
            ));
        }
        let mut h = self.input_bn(x, train)?; // (N*M, C, T, V)
        trace.record(|| "input_bn".to_string(), &h);
        for (k, block) in self.blocks.iter().enumerate() {
            let (g, y) = block.forward_t(&h, train)?;
            trace.record(|| format!("block{}.gcn", k + 1), &g);
            trace.record(|| format!("block{}", k + 1), &y);
            h = y;
        }
        Ok(h)
    }

    /// The last block's feature map `(N*M, C_last, T', V)` for
    /// `x: (N, C, T, V, M)` (what GAP pools body parts from).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.backbone(x, train, &mut Trace::off())
    }
}

impl CtrGcn {
    /// The head: global average pooling of `h: (N*M, C, T', V)` over time,
    /// joints and persons, dropout and the classifier, `-> (N, K)`.
    fn classify(&self, h: &Tensor, n: usize, train: bool, trace: &mut Trace) -> Result<Tensor> {
        let (nm, c, t, v) = h.dims4()?;
        let m = nm / n;
        // Averaged in f32: a sum over T*V can overflow f16.
        let pooled = h
            .to_dtype(DType::F32)?
            .reshape((n, m, c, t * v))?
            .mean(3)?
            .mean(1)?
            .to_dtype(h.dtype())?; // (N, C)
        trace.record(|| "pooled".to_string(), &pooled);
        let pooled = self.dropout.forward(&pooled, train)?;
        flops::add((n * c * self.cfg.num_class) as u64);
        let w = self.fc_weight.to_dtype(pooled.dtype())?; // (K, C)
        let b = self.fc_bias.to_dtype(pooled.dtype())?; // (K,)
        let logits = pooled.matmul(&w.t()?)?.broadcast_add(&b)?; // (N, K)
        trace.record(|| "logits".to_string(), &logits);
        Ok(logits)
    }
}

impl Encoder for CtrGcn {
    fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        let h = self.backbone(x, train, trace)?; // (N*M, C, T', V), input checked
        self.classify(&h, x.dims()[0], train, trace)
    }

    fn forward_with_features(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let mut trace = Trace::off();
        let h = self.backbone(x, train, &mut trace)?; // (N*M, C, T', V), input checked
        let logits = self.classify(&h, x.dims()[0], train, &mut trace)?;
        Ok((logits, h))
    }

    fn fold_batch_norm(&self) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(self.fold()?))
    }
}
