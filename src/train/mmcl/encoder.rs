//! MMCL's training-time image encoder, sized for a 2-core CPU and fed
//! depth instead of colour.
//!
//! The paper's Feature Alignment Module embeds RGB frames with an
//! ImageNet-pretrained Inception-v3 (trained end to end) followed by an MLP
//! `1000 -> 256 -> 256`. skelact's camera gives depth, not colour, and an
//! Inception-v3 step (about 5.7 GMACs per 299 x 299 image) would cost more
//! than the skeleton model itself on this machine, so this encoder is a
//! compact CNN trained from scratch on the clip's depth frames:
//!
//! ```text
//! (N, K, 48, 64)  K paired depth frames stacked as channels
//!   4 x [conv 3x3 stride 2 pad 1 (no bias) -> BatchNorm -> ReLU]
//!       widths 16, 32, 64, 128: 24x32, 12x16, 6x8, 3x4
//!   global average pool            (N, 128)
//!   MLP 128 -> 256 -> ReLU -> 256  (N, 256)   (the paper's FAM MLP shape)
//! ```
//!
//! about 3.4 M multiply-accumulates per sample with K = 6. Stacking the
//! frames as channels lets the first convolution see motion between them
//! (a single RGB frame in the paper has none). Weight names follow the
//! PyTorch module of `tests/fixtures/gen_mmcl.py` (`convs.{i}.conv.weight`,
//! `convs.{i}.bn.*`, `mlp.0.*`, `mlp.2.*`), which checks this forward.
//!
//! Input sizes: candle 0.11's convolution backward derives the transposed
//! convolution's output padding from the height alone and uses it for the
//! width too, so every stage's input must have a height and width of the
//! same parity (48 x 64 halves to 24 x 32, 12 x 16, 6 x 8: all even;
//! 60 x 80 would fail at 15 x 20 with a shape error in `backward`).

use candle_core::Tensor;
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module, VarBuilder};

use crate::model::layer::BatchNorm;
use crate::{Error, Result};

/// Output widths of the four convolution stages.
pub const WIDTHS: [usize; 4] = [16, 32, 64, 128];

/// The embedding size of both modalities in the alignment space.
pub const EMBED_DIM: usize = 256;

/// One stage: strided 3x3 convolution, batch norm, ReLU.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        Ok(Self {
            conv: candle_nn::conv2d_no_bias(c_in, c_out, 3, cfg, vb.pp("conv"))?,
            bn: BatchNorm::new(c_out, vb.pp("bn"))?,
        })
    }

    /// `(N, C_in, H, W) -> (N, C_out, ceil(H/2), ceil(W/2))`
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.bn.forward_t(&self.conv.forward(x)?, train)?.relu()?)
    }
}

/// The depth encoder: `(N, K, H, W)` depth frames to `(N, 256)`.
#[derive(Debug, Clone)]
pub struct DepthEncoder {
    convs: Vec<ConvBn>,
    mlp0: Linear,
    mlp2: Linear,
    frames: usize,
}

impl DepthEncoder {
    /// The MMCL encoder for `frames` stacked depth frames: widths
    /// [`WIDTHS`], embedding [`EMBED_DIM`].
    pub fn new(frames: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_widths(frames, &WIDTHS, EMBED_DIM, vb)
    }

    /// The same structure with other stage widths and embedding size (the
    /// parity test uses a narrow one to keep its fixture small).
    pub fn with_widths(
        frames: usize,
        widths: &[usize],
        embed_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if frames == 0 || widths.is_empty() || embed_dim == 0 {
            return Err(Error::config(
                "depth encoder",
                "needs at least 1 frame, 1 stage and 1 embedding dimension",
            ));
        }
        let mut convs = Vec::with_capacity(widths.len());
        let mut c_in = frames;
        for (i, &c_out) in widths.iter().enumerate() {
            convs.push(ConvBn::new(c_in, c_out, vb.pp(format!("convs.{i}")))?);
            c_in = c_out;
        }
        Ok(Self {
            convs,
            mlp0: candle_nn::linear(c_in, embed_dim, vb.pp("mlp.0"))?,
            mlp2: candle_nn::linear(embed_dim, embed_dim, vb.pp("mlp.2"))?,
            frames,
        })
    }

    /// Stacked frames per sample (K).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// `x: (N, K, H, W)` in `[0, 1]` → `(N, D)` (D = 256 for MMCL). `train` selects batch
    /// statistics in the batch norms.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_n, k, _h, _w) = x.dims4()?;
        if k != self.frames {
            return Err(Error::shape(
                "depth input",
                format!("(N, {}, H, W)", self.frames),
                x.dims(),
            ));
        }
        let mut h = x.clone();
        for stage in &self.convs {
            h = stage.forward_t(&h, train)?; // (N, C, H', W')
        }
        let pooled = h.mean(3)?.mean(2)?; // (N, C_last)
        Ok(self.mlp2.forward(&self.mlp0.forward(&pooled)?.relu()?)?) // (N, D)
    }
}
