//! Reading the authors' PyTorch checkpoint (`*.pth.tar`) of EfficientGCN.
//!
//! The published files (e.g. `2001_EfficientGCN-B0_ntu-xsub.pth.tar`) are
//! PyTorch zip archives holding a dict with `model` (the `state_dict`),
//! `optimizer`, `scheduler`, `best_state` and `epoch`. Only `model` is read,
//! through candle's pickle reader; `num_batches_tracked` counters are
//! dropped, every tensor is converted to f32, and the names and shapes are
//! checked against the network that [`Config`] builds, so that a checkpoint
//! of another configuration is refused with the tensor it disagrees on
//! instead of failing somewhere inside a forward pass.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::{Config, EfficientGcn};
use crate::{Error, Result};

/// The key of the `state_dict` inside the checkpoint's top-level dict.
pub const STATE_DICT_KEY: &str = "model";

/// Suffix of the BN step counters, which carry no inference information.
const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

/// The first bytes of a zip archive (a local file header).
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::CorruptWeights {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the `state_dict` stored under `model` in a PyTorch zip checkpoint,
/// without `num_batches_tracked`, every tensor as f32 on the CPU.
///
/// Errors: [`Error::Io`] when the file cannot be opened (missing),
/// [`Error::CorruptWeights`] when it is not a zip archive (e.g. PyTorch's
/// legacy format), has no `model` dict, or a tensor cannot be read.
pub fn read_state_dict(pth: &Path) -> Result<HashMap<String, Tensor>> {
    let mut file = std::fs::File::open(pth).map_err(|e| Error::io(pth, e))?;
    let mut magic = [0u8; 4];
    let is_zip = matches!(file.read_exact(&mut magic), Ok(()) if magic == ZIP_MAGIC);
    if !is_zip {
        return Err(corrupt(
            pth,
            "not a zip archive (expected a PyTorch >= 1.6 checkpoint saved with torch.save)",
        ));
    }
    drop(file);
    let tensors =
        candle_core::pickle::read_all_with_key(pth, Some(STATE_DICT_KEY)).map_err(|e| {
            corrupt(
                pth,
                format!("cannot read the `{STATE_DICT_KEY}` state dict: {e}"),
            )
        })?;
    if tensors.is_empty() {
        return Err(corrupt(pth, format!("no tensors under `{STATE_DICT_KEY}`")));
    }
    let mut out = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        if name.ends_with(NUM_BATCHES_TRACKED) {
            continue;
        }
        let t = t
            .to_dtype(DType::F32)
            .map_err(|e| corrupt(pth, format!("tensor `{name}`: {e}")))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// The names and shapes of every tensor the network for `cfg` loads: the
/// variables a fresh [`VarMap`] receives plus the adjacency `conv.A` of each
/// graph layer (a constant derived from the layout when absent, but stored
/// in the authors' checkpoints).
pub fn expected_shapes(cfg: &Config) -> Result<BTreeMap<String, Vec<usize>>> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    EfficientGcn::new(cfg, vb)?;
    let data = vm
        .data()
        .lock()
        .map_err(|_| Error::config("varmap", "poisoned lock"))?;
    let mut out: BTreeMap<String, Vec<usize>> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    let (k, v) = (cfg.num_subsets(), cfg.num_joints()?);
    let graph_layers: Vec<String> = out
        .keys()
        .filter_map(|name| name.strip_suffix(".conv.gcn.weight").map(str::to_string))
        .collect();
    for prefix in graph_layers {
        out.insert(format!("{prefix}.conv.A"), vec![k, v, v]);
    }
    Ok(out)
}

/// Checks a state dict against the network for `cfg`: every expected tensor
/// present ([`Error::MissingWeight`]) with its shape, and no tensor the
/// network would not use ([`Error::Mismatch`] naming the tensor).
pub fn check_state_dict(cfg: &Config, state: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let expected = expected_shapes(cfg)?;
    for (name, shape) in &expected {
        let t = state.get(name).ok_or_else(|| Error::MissingWeight {
            name: name.clone(),
            path: path.to_path_buf(),
        })?;
        if t.dims() != shape.as_slice() {
            return Err(Error::mismatch(
                name.clone(),
                format!("shape {shape:?}"),
                format!("shape {:?}", t.dims()),
            ));
        }
    }
    let mut unexpected: Vec<&String> = state
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    unexpected.sort();
    if let Some(name) = unexpected.first() {
        return Err(Error::mismatch(
            (*name).clone(),
            "no such tensor in the configured network",
            format!(
                "a tensor of shape {:?} ({} unexpected in all)",
                state[*name].dims(),
                unexpected.len()
            ),
        ));
    }
    Ok(())
}

/// Imports the authors' checkpoint of EfficientGCN-B0 (config 2001,
/// NTU-60): reads its state dict ([`read_state_dict`]) and validates every
/// name and shape against the network of [`Config::default`]
/// ([`check_state_dict`]). Returns that config and the tensors, ready for
/// `VarBuilder::from_tensors` or to be saved as safetensors.
///
/// The checkpoint stores no configuration; a file of another configuration
/// is refused with [`Error::Mismatch`] or [`Error::MissingWeight`] naming the
/// first tensor that disagrees.
pub fn import_checkpoint(pth: &Path) -> Result<(Config, HashMap<String, Tensor>)> {
    let cfg = Config::default();
    let state = read_state_dict(pth)?;
    check_state_dict(&cfg, &state, pth)?;
    Ok((cfg, state))
}
