//! Weight quantization: f16 / bf16 conversion and int8 weight-only
//! quantization of a model directory.
//!
//! A quantized model is a normal model directory: the same tensor names and
//! shapes as its source (batch norms are kept, not folded — the runtime
//! folds them after loading, as it does for any model), `model.toml` with
//! its `precision` changed and a provenance note. No second weight format:
//! `weights.safetensors` stays safetensors.
//!
//! - **f16 / bf16**: every floating-point tensor (batch-norm statistics
//!   included) is cast.
//! - **int8** ([`Precision::Int8`]): conv and linear weights — tensors named
//!   `*.weight` of rank ≥ 2 — are quantized symmetrically per output channel
//!   (dimension 0): `scale[c] = max |w[c, ..]| / 127`,
//!   `q = round(w / scale)` clamped to `[-127, 127]`, so that
//!   `|w - q · scale| ≤ scale / 2`. They are stored as `I8` tensors under
//!   their own name, with the scales as an f32 tensor `(C_out,)` named
//!   `<name>.__scale` ([`SCALE_SUFFIX`]). An all-zero channel gets scale 0
//!   and dequantizes to exact zeros. Everything else (biases, batch norms,
//!   CTR-GCN's `PA` adjacency and `alpha`, ST-GCN's edge importance) is
//!   stored in f16. candle 0.11 has no `I8` dtype, so the file is written
//!   and read through the `safetensors` crate's raw views.
//!
//! Per-output-channel scales commute with batch-norm folding (folding
//! multiplies each output channel by one factor), so keeping the batch
//! norms unfolded in the file loses nothing.
//!
//! Loading dequantizes int8 weights to f32 and then casts to the compute
//! dtype ([`crate::model::ModelDir::load`]): candle has no int8
//! convolution or matmul on CPU, and for the edge models the weights are
//! small (ctrgcn-edge has 137 k parameters) next to the activations, so the
//! int8 format buys file size and transfer, not compute. Compute runs in
//! f16 or f32 as for any model.
//!
//! The scheme follows the weight-only per-channel symmetric quantization of
//! PyTorch's `torch.ao.quantization` (`per_channel_symmetric`, `qint8` with
//! the reduced range [-127, 127]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::card::{ModelCard, Precision, CARD_FILE, WEIGHTS_FILE};
use super::directory::{check_weights, expected_tensors, read_safetensors, stored_dtype, ModelDir};
use crate::{Error, Result};

/// Suffix of the per-channel scale tensor of an int8 weight:
/// `conv.weight` is stored as `I8` with its scales in `conv.weight.__scale`.
pub const SCALE_SUFFIX: &str = ".__scale";

/// Largest quantized magnitude (symmetric, reduced range).
pub const INT8_MAX: f32 = 127.0;

/// Name of the scale tensor of the int8 weight `name`.
pub fn scale_name(name: &str) -> String {
    format!("{name}{SCALE_SUFFIX}")
}

/// Whether [`Precision::Int8`] stores this tensor as int8: conv and linear
/// weights (`*.weight`, rank ≥ 2, floating point). Batch-norm weights are
/// rank 1; adjacency tensors (`A`, `PA`, `edge_importance`) are not named
/// `weight`.
pub fn is_int8_target(name: &str, t: &Tensor) -> bool {
    (name == "weight" || name.ends_with(".weight")) && t.rank() >= 2 && t.dtype().is_float()
}

/// The largest elementwise error of a round trip through [`Int8Tensor`] for
/// a channel of scale `scale`: `scale / 2` for the rounding to an integer,
/// plus the f32 rounding of the product `q · scale` (at most `127 · ε / 2`
/// of `scale`).
pub fn error_bound(scale: f32) -> f32 {
    scale * 0.5 * (1.0 + INT8_MAX * f32::EPSILON)
}

/// A tensor quantized to int8 per output channel (dimension 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Tensor {
    /// Shape of the tensor, output channels first.
    pub shape: Vec<usize>,
    /// Quantized values, row-major, in `[-127, 127]`.
    pub values: Vec<i8>,
    /// One scale per output channel (`shape[0]` of them), each ≥ 0.
    pub scales: Vec<f32>,
}

