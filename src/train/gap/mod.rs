//! GAP — Generative Action description Prompts (Xiang et al., "Generative
//! Action Description Prompts for Skeleton-based Action Recognition", ICCV
//! 2023) as training-time supervision.
//!
//! Texts describe, per class, the whole action and what the head, the
//! hands/arms, the hip and the legs do ([`descriptions`]); a frozen
//! sentence encoder turns them into vectors once ([`text`]); the backbone's
//! last feature map is pooled over the layout's four GAP parts and
//! globally, and five linear heads project the features into the text
//! space ([`head`]); a multi-part contrastive loss pulls each projected
//! feature towards its class's text ([`loss`]). Total loss: cross-entropy
//! + 0.8 x the mean of the five pair losses.
//!
//! Only the skeleton model (backbone + classifier) is exported: the head
//! and the text encoder exist only while training, so a GAP-trained model
//! directory is a normal one and inference costs nothing extra.
//!
//! Differences from the authors' code, all stated in the model card:
//! all-MiniLM-L6-v2 (384-d) replaces CLIP's text tower (512-d), its
//! embeddings are computed once instead of every step (the encoder is
//! frozen here), and the descriptions were written for skelact.

pub mod descriptions;
pub mod head;
pub mod loss;
pub mod text;

pub use descriptions::Descriptions;
pub use head::GapHead;
pub use loss::multipart_loss;
pub use text::{SentenceEncoder, TextBank};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::Rng;

use crate::model::card::Architecture;
use crate::skeleton::Layout;
use crate::train::Benchmark;
use crate::{Error, Result};

/// Everything a GAP run holds besides the skeleton model.
pub struct Gap {
    /// The head's weights (trained, checkpointed, never exported).
    pub varmap: VarMap,
    /// Part pooling, projections and logit scales.
    pub head: GapHead,
    /// The class / part text embeddings.
    pub bank: TextBank,
    /// Digest of the descriptions (for the card).
    pub descriptions_digest: u64,
}

impl Gap {
    /// Sets GAP up for `arch` trained on `bench`: descriptions checked
    /// against the classes, text embeddings loaded from (or computed into)
    /// `cache_dir`, a fresh head drawn from `seed`.
    pub fn new(
        arch: &Architecture,
        bench: Benchmark,
        text_model: Option<&std::path::Path>,
        cache_dir: &std::path::Path,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        let c_feat = arch
            .feature_channels()
            .ok_or_else(|| Error::config("method", "GAP needs a CTR-GCN or ST-GCN backbone"))?;
        let layout = Layout::by_name(bench.layout())?;
        let desc = Descriptions::for_benchmark(bench)?;
        let model_dir = text::resolve_model_dir(text_model)?;
        let bank = TextBank::load_or_build(&desc, &model_dir, cache_dir, device)?;
        let (varmap, head) = head::build(c_feat, bank.dim(), layout, device, seed)?;
        Ok(Self {
            varmap,
            head,
            bank,
            descriptions_digest: desc.digest(),
        })
    }

    /// The part loss for the feature map `h: (N*M, C, T', V)` of a batch
    /// with `labels`; the global text of each sample is drawn with `rng`.
    pub fn loss(&self, h: &Tensor, labels: &[u32], rng: &mut impl Rng) -> Result<Tensor> {
        let feats = self.head.forward(h, labels.len())?;
        let mut texts = vec![self.bank.global_for(labels, rng)?];
        for p in 0..head::PAIRS - 1 {
            texts.push(self.bank.part_for(p, labels)?);
        }
        multipart_loss(&feats, &texts, self.head.logit_scale(), labels)
    }
}
