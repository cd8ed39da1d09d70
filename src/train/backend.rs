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
//!
//! Fresh variables are initialised from the run's seed, not from candle's
//! CPU generator (which cannot be seeded): each tensor draws from a ChaCha8
//! stream keyed by the seed and its name, so a card's command reproduces
//! its initial weights whatever order the model asks for them in.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::card::Architecture;
use crate::{Error, Result};

/// CTR-GCN convolutions whose bias is trained: the relation convs of the
/// topology refinement and the classifier. The value conv `conv3`'s bias
/// feeds the subsets' sum and then the unit's batch norm through the
/// per-sample aggregation, so it is frozen with the pre-BN biases (a
/// per-channel offset that the aggregation scales by each adjacency row's
/// sum; zero in the reference initialisation). The refinement's `conv4` bias
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
    seed: u64,
    requested: Mutex<HashSet<String>>,
    frozen: Mutex<HashMap<String, Tensor>>,
}

impl TrainBackend {
    /// A backend over `varmap`; with `freeze_pre_bn_bias`, CTR-GCN's
    /// convolution biases that feed a batch norm are constants. New
    /// variables are initialised from `seed` ([`seeded_init`]).
    pub fn new(varmap: VarMap, freeze_pre_bn_bias: bool, seed: u64) -> Self {
        Self {
            varmap,
            freeze: freeze_pre_bn_bias,
            seed,
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
        {
            let mut data = self
                .varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("weight map poisoned".into()))?;
            if !data.contains_key(name) {
                let t = seeded_init(h, &s, name, self.seed, dev)?.to_dtype(dtype)?;
                data.insert(name.to_string(), Var::from_tensor(&t)?);
            }
        }
        // Now present: candle checks the shape and returns the variable.
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
    seed: u64,
) -> (VarBuilder<'static>, std::sync::Arc<TrainBackend>) {
    let backend = std::sync::Arc::new(TrainBackend::new(
        varmap.clone(),
        matches!(arch, Architecture::Ctrgcn(_)),
        seed,
    ));
    let vb = VarBuilder::from_backend(
        Box::new(Shared(backend.clone())),
        DType::F32,
        device.clone(),
    );
    (vb, backend)
}

/// A `VarBuilder` over `varmap` whose fresh variables are drawn from
/// `seed` ([`seeded_init`]), with nothing frozen: for the training-only
/// modules of the methods (GAP's head, MMCL's depth encoder, SCD-Net's
/// encoders, SkeletonMAE, a linear probe), so that a seed reproduces them
/// as it does the backbone.
pub fn seeded_var_builder(varmap: &VarMap, device: &Device, seed: u64) -> VarBuilder<'static> {
    let backend = std::sync::Arc::new(TrainBackend::new(varmap.clone(), false, seed));
    VarBuilder::from_backend(Box::new(Shared(backend)), DType::F32, device.clone())
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

/// FNV-1a of a tensor name, to key its random stream.
fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// candle's initialisers ([`Init`]: constant, normal, uniform, Kaiming with
/// candle's fan and gain), drawn in f32 from a ChaCha8 stream keyed by
/// `seed` and `name`.
pub fn seeded_init(
    h: Init,
    shape: &Shape,
    name: &str,
    seed: u64,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let n = shape.elem_count();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_key(name));
    let mut normal = |mean: f64, std: f64| -> Vec<f32> {
        // Box-Muller: two uniforms in (0, 1] give one standard normal.
        (0..n)
            .map(|_| {
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean + std * z) as f32
            })
            .collect()
    };
    let values: Vec<f32> = match h {
        Init::Const(v) => vec![v as f32; n],
        Init::Randn { mean, stdev } => normal(mean, stdev),
        Init::Uniform { lo, up } => (0..n)
            .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
            .collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(0.0, std),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n)
                        .map(|_| (-bound + 2.0 * bound * rng.random::<f64>()) as f32)
                        .collect()
                }
            }
        }
    };
    Tensor::from_vec(values, shape.clone(), dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::init::{FanInOut, NonLinearity};

    fn weights(seed: u64, names: &[&str]) -> Vec<Vec<f32>> {
        let vm = VarMap::new();
        let b = TrainBackend::new(vm, false, seed);
        names
            .iter()
            .map(|n| {
                b.get(
                    Shape::from((8, 4)),
                    n,
                    candle_nn::init::DEFAULT_KAIMING_UNIFORM,
                    DType::F32,
                    &Device::Cpu,
                )
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn initialisation_follows_the_seed_not_the_request_order() {
        let a = weights(7, &["l1.w", "l2.w"]);
        let b = weights(7, &["l2.w", "l1.w"]);
        assert_eq!(a[0], b[1]);
        assert_eq!(a[1], b[0]);
        assert_ne!(a[0], a[1]);
        assert_ne!(weights(8, &["l1.w"])[0], a[0]);
        // Kaiming uniform, fan-in 4, ReLU gain sqrt(2): |x| <= sqrt(3) * sqrt(2) / 2.
        let bound = 3f64.sqrt() * 2f64.sqrt() / 2.0;
        assert!(a[0].iter().all(|&x| (x as f64).abs() <= bound));
    }

    #[test]
    fn seeded_normal_has_the_asked_moments() {
        let shape = Shape::from((64, 64, 4));
        let t = seeded_init(
            Init::Kaiming {
                dist: NormalOrUniform::Normal,
                fan: FanInOut::FanOut,
                non_linearity: NonLinearity::ReLU,
            },
            &shape,
            "w",
            1,
            &Device::Cpu,
        )
        .unwrap();
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        // fan-out of (64, 64, 4) is 64 * 4; gain sqrt(2)
        let want = 2.0 / 256.0;
        assert!(mean.abs() < 3e-3, "{mean}");
        assert!((var / want - 1.0).abs() < 0.03, "{var} vs {want}");
    }
}
