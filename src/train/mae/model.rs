//! The masked graph autoencoder SkeletonMAE pretrains: the GIN encoder that
//! fine-tuning keeps ([`crate::model::skeletonmae::GinEncoder`], weights
//! `gin.*`), a learnable mask token in coordinate space, and — training
//! only — a linear encoder-to-decoder map and a one-layer GIN decoder back
//! to coordinates.
//!
//! As in GraphMAE, which SkeletonMAE builds on: masked joints' inputs are
//! replaced by the token before encoding, and their encoded features are
//! zeroed again before decoding, so the decoder must rebuild them from
//! their neighbours.

use candle_core::{Module, Tensor};
use candle_nn::{linear_no_bias, Init, Linear, VarBuilder};

use crate::model::skeletonmae::{GinConfig, GinEncoder, GinLayer};
use crate::skeleton::Layout;
use crate::Result;

/// Encoder, mask token, encoder-to-decoder map and decoder.
pub struct MaskedAutoencoder {
    /// The encoder fine-tuning keeps.
    pub encoder: GinEncoder,
    mask_token: Tensor,
    enc_to_dec: Linear,
    decoder: GinLayer,
}

impl MaskedAutoencoder {
    /// Weights `gin.*`, `mask_token`, `enc_to_dec.weight`, `decoder.*`.
    pub fn new(cfg: &GinConfig, layout: &Layout, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            encoder: GinEncoder::new(cfg, layout, vb.pp("gin"))?,
            mask_token: vb.get_with_hints(
                (1, 1, cfg.in_channels),
                "mask_token",
                Init::Const(0.0),
            )?,
            enc_to_dec: linear_no_bias(cfg.hidden, cfg.hidden, vb.pp("enc_to_dec"))?,
            decoder: GinLayer::new(cfg.hidden, cfg.in_channels, vb.pp("decoder"))?,
        })
    }

    /// `x: (B, V, C)` coordinates, `mask: (B, V)` (1 = masked) -> the
    /// reconstruction `(B, V, C)`.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        // x: (B, V, C); mask: (B, V)
        let m = mask.unsqueeze(2)?; // (B, V, 1)
        let keep = m.affine(-1.0, 1.0)?; // (B, V, 1)
        let token = self.mask_token.broadcast_as(x.shape())?; // (B, V, C)
        let input = (x.broadcast_mul(&keep)? + token.broadcast_mul(&m)?)?;
        let h = self.encoder.forward(&input)?; // (B, V, D)
        let h = self.enc_to_dec.forward(&h)?.broadcast_mul(&keep)?; // re-mask
        self.decoder.forward(&h, self.encoder.adjacency())
    }
}
