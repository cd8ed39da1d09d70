//! Model directories: `model.toml` + `weights.safetensors`, loaded only when
//! everything agrees.
//!
//! Opening a directory parses and validates the card (layout hash, streams,
//! class count, person count; see [`ModelCard::validate`]). Loading then
//! compares every tensor in the weight file with what the architecture
//! expects — names, shapes, nothing missing, nothing extra — before any
//! weight is used, so a mismatch is an error naming the tensor rather than a
//! silent partial load.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::card::{Architecture, ModelCard, Precision, CARD_FILE, WEIGHTS_FILE};
use super::{ctrgcn, efficientgcn, quantize, scdnet, skeletonmae, stgcn, Encoder};
use crate::{Error, Result};

/// Builds the encoder an architecture describes from a `VarBuilder`.
pub fn build_encoder(arch: &Architecture, vb: VarBuilder) -> Result<Box<dyn Encoder>> {
    Ok(match arch {
        Architecture::Ctrgcn(c) => Box::new(ctrgcn::CtrGcn::new(c, vb)?),
        Architecture::Stgcn(c) => Box::new(stgcn::StGcn::new(c, vb)?),
        Architecture::Efficientgcn(c) => Box::new(efficientgcn::EfficientGcn::new(c, vb)?),
        Architecture::Skeletonmae(c) => Box::new(skeletonmae::SkeletonMae::new(c, vb)?),
        Architecture::Scdnet(c) => Box::new(scdnet::ScdNet::new(c, vb)?),
    })
}

/// Names and shapes of every tensor the architecture reads, found by
/// building it once on fresh weights (plus EfficientGCN's stored adjacency
/// `A` tensors, which its checkpoints carry).
pub fn expected_tensors(arch: &Architecture) -> Result<BTreeMap<String, Vec<usize>>> {
    if let Architecture::Efficientgcn(c) = arch {
        return efficientgcn::checkpoint::expected_shapes(c);
    }
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    build_encoder(arch, vb)?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::config("architecture", "weight map poisoned while building"))?;
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect())
}

/// Whether a tensor name is a buffer rather than a trained parameter:
/// batch-norm statistics, and the fixed graph adjacency `A` that reference
/// checkpoints store (the encoders check it against the layout's graph).
pub fn is_buffer(name: &str) -> bool {
    name == "A"
        || name.ends_with(".A")
        || is_statistic(name)
        || name.ends_with("num_batches_tracked")
}

/// Whether a tensor name is a batch-norm running statistic. Model
/// directories store these in f32 whatever their precision: a batch norm
/// makes the layer before it scale-free, so nothing bounds the variance it
/// sees, and past f16's largest value (65504) a stored variance becomes
/// infinite and silences its channel.
pub fn is_statistic(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// The dtype a float tensor called `name` is stored in, in a model
/// directory of `precision` (int8 targets aside, see
/// [`quantize::quantize_weights`]).
pub fn stored_dtype(name: &str, precision: Precision) -> DType {
    if is_statistic(name) {
        DType::F32
    } else {
        match precision {
            Precision::Int8 => DType::F16,
            p => p.dtype(),
        }
    }
}

/// Reads a safetensors file into named tensors on `device`, with typed
/// errors for a missing or corrupt file. Int8 weights (`I8` tensors with
/// their `<name>.__scale`, see [`super::quantize`]) come back dequantized
/// to f32 under their own name, the scales removed; an int8 tensor and its
/// scale that do not pair up are refused naming the tensor.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::CorruptWeights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out = HashMap::with_capacity(st.len());
    let mut int8 = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::I8 => {
                let values = view.data().iter().map(|&b| b as i8).collect();
                int8.push((name, view.shape().to_vec(), values));
                continue;
            }
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::F64 => DType::F64,
            safetensors::Dtype::I64 => DType::I64,
            safetensors::Dtype::U8 => DType::U8,
            safetensors::Dtype::U32 => DType::U32,
            other => {
                return Err(Error::CorruptWeights {
                    path: path.to_path_buf(),
                    reason: format!("tensor `{name}` has unsupported dtype {other:?}"),
                })
            }
        };
        let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)?;
        out.insert(name, t);
    }
    quantize::dequantize_int8(&mut out, int8, path, device)?;
    Ok(out)
}

/// Writes named tensors to a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    candle_core::safetensors::save(tensors, path).map_err(|e| match e {
        candle_core::Error::Io(io) => Error::io(path, io),
        other => Error::Candle(other),
    })
}

/// Checks that `weights` holds exactly the tensors `expected` lists, with
/// the same shapes.
pub fn check_weights(
    weights: &HashMap<String, Tensor>,
    expected: &BTreeMap<String, Vec<usize>>,
    path: &Path,
) -> Result<()> {
    for (name, shape) in expected {
        match weights.get(name) {
            None => {
                return Err(Error::MissingWeight {
                    name: name.clone(),
                    path: path.to_path_buf(),
                })
            }
            Some(t) if t.dims() != shape.as_slice() => {
                return Err(Error::mismatch(
                    format!("weights.{name}"),
                    format!("shape {shape:?}"),
                    format!("shape {:?}", t.dims()),
                ))
            }
            Some(_) => {}
        }
    }
    let mut extra: Vec<&String> = weights
        .keys()
        .filter(|k| {
            !expected.contains_key(*k)
                && !k.ends_with("num_batches_tracked")
                && k.as_str() != "A"
                && !k.ends_with(".A")
        })
        .collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(Error::mismatch(
            format!("weights.{name}"),
            "no such tensor in the architecture",
            format!("{} unexpected tensor(s)", extra.len()),
        ));
    }
    Ok(())
}