impl Int8Tensor {
    /// Quantizes `w: (C_out, ...)` of any float dtype symmetrically per
    /// output channel. Refuses non-finite weights.
    pub fn quantize(w: &Tensor) -> Result<Self> {
        let shape = w.dims().to_vec();
        let c_out = match shape.first() {
            Some(&c) if c > 0 => c,
            _ => return Err(Error::shape("int8 weight", "(C_out, ...)", &shape)),
        };
        let data = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bad = data.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            return Err(Error::NonFinite {
                what: "weight to quantize".into(),
                count: bad,
                total: data.len(),
            });
        }
        let per = data.len() / c_out;
        let mut values = Vec::with_capacity(data.len());
        let mut scales = Vec::with_capacity(c_out);
        for row in data.chunks(per.max(1)).take(c_out) {
            let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            let scale = max / INT8_MAX;
            scales.push(scale);
            if scale == 0.0 {
                // An all-zero channel (or one below f32's smallest scale).
                values.extend(std::iter::repeat_n(0i8, row.len()));
                continue;
            }
            let s = f64::from(scale);
            values.extend(row.iter().map(|&x| {
                let q = (f64::from(x) / s).round().clamp(-127.0, 127.0);
                q as i8
            }));
        }
        Ok(Self {
            shape,
            values,
            scales,
        })
    }

    /// Elements per output channel.
    pub fn channel_len(&self) -> usize {
        self.values.len() / self.scales.len().max(1)
    }

    /// The f32 tensor `q · scale`, with this tensor's shape.
    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        let per = self.channel_len().max(1);
        let data: Vec<f32> = self
            .values
            .chunks(per)
            .zip(&self.scales)
            .flat_map(|(row, &s)| row.iter().map(move |&q| f32::from(q) * s))
            .collect();
        Ok(Tensor::from_vec(data, self.shape.as_slice(), device)?)
    }
}

/// A tensor as stored in a weight file.
#[derive(Debug, Clone)]
pub enum Stored {
    /// A tensor stored as is (floats in the target precision).
    Plain(Tensor),
    /// An int8 weight with its per-channel scales.
    Int8(Int8Tensor),
}

impl Stored {
    /// The value the loader will see, as f32 (plain non-float tensors keep
    /// their dtype).
    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        match self {
            Stored::Plain(t) if t.dtype().is_float() => Ok(t.to_dtype(DType::F32)?),
            Stored::Plain(t) => Ok(t.clone()),
            Stored::Int8(q) => q.dequantize(device),
        }
    }
}

/// Converts named weights to `to`: floats cast to f32 / f16 / bf16, or for
/// [`Precision::Int8`] conv and linear weights quantized (see
/// [`is_int8_target`]) and every other float tensor cast to f16; batch-norm
/// statistics stay f32 in every precision ([`stored_dtype`]). Non-float
/// tensors are kept.
pub fn quantize_weights(
    weights: &HashMap<String, Tensor>,
    to: Precision,
) -> Result<BTreeMap<String, Stored>> {
    let mut out = BTreeMap::new();
    for (name, t) in weights {
        let stored = if !t.dtype().is_float() {
            Stored::Plain(t.clone())
        } else if to == Precision::Int8 && is_int8_target(name, t) {
            Stored::Int8(Int8Tensor::quantize(t).map_err(|e| match e {
                Error::NonFinite { count, total, .. } => Error::NonFinite {
                    what: format!("weight `{name}`"),
                    count,
                    total,
                },
                other => other,
            })?)
        } else {
            Stored::Plain(t.to_dtype(stored_dtype(name, to))?)
        };
        out.insert(name.clone(), stored);
    }
    Ok(out)
}

