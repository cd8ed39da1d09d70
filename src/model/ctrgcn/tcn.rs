//! CTR-GCN's temporal side: convolution + BN pairs and the multi-scale
//! temporal convolution (`MultiScale_TemporalConv` in the reference
//! `model/ctrgcn.py`, itself from MS-G3D).
//!
//! The multi-scale unit splits its width into `dilations.len() + 2` equal
//! branches: one per dilation (1x1 conv, BN, ReLU, `(k, 1)` dilated conv,
//! BN), one max-pool branch (1x1 conv, BN, ReLU, 3x1 max-pool, BN) and one
//! strided 1x1 branch (conv, BN), concatenated along channels. CTR-GCN
//! builds it with `residual=False`; the block adds its own residual.
//!
//! Every BN that directly follows a convolution folds into it
//! ([`PointwiseBn::fold`], [`TemporalConvBn::fold`]); the BN after the
//! max-pool stays an affine map (a max does not commute with a negative
//! scale).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::model::layer::{max_pool3_time, relu, BatchNorm, Pointwise, TemporalConv};

/// A 1x1 convolution (optionally strided in time) followed by BN, or the
/// two folded into one convolution.
#[derive(Debug, Clone)]
pub(super) struct PointwiseBn {
    conv: Pointwise,
    /// `None` once folded into `conv`.
    bn: Option<BatchNorm>,
    stride: usize,
}

impl PointwiseBn {
    /// `conv` and `bn` are the two layers' weight prefixes (`down.0` and
    /// `down.1`, or `residual.conv` and `residual.bn`, ...).
    pub(super) fn new(
        i: usize,
        o: usize,
        stride: usize,
        conv: VarBuilder,
        bn: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv: Pointwise::new(i, o, stride, conv)?,
            bn: Some(BatchNorm::new(o, bn)?),
            stride,
        })
    }

    /// The BN folded into the convolution (inference only).
    pub(super) fn fold(&self) -> Result<Self> {
        match &self.bn {
            Some(bn) => Ok(Self {
                conv: self.conv.fold_bn(bn)?,
                bn: None,
                stride: self.stride,
            }),
            None => Ok(self.clone()),
        }
    }

    /// Folds `+ shift` (a `(O,)` vector added to this layer's output) into
    /// the bias; only valid once the BN is folded.
    pub(super) fn add_to_bias(&self, shift: &Tensor) -> Result<Self> {
        if self.bn.is_some() {
            candle_core::bail!("PointwiseBn::add_to_bias needs a folded layer");
        }
        let w = self.conv.weight();
        let bias = match self.conv.bias() {
            Some(b) => (b + shift.to_dtype(b.dtype())?)?,
            None => shift.to_dtype(w.dtype())?,
        };
        Ok(Self {
            conv: Pointwise::from_tensors(w.clone(), Some(bias), self.stride),
            bn: None,
            stride: self.stride,
        })
    }

    /// `x: (N, I, T, V) -> (N, O, ceil(T / stride), V)`.
    pub(super) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        match &self.bn {
            Some(bn) => bn.forward_t(&y, train),
            None => Ok(y),
        }
    }
}

/// A `(k, 1)` temporal convolution (stride, dilation, same padding)
/// followed by BN; the reference's `TemporalConv` (names `conv`, `bn`).
#[derive(Debug, Clone)]
pub(super) struct TemporalConvBn {
    conv: TemporalConv,
    bn: Option<BatchNorm>,
}

impl TemporalConvBn {
    pub(super) fn new(
        c: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv: TemporalConv::new(c, c, k, stride, dilation, vb.pp("conv"))?,
            bn: Some(BatchNorm::new(c, vb.pp("bn"))?),
        })
    }

    pub(super) fn fold(&self) -> Result<Self> {
        match &self.bn {
            Some(bn) => Ok(Self {
                conv: self.conv.fold_bn(bn)?,
                bn: None,
            }),
            None => Ok(self.clone()),
        }
    }

    /// `x: (N, C, T, V) -> (N, C, T', V)`.
    pub(super) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        match &self.bn {
            Some(bn) => bn.forward_t(&y, train),
            None => Ok(y),
        }
    }
}

