//! The SCD-Net classifier: [`ScdBackbone`] and a linear head on the joined
//! branch features (see the module docs of [`super`]).

use candle_core::{Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

use super::{Config, ScdBackbone};
use crate::model::{Encoder, Trace};
use crate::skeleton::Layout;
use crate::{Error, Result};

/// SCD-Net's encoder with a classifier. Weights `gcn.*`, `temporal.*`,
/// `spatial.*` (as `skelact pretrain scd` saves them) and `fc.*`.
#[derive(Clone)]
pub struct ScdNet {
    cfg: Config,
    backbone: ScdBackbone,
    fc: Linear,
}

impl ScdNet {
    /// Builds the network.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let layout = Layout::by_name(&cfg.layout)?;
        let backbone = ScdBackbone::new(
            &cfg.widths,
            layout,
            cfg.frames,
            cfg.num_person,
            cfg.in_channels,
            vb.clone(),
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            backbone,
            fc: linear(2 * cfg.widths.model_dim, cfg.num_class, vb.pp("fc"))?,
        })
    }

    /// Checks `x: (N, C, T, V, M)` against the configuration; `T` is fixed
    /// by the learnt positions.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        let c = &self.cfg;
        let d = x.dims();
        if d.len() != 5
            || d[0] == 0
            || d[1] != c.in_channels
            || d[2] != c.frames
            || d[3] != c.num_point
            || d[4] != c.num_person
        {
            return Err(Error::shape(
                "SCD-Net input",
                format!(
                    "(N, {}, {}, {}, {}) = (batch, channels, frames, joints, persons)",
                    c.in_channels, c.frames, c.num_point, c.num_person
                ),
                d,
            ));
        }
        Ok(())
    }

    /// Multiply-accumulates of one forward pass over `n` windows: the GCN
    /// units' aggregation and linear maps, both branches' embedding,
    /// attention and feed-forward products, and the head.
    pub fn macs(&self, n: usize) -> u64 {
        let c = &self.cfg;
        let w = &c.widths;
        let (m, t, v, d) = (c.num_person, c.frames, c.num_point, w.model_dim);
        let frames = n * m * t;
        let mut total = 0;
        let mut c_in = c.in_channels;
        for &c_out in &w.gcn_channels {
            total += frames * v * v * c_in // adjacency
                + frames * v * c_in * c_out // spatial map
                + frames * v * w.temporal_kernel * c_out * c_out; // temporal map
            c_in = c_out;
        }
        let branch = |tokens: usize, token_in: usize| {
            n * tokens * (token_in * d + 3 * d * d + d * d + 2 * d * w.ff_dim)
                + 2 * n * tokens * tokens * d // scores and context
        };
        total += branch(t, m * v * c_in) + branch(m * v, t * c_in);
        (total + n * 2 * d * c.num_class) as u64
    }

    /// Computes in the weights' dtype whatever the input's (an f16
    /// directory loaded as stored reads f32 windows).
    fn run(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<(Tensor, Tensor)> {
        self.check_input(x)?;
        crate::model::flops::add(self.macs(x.dim(0)?));
        let x = x.to_dtype(self.fc.weight().dtype())?;
        let f = self.backbone.forward_traced(&x, train, trace)?;
        let logits = self.fc.forward(&f.joined()?)?; // (N, K)
        trace.record(|| "logits".into(), &logits);
        Ok((logits, f.map))
    }
}

impl Encoder for ScdNet {
    fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        Ok(self.run(x, train, trace)?.0)
    }

    /// The logits and the GCN extractor's map `(N*M, C, T, V)`.
    fn forward_with_features(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (logits, map) = self.run(x, train, &mut Trace::off())?;
        Ok((logits, map.contiguous()?))
    }

    fn fold_batch_norm(&self) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(Self {
            backbone: self.backbone.fold()?,
            ..self.clone()
        }))
    }
}