fn float_bytes(t: &Tensor) -> Result<(safetensors::Dtype, Vec<u8>)> {
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F32 => (
            safetensors::Dtype::F32,
            flat.to_vec1::<f32>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::F16 => (
            safetensors::Dtype::F16,
            flat.to_vec1::<half::f16>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::BF16 => (
            safetensors::Dtype::BF16,
            flat.to_vec1::<half::bf16>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            safetensors::Dtype::F64,
            flat.to_vec1::<f64>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            safetensors::Dtype::I64,
            flat.to_vec1::<i64>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::U32 => (
            safetensors::Dtype::U32,
            flat.to_vec1::<u32>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::U8 => (safetensors::Dtype::U8, flat.to_vec1::<u8>()?),
        other => {
            return Err(Error::config(
                "weights",
                format!("cannot store dtype {other:?} in safetensors"),
            ))
        }
    })
}

/// Writes stored tensors to a safetensors file: plain tensors in their
/// dtype, int8 weights as `I8` plus their f32 `<name>.__scale`.
pub fn write_weights(path: &Path, stored: &BTreeMap<String, Stored>) -> Result<()> {
    let mut blobs: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, s) in stored {
        match s {
            Stored::Plain(t) => {
                let (dtype, bytes) = float_bytes(t)?;
                blobs.push((name.clone(), dtype, t.dims().to_vec(), bytes));
            }
            Stored::Int8(q) => {
                let bytes = q.values.iter().map(|&v| v as u8).collect();
                blobs.push((name.clone(), safetensors::Dtype::I8, q.shape.clone(), bytes));
                let scales = q.scales.iter().flat_map(|x| x.to_le_bytes()).collect();
                blobs.push((
                    scale_name(name),
                    safetensors::Dtype::F32,
                    vec![q.scales.len()],
                    scales,
                ));
            }
        }
    }
    let corrupt = |reason: String| Error::CorruptWeights {
        path: path.to_path_buf(),
        reason,
    };
    let views = blobs
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| corrupt(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let has_int8 = stored.values().any(|s| matches!(s, Stored::Int8(_)));
    let metadata = has_int8.then(|| {
        HashMap::from([(
            "skelact.int8".to_string(),
            format!("per-output-channel symmetric; f32 scales in <name>{SCALE_SUFFIX}"),
        )])
    });
    safetensors::tensor::serialize_to_file(views, metadata, path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => Error::io(path, io),
        other => corrupt(other.to_string()),
    })
}

/// Pairs the `I8` tensors read from `path` with their scales (removed from
/// `tensors`) and inserts the dequantized f32 weights. A missing scale is a
/// [`Error::MissingWeight`] naming it; a scale of the wrong shape or dtype,
/// or one without its int8 tensor, a [`Error::Mismatch`] naming it; a
/// negative or non-finite scale a [`Error::CorruptWeights`] naming it.
pub(crate) fn dequantize_int8(
    tensors: &mut HashMap<String, Tensor>,
    int8: Vec<(String, Vec<usize>, Vec<i8>)>,
    path: &Path,
    device: &Device,
) -> Result<()> {
    for (name, shape, values) in int8 {
        let sname = scale_name(&name);
        let Some(scale) = tensors.remove(&sname) else {
            return Err(Error::MissingWeight {
                name: sname,
                path: path.to_path_buf(),
            });
        };
        let c_out = match shape.first() {
            Some(&c) => c,
            None => {
                return Err(Error::mismatch(
                    format!("weights.{name}"),
                    "an int8 tensor of rank >= 1 (output channels first)",
                    "a scalar",
                ))
            }
        };
        if scale.dims() != [c_out] || !scale.dtype().is_float() {
            return Err(Error::mismatch(
                format!("weights.{sname}"),
                format!("f32 shape [{c_out}] (one scale per output channel of `{name}`)"),
                format!("{:?} shape {:?}", scale.dtype(), scale.dims()),
            ));
        }
        let scales = scale.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        if let Some(bad) = scales.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(Error::CorruptWeights {
                path: path.to_path_buf(),
                reason: format!("scale tensor `{sname}` holds {bad} (scales are finite and >= 0)"),
            });
        }
        let q = Int8Tensor {
            shape,
            values,
            scales,
        };
        tensors.insert(name, q.dequantize(device)?);
    }
    let mut orphans: Vec<&String> = tensors
        .keys()
        .filter(|k| k.ends_with(SCALE_SUFFIX))
        .collect();
    orphans.sort();
    if let Some(name) = orphans.first() {
        return Err(Error::mismatch(
            format!("weights.{name}"),
            "a scale beside an I8 tensor",
            "a scale whose tensor is not int8 (or absent)",
        ));
    }
    Ok(())
}

/// How far one stored tensor is from its source.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorError {
    /// Tensor name.
    pub name: String,
    /// Whether it is stored as int8.
    pub int8: bool,
    /// `max |w' - w| / max |w|`.
    pub max_rel: f64,
    /// `‖w' - w‖₂ / ‖w‖₂`.
    pub rms_rel: f64,
}

/// The error of every float tensor of `stored` against `reference`
/// (tensors that are zero in the reference are skipped), by name.
pub fn weight_errors(
    reference: &HashMap<String, Tensor>,
    stored: &BTreeMap<String, Stored>,
    device: &Device,
) -> Result<Vec<TensorError>> {
    let mut out = Vec::new();
    for (name, s) in stored {
        let Some(w) = reference.get(name) else {
            continue;
        };
        if !w.dtype().is_float() {
            continue;
        }
        let w = w.to_dtype(DType::F64)?.flatten_all()?;
        let got = s.dequantize(device)?.to_dtype(DType::F64)?.flatten_all()?;
        let d = (&got - &w)?;
        let w_max = w.abs()?.max(0)?.to_scalar::<f64>()?;
        let w_norm = w.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
        if w_max == 0.0 || w_norm == 0.0 {
            continue;
        }
        out.push(TensorError {
            name: name.clone(),
            int8: matches!(s, Stored::Int8(_)),
            max_rel: d.abs()?.max(0)?.to_scalar::<f64>()? / w_max,
            rms_rel: d.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt() / w_norm,
        });
    }
    Ok(out)
}

