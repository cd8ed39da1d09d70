//! An exponential moving average of the model's weights (`--ema DECAY`).
//!
//! After every optimizer step each tensor of the model — trained weights and
//! batch-norm running statistics alike — moves its average by
//! `avg = d * avg + (1 - d) * w`, with the decay warmed up as
//! `d = min(DECAY, (1 + k) / (10 + k))` after `k` updates so that the first
//! steps are not dominated by the initial weights (the schedule of timm's
//! `ModelEma` and TensorFlow's `ExponentialMovingAverage` with
//! `num_updates`). The average is what the run evaluates and exports: it
//! smooths the epoch-to-epoch swings of test accuracy that a small model
//! trained with a high learning rate shows, without picking epochs on the
//! test split. Checkpointed beside the weights, so a resumed run continues
//! the same average.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::trainer::weights_of;
use crate::{Error, Result};

/// The averaged weights and the number of updates so far.
pub struct Ema {
    decay: f64,
    updates: u64,
    avg: HashMap<String, Tensor>,
}

/// Key of the update count in the checkpoint file.
const UPDATES_KEY: &str = "__ema_updates";

impl Ema {
    /// Starts an average at the current weights of `varmap`. `decay` must
    /// lie in `[0, 1)`.
    pub fn new(varmap: &VarMap, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::config(
                "ema",
                format!("decay {decay} is not in [0, 1)"),
            ));
        }
        Ok(Self {
            decay,
            updates: 0,
            // detached, so that the average never records a graph
            avg: weights_of(varmap)?
                .into_iter()
                .map(|(k, t)| (k, t.detach()))
                .collect(),
        })
    }

    /// The decay used by the next update.
    pub fn current_decay(&self) -> f64 {
        let k = self.updates as f64;
        self.decay.min((1.0 + k) / (10.0 + k))
    }

    /// Moves the average towards the current weights of `varmap`.
    pub fn update(&mut self, varmap: &VarMap) -> Result<()> {
        let d = self.current_decay();
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::config("varmap", "weight map poisoned"))?;
        for (name, var) in data.iter() {
            let w = var.as_tensor().detach();
            let next = match self.avg.get(name) {
                Some(a) => ((a * d)? + (w * (1.0 - d))?)?,
                None => w.copy()?,
            };
            self.avg.insert(name.clone(), next);
        }
        self.updates += 1;
        Ok(())
    }

    /// The averaged tensors, by name.
    pub fn weights(&self) -> &HashMap<String, Tensor> {
        &self.avg
    }

    /// Number of updates so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Writes the average and its update count to `path` (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut all = self.avg.clone();
        let device = self
            .avg
            .values()
            .next()
            .map_or(Device::Cpu, |t| t.device().clone());
        all.insert(
            UPDATES_KEY.to_string(),
            Tensor::new(&[self.updates as f64], &device)?,
        );
        candle_core::safetensors::save(&all, path)?;
        Ok(())
    }

    /// Reads an average written by [`Ema::save`]; `decay` is the run's.
    pub fn load(path: &Path, decay: f64, device: &Device) -> Result<Self> {
        let mut avg = candle_core::safetensors::load(path, device)?;
        let updates = avg
            .remove(UPDATES_KEY)
            .ok_or_else(|| {
                Error::config("ema", format!("{} has no {UPDATES_KEY}", path.display()))
            })?
            .to_vec1::<f64>()?
            .first()
            .copied()
            .unwrap_or(0.0);
        Ok(Self {
            decay,
            updates: updates as u64,
            avg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::Init;

    #[test]
    fn average_by_hand() {
        let vm = VarMap::new();
        let w = vm
            .get(2, "w", Init::Const(1.0), DType::F32, &Device::Cpu)
            .unwrap();
        let mut ema = Ema::new(&vm, 0.5).unwrap();
        // update 0: d = min(0.5, 1/10) = 0.1; avg = 0.1 * 1 + 0.9 * 3 = 2.8
        vm.data().lock().unwrap()["w"]
            .set(&Tensor::new(&[3f32, 3.0], &Device::Cpu).unwrap())
            .unwrap();
        ema.update(&vm).unwrap();
        let a: Vec<f32> = ema.weights()["w"].to_vec1().unwrap();
        assert!((a[0] - 2.8).abs() < 1e-6, "{a:?}");
        // update 1: d = min(0.5, 2/11); avg = d * 2.8 + (1 - d) * 5
        vm.data().lock().unwrap()["w"]
            .set(&Tensor::new(&[5f32, 5.0], &Device::Cpu).unwrap())
            .unwrap();
        ema.update(&vm).unwrap();
        let d = 2.0 / 11.0;
        let want = d * 2.8 + (1.0 - d) * 5.0;
        let a: Vec<f32> = ema.weights()["w"].to_vec1().unwrap();
        assert!((a[1] as f64 - want).abs() < 1e-5, "{a:?} vs {want}");
        // much later the decay is the configured one
        ema.updates = 1000;
        assert_eq!(ema.current_decay(), 0.5);
        // the average is a copy: the variable is unchanged by it
        assert_eq!(w.to_vec1::<f32>().unwrap(), vec![5.0, 5.0]);
        assert!(Ema::new(&vm, 1.0).is_err());
        assert!(Ema::new(&vm, -0.1).is_err());
    }

    #[test]
    fn save_and_load_round_trip() {
        let vm = VarMap::new();
        vm.get(3, "b", Init::Const(2.0), DType::F32, &Device::Cpu)
            .unwrap();
        let mut ema = Ema::new(&vm, 0.9).unwrap();
        ema.update(&vm).unwrap();
        ema.update(&vm).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ema.safetensors");
        ema.save(&p).unwrap();
        let back = Ema::load(&p, 0.9, &Device::Cpu).unwrap();
        assert_eq!(back.updates(), 2);
        assert_eq!(
            back.weights()["b"].to_vec1::<f32>().unwrap(),
            ema.weights()["b"].to_vec1::<f32>().unwrap()
        );
        std::fs::write(&p, b"not safetensors").unwrap();
        assert!(Ema::load(&p, 0.9, &Device::Cpu).is_err());
    }
}