/// An opened (card parsed and validated) model directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    path: PathBuf,
    card: ModelCard,
}

/// A model ready to run: its card and its encoder.
pub struct LoadedModel {
    /// The card the weights came with.
    pub card: ModelCard,
    /// The network.
    pub encoder: Box<dyn Encoder>,
    /// Number of trained parameters (buffers excluded).
    pub num_params: usize,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("card", &self.card.name)
            .field("num_params", &self.num_params)
            .finish()
    }
}

impl LoadedModel {
    /// Checks a model input against the card: `x: (N, C, T, V, M)` with the
    /// card's channels, frames, joints and persons, and every value finite.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let c = &self.card;
        let v = c.layout()?.num_joints();
        let want = [c.input.channels(), c.temporal.frames, v, c.input.persons];
        let dims = x.dims();
        if dims.len() != 5 || dims[1..] != want {
            return Err(Error::shape(
                "model input",
                format!("(N, {}, {}, {}, {})", want[0], want[1], want[2], want[3]),
                dims,
            ));
        }
        let bad = x
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .filter(|a| !a.is_finite())
            .count();
        if bad > 0 {
            return Err(Error::NonFinite {
                what: "model input".into(),
                count: bad,
                total: x.elem_count(),
            });
        }
        Ok(())
    }

    /// Class logits `(N, K)` for a checked input `x: (N, C, T, V, M)`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.encoder.forward_t(x, false)
    }
}

impl ModelDir {
    /// Opens `path`, parsing and validating `model.toml`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let card_path = path.join(CARD_FILE);
        let text = std::fs::read_to_string(&card_path).map_err(|e| Error::io(&card_path, e))?;
        let card = ModelCard::from_toml(&text, &card_path)?;
        card.validate()?;
        Ok(Self { path, card })
    }

    /// Writes a new model directory at `path` (created if needed). The card
    /// is validated and the weights checked against it first. Float weights
    /// are stored in the card's precision, batch-norm statistics in f32
    /// ([`stored_dtype`]); for [`Precision::Int8`], conv and linear weights
    /// are quantized (see [`super::quantize`]).
    pub fn create(
        path: impl AsRef<Path>,
        card: &ModelCard,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        card.validate()?;
        let weights_path = path.join(WEIGHTS_FILE);
        check_weights(
            weights,
            &expected_tensors(&card.architecture)?,
            &weights_path,
        )?;
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        let card_path = path.join(CARD_FILE);
        std::fs::write(&card_path, card.to_toml()?).map_err(|e| Error::io(&card_path, e))?;
        let stored = quantize::quantize_weights(weights, card.precision)?;
        quantize::write_weights(&weights_path, &stored)?;
        Ok(Self {
            path,
            card: card.clone(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Path of the weight file.
    pub fn weights_path(&self) -> PathBuf {
        self.path.join(WEIGHTS_FILE)
    }

    /// The weights (int8 dequantized), checked against the card, and the
    /// number of trained parameters among them.
    fn read_checked_weights(&self, device: &Device) -> Result<(HashMap<String, Tensor>, usize)> {
        let path = self.weights_path();
        let weights = read_safetensors(&path, device)?;
        check_weights(&weights, &expected_tensors(&self.card.architecture)?, &path)?;
        let num_params = weights
            .iter()
            .filter(|(k, _)| !is_buffer(k))
            .map(|(_, t)| t.elem_count())
            .sum();
        Ok((weights, num_params))
    }

    /// Loads the model for inference only: on the CPU, a CTR-GCN runs as
    /// its folded CPU plan ([`ctrgcn::CpuCtrGcn`], several times faster than
    /// the candle graph at batch 1); anything else loads as [`Self::load`]
    /// does. `dtype` is the input dtype the caller will pass (the plan
    /// computes in f32 whatever the weights' precision).
    pub fn load_inference(&self, device: &Device, dtype: Option<DType>) -> Result<LoadedModel> {
        let Architecture::Ctrgcn(cfg) = &self.card.architecture else {
            return self.load(device, dtype);
        };
        if !device.is_cpu() {
            return self.load(device, dtype);
        }
        let (weights, num_params) = self.read_checked_weights(device)?;
        Ok(LoadedModel {
            card: self.card.clone(),
            encoder: Box::new(ctrgcn::CpuCtrGcn::new(cfg, &weights)?),
            num_params,
        })
    }

    /// Reads and checks the weights, then builds the encoder on `device`
    /// computing in `dtype` (the card's precision when `None`; f16 for
    /// int8). Int8 weights are dequantized first, so the checks and the
    /// encoder see the usual names and shapes. Batch norms are not folded
    /// here (see [`Encoder::fold_batch_norm`]; the runtime folds them).
    pub fn load(&self, device: &Device, dtype: Option<DType>) -> Result<LoadedModel> {
        let (weights, num_params) = self.read_checked_weights(device)?;
        let dtype = dtype.unwrap_or(self.card.precision.dtype());
        let vb = VarBuilder::from_tensors(weights, dtype, device);
        let encoder = build_encoder(&self.card.architecture, vb)?;
        Ok(LoadedModel {
            card: self.card.clone(),
            encoder,
            num_params,
        })
    }
}