/// One dilated branch: 1x1 conv + BN + ReLU, then `(k, 1)` conv + BN
/// (`branches.i.0`, `.1`, `.3.conv`, `.3.bn`).
#[derive(Debug, Clone)]
struct DilatedBranch {
    reduce: PointwiseBn,
    temporal: TemporalConvBn,
}

/// The max-pool branch: 1x1 conv + BN + ReLU, 3x1 max-pool, BN
/// (`branches.i.0`, `.1`, `.4`).
#[derive(Debug, Clone)]
struct PoolBranch {
    reduce: PointwiseBn,
    bn: BatchNorm,
    stride: usize,
}

/// `MultiScale_TemporalConv` with `residual=False`: `(N, C, T, V) ->
/// (N, C, ceil(T / stride), V)`.
#[derive(Debug, Clone)]
pub(super) struct MultiScaleTcn {
    dilated: Vec<DilatedBranch>,
    pool: PoolBranch,
    /// The strided 1x1 branch (`branches.{last}.0`, `.1`).
    pointwise: PointwiseBn,
}

impl MultiScaleTcn {
    /// `c` channels in and out, `kernel` for the dilated branches; weights
    /// under `vb` (`tcn1`).
    pub(super) fn new(
        c: usize,
        kernel: usize,
        stride: usize,
        dilations: &[usize],
        vb: VarBuilder,
    ) -> Result<Self> {
        let nb = dilations.len() + 2;
        if c % nb != 0 {
            candle_core::bail!("MultiScaleTcn: {c} channels do not split into {nb} branches");
        }
        let bc = c / nb;
        let br = vb.pp("branches");
        let mut dilated = Vec::with_capacity(dilations.len());
        for (i, &d) in dilations.iter().enumerate() {
            let b = br.pp(i);
            dilated.push(DilatedBranch {
                reduce: PointwiseBn::new(c, bc, 1, b.pp("0"), b.pp("1"))?,
                temporal: TemporalConvBn::new(bc, kernel, stride, d, b.pp("3"))?,
            });
        }
        let b = br.pp(dilations.len());
        let pool = PoolBranch {
            reduce: PointwiseBn::new(c, bc, 1, b.pp("0"), b.pp("1"))?,
            bn: BatchNorm::new(bc, b.pp("4"))?,
            stride,
        };
        let b = br.pp(dilations.len() + 1);
        let pointwise = PointwiseBn::new(c, bc, stride, b.pp("0"), b.pp("1"))?;
        Ok(Self {
            dilated,
            pool,
            pointwise,
        })
    }

    /// Every BN that follows a convolution folded into it.
    pub(super) fn fold(&self) -> Result<Self> {
        let dilated = self
            .dilated
            .iter()
            .map(|b| {
                Ok(DilatedBranch {
                    reduce: b.reduce.fold()?,
                    temporal: b.temporal.fold()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dilated,
            pool: PoolBranch {
                reduce: self.pool.reduce.fold()?,
                bn: self.pool.bn.clone(),
                stride: self.pool.stride,
            },
            pointwise: self.pointwise.fold()?,
        })
    }

    /// `x: (N, C, T, V) -> (N, C, T', V)`.
    pub(super) fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut outs = Vec::with_capacity(self.dilated.len() + 2);
        for b in &self.dilated {
            let h = relu(&b.reduce.forward_t(x, train)?)?; // (N, C/B, T, V)
            outs.push(b.temporal.forward_t(&h, train)?); // (N, C/B, T', V)
        }
        let h = relu(&self.pool.reduce.forward_t(x, train)?)?;
        let h = max_pool3_time(&h, self.pool.stride)?; // (N, C/B, T', V)
        outs.push(self.pool.bn.forward_t(&h, train)?);
        outs.push(self.pointwise.forward_t(x, train)?);
        Tensor::cat(&outs, 1) // (N, C, T', V)
    }
}