/// What [`quantize_dir`] did.
#[derive(Debug)]
pub struct Quantized {
    /// The new model directory.
    pub dir: ModelDir,
    /// The source weights as read (int8 sources dequantized to f32).
    pub source_weights: HashMap<String, Tensor>,
    /// The weights as written.
    pub stored: BTreeMap<String, Stored>,
    /// Per-tensor error against the source.
    pub errors: Vec<TensorError>,
}

/// The card of a quantized copy: `precision` set to `to`, the source's
/// metrics kept under `source_<key>`, and a provenance note naming the
/// source and the command.
pub fn quantized_card(source: &ModelCard, source_path: &Path, to: Precision) -> ModelCard {
    let mut card = source.clone();
    card.precision = to;
    let dtype = precision_name(to);
    let p = &mut card.provenance;
    p.metrics = source
        .provenance
        .metrics
        .iter()
        .map(|(k, v)| (format!("source_{k}"), *v))
        .collect();
    let scheme = if to == Precision::Int8 {
        " (conv and linear weights int8, symmetric per output channel, f32 scales in \
         <name>.__scale; every other tensor f16; dequantized at load)"
    } else {
        ""
    };
    let note = format!(
        "quantized from {} by skelact quantize --dtype {dtype}{scheme}. Metrics source_* are \
         the source model's ({} weights); `provenance.command` is the command that trained \
         the source.",
        source_path.display(),
        precision_name(source.precision),
    );
    p.notes = if p.notes.is_empty() {
        note
    } else {
        format!("{note} Source notes: {}", p.notes)
    };
    card
}

/// The card spelling of a precision (`f16`, `int8`, ...).
pub fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::F16 => "f16",
        Precision::Bf16 => "bf16",
        Precision::Int8 => "int8",
    }
}

/// Writes a copy of the model directory `source` at `out` with its weights
/// in `to` (see [`quantized_card`] for the card). The source's weights are
/// checked against its architecture first; `out` must not be the source.
pub fn quantize_dir(source: &ModelDir, out: &Path, to: Precision) -> Result<Quantized> {
    let device = Device::Cpu;
    let src_path = source.weights_path();
    if let (Ok(a), Ok(b)) = (source.path().canonicalize(), out.canonicalize()) {
        if a == b {
            return Err(Error::config(
                "out",
                "the output directory is the source directory",
            ));
        }
    }
    let source_weights = read_safetensors(&src_path, &device)?;
    let expected = expected_tensors(&source.card().architecture)?;
    check_weights(&source_weights, &expected, &src_path)?;
    let card = quantized_card(source.card(), source.path(), to);
    card.validate()?;
    let stored = quantize_weights(&source_weights, to)?;
    let errors = weight_errors(&source_weights, &stored, &device)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let card_path = out.join(CARD_FILE);
    std::fs::write(&card_path, card.to_toml()?).map_err(|e| Error::io(&card_path, e))?;
    write_weights(&out.join(WEIGHTS_FILE), &stored)?;
    let dir = ModelDir::open(out)?;
    Ok(Quantized {
        dir,
        source_weights,
        stored,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_quantize_independently() {
        // (2, 3): channel 0 spans ±1.27, channel 1 ±0.0127.
        let w = Tensor::new(
            &[[1.27f32, -0.635, 0.0], [0.0127, 0.0, -0.0127]],
            &Device::Cpu,
        )
        .unwrap();
        let q = Int8Tensor::quantize(&w).unwrap();
        assert_eq!(q.values, vec![127, -64, 0, 127, 0, -127]);
        assert!((q.scales[0] - 0.01).abs() < 1e-7);
        assert!((q.scales[1] - 0.0001).abs() < 1e-9);
    }

    #[test]
    fn targets_are_conv_and_linear_weights() {
        let d = &Device::Cpu;
        let m = Tensor::zeros((4, 3), DType::F32, d).unwrap();
        let v = Tensor::zeros(4, DType::F32, d).unwrap();
        assert!(is_int8_target("fc.weight", &m));
        assert!(!is_int8_target("bn.weight", &v));
        assert!(!is_int8_target("l1.gcn1.PA", &m));
        assert!(!is_int8_target("fc.bias", &v));
    }
}
