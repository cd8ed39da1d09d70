//! The fine-tuned SkeletonMAE network: the per-frame GIN encoder in front
//! of a CTR-GCN stack (see the module docs of [`super`]).

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::{Config, GinEncoder};
use crate::model::{ctrgcn::CtrGcn, Encoder, Trace};
use crate::skeleton::Layout;
use crate::Result;

/// GIN embedding of every frame's joints, then CTR-GCN blocks and head.
pub struct SkeletonMae {
    gin: GinEncoder,
    backbone: Box<dyn Encoder>,
    /// The weights' dtype, which the forward pass computes in.
    dtype: DType,
}

impl SkeletonMae {
    /// Builds the network (weights `gin.*`, `backbone.*`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let layout = Layout::by_name(&cfg.backbone.layout)?;
        Ok(Self {
            gin: GinEncoder::new(&cfg.gin, layout, vb.pp("gin"))?,
            backbone: Box::new(CtrGcn::new(&cfg.backbone, vb.pp("backbone"))?),
            dtype: vb.dtype(),
        })
    }

    /// `x: (N, C, T, V, M)` -> GIN features `(N, D, T, V, M)`, in the
    /// weights' dtype whatever the input's (an f16 directory loaded as
    /// stored reads f32 windows).
    fn embed(&self, x: &Tensor, trace: &mut Trace) -> Result<Tensor> {
        // x: (N, C, T, V, M)
        let (n, c, t, v, m) = x.dims5()?;
        let frames = x
            .to_dtype(self.dtype)?
            .permute((0, 4, 2, 3, 1))? // (N, M, T, V, C)
            .contiguous()?
            .reshape((n * m * t, v, c))?;
        let h = self.gin.forward(&frames)?; // (N*M*T, V, D)
        let d = h.dim(2)?;
        let h = h
            .reshape((n, m, t, v, d))?
            .permute((0, 4, 2, 3, 1))? // (N, D, T, V, M)
            .contiguous()?;
        trace.record(|| "gin".into(), &h);
        Ok(h)
    }
}

impl Encoder for SkeletonMae {
    fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        let h = self.embed(x, trace)?;
        self.backbone.forward_traced(&h, train, trace)
    }

    fn forward_with_features(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let h = self.embed(x, &mut Trace::off())?;
        self.backbone.forward_with_features(&h, train)
    }

    fn fold_batch_norm(&self) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(SkeletonMae {
            gin: self.gin.clone(),
            backbone: self.backbone.fold_batch_norm()?,
            dtype: self.dtype,
        }))
    }
}
