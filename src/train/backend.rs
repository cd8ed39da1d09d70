//! The weight source used in training: a [`VarMap`] for trained tensors,
//! with convolution biases that feed straight into a batch norm held as
//! constant zeros.
//!
//! Such a bias cannot change the network's output in training (the batch
//! norm subtracts the per-channel batch mean) and is zero in the reference
//! initialisation, so freezing it changes nothing but speed: in candle 0.11
//! the gradient of a `(1, C, 1, 1)` bias broadcast over `(N, C, T, V)` is a
//! sum over the non-trailing dimensions, which the CPU backend computes
//! with two integer divisions per element per dimension. In CTR-GCN those
//! sums took most of the backward pass. The frozen biases are exported as
//! zeros so that the model directory holds every tensor the reference has.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

use crate::model::card::Architecture;
use crate::{Error, Result};

/// CTR-GCN convolutions whose bias is trained: the relation convs of the
/// topology refinement and the classifier. The refinement's `conv4` bias
/// (a per-channel constant added to every adjacency entry, scaled by
/// alpha, and initialised to zero) is held at zero as well: not exact like
/// the pre-BN biases, but its gradient is a sum over `(N, V, V)` per
/// channel that cost a tenth of the backward pass, and the learnable `PA`
/// offsets carry the same freedom per joint pair.
const CTRGCN_LIVE_BIAS: [&str; 3] = ["conv1", "conv2", "fc"];

/// A [`SimpleBackend`] over a [`VarMap`] that answers frozen names with
/// constant zeros.
pub struct TrainBackend {
    varmap: VarMap,
    freeze: bool,
    requested: Mutex<HashSet<String>>,
    frozen: Mutex<HashMap<String, Tensor>>,
}

impl TrainBackend {
    /// A backend over `varmap`; with `freeze_pre_bn_bias`, CTR-GCN's
    /// convolution biases that feed a batch norm are constants.
    pub fn new(varmap: VarMap, freeze_pre_bn_bias: bool) -> Self {
        Self {
            varmap,
            freeze: freeze_pre_bn_bias,
            requested: Mutex::new(HashSet::new()),
            frozen: Mutex::new(HashMap::new()),
        }
    }

    fn is_frozen(&self, name: &str, requested: &HashSet<String>) -> bool {
        if !self.freeze {
            return false;
        }
        let Some(prefix) = name.strip_suffix(".bias") else {
            return false;
        };
        // Batch norms ask for their running mean before their bias.
        if requested.contains(&format!("{prefix}.running_mean")) {
            return false;
        }
        let last = prefix.rsplit('.').next().unwrap_or(prefix);
        !CTRGCN_LIVE_BIAS.contains(&last)
    }

    /// The frozen tensors (names and zero values).
    pub fn frozen(&self) -> Result<HashMap<String, Tensor>> {
        self.frozen
            .lock()
            .map(|f| f.clone())
            .map_err(|_| Error::config("weights", "frozen map poisoned"))
    }
}

impl SimpleBackend for TrainBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut requested = self
            .requested
            .lock()
            .map_err(|_| candle_core::Error::Msg("weight requests poisoned".into()))?;
        let frozen = self.is_frozen(name, &requested);
        requested.insert(name.to_string());
        drop(requested);
        if frozen {
            let t = Tensor::zeros(s, dtype, dev)?;
            self.frozen
                .lock()
                .map_err(|_| candle_core::Error::Msg("frozen map poisoned".into()))?
                .insert(name.to_string(), t.clone());
            return Ok(t);
        }
        self.varmap.get(s, name, h, dtype, dev)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("`get_unchecked` is not supported while training (`{name}`)")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// A `VarBuilder` over a [`TrainBackend`], and the backend's frozen map
/// handle. Freezing applies to CTR-GCN only.
pub fn var_builder(
    varmap: &VarMap,
    arch: &Architecture,
    device: &Device,
) -> (VarBuilder<'static>, std::sync::Arc<TrainBackend>) {
    let backend = std::sync::Arc::new(TrainBackend::new(
        varmap.clone(),
        matches!(arch, Architecture::Ctrgcn(_)),
    ));
    let vb = VarBuilder::from_backend(
        Box::new(Shared(backend.clone())),
        DType::F32,
        device.clone(),
    );
    (vb, backend)
}

/// Lets the `VarBuilder` own a handle while the trainer keeps another.
struct Shared(std::sync::Arc<TrainBackend>);

impl SimpleBackend for Shared {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(s, name, h, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}
