//! Board profiles: what a target device can run (`boards/*.toml`).
//!
//! A profile names the device and precision inference uses, the threads it
//! may take, the largest window it accepts, the stride and batch the
//! runtime uses, the most people it tracks, and the sustained compute it
//! can give inference (`compute_gmacs`, multiply-accumulates per second).
//! [`Board::check_model`] refuses a model that does not fit: a window
//! longer than `max_window`, or more compute than the board sustains for
//! `max_people` people at the model's frame rate and the board's stride.
//!
//! The profiles shipped in `boards/` are compiled in ([`Board::builtin`]),
//! so the binary needs no files; `--board path/to/file.toml` reads another.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{builtin, LoadedModel};
use crate::{Error, Result};

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU.
    Cpu,
    /// CUDA GPU 0 (needs the `cuda` feature).
    Cuda,
}

/// Precision of inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoardDtype {
    /// 32-bit float.
    F32,
    /// IEEE half (on CPU a storage format only; see CANDLE-NOTES).
    F16,
}

/// One board profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Profile name (`x86-cpu`, ...).
    pub name: String,
    /// One line on the hardware.
    #[serde(default)]
    pub description: String,
    /// Inference device.
    pub device: DeviceKind,
    /// Inference precision.
    pub dtype: BoardDtype,
    /// Threads inference may use (matmul pool).
    pub threads: usize,
    /// Longest model window (frames) accepted.
    pub max_window: usize,
    /// Frames between two windows of one person.
    pub stride: usize,
    /// Most windows per inference batch.
    pub batch: usize,
    /// Most people tracked at once.
    pub max_people: usize,
    /// Sustained inference compute, GMAC/s.
    pub compute_gmacs: f64,
}

/// The shipped profiles, by name.
const BUILTIN: [(&str, &str); 4] = [
    ("x86-cpu", include_str!("../boards/x86-cpu.toml")),
    (
        "jetson-orin-nano",
        include_str!("../boards/jetson-orin-nano.toml"),
    ),
    (
        "jetson-agx-orin",
        include_str!("../boards/jetson-agx-orin.toml"),
    ),
    (
        "jetson-xavier-nx",
        include_str!("../boards/jetson-xavier-nx.toml"),
    ),
];

impl Board {
    /// Parses and validates a profile.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let b: Board = toml::from_str(text).map_err(|source| Error::Toml {
            path: path.to_path_buf(),
            source,
        })?;
        b.validate()?;
        Ok(b)
    }

    /// Reads a profile file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path)
    }

    /// Names of the compiled-in profiles.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|b| b.0).collect()
    }

    /// A compiled-in profile by name.
    pub fn builtin(name: &str) -> Result<Self> {
        let (n, text) = BUILTIN
            .iter()
            .find(|b| b.0 == name)
            .ok_or_else(|| Error::Unknown {
                kind: "board",
                name: name.to_string(),
            })?;
        Self::from_toml(text, Path::new(&format!("boards/{n}.toml")))
    }

    /// A profile by name, or from a `.toml` path.
    pub fn by_name_or_path(s: &str) -> Result<Self> {
        if s.ends_with(".toml") || Path::new(s).is_file() {
            Self::load(s)
        } else {
            Self::builtin(s)
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("threads", self.threads),
            ("max_window", self.max_window),
            ("stride", self.stride),
            ("batch", self.batch),
            ("max_people", self.max_people),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::config(format!("board.{field}"), "must be positive"));
            }
        }
        if self.stride > self.max_window {
            return Err(Error::config(
                "board.stride",
                format!(
                    "{} is longer than max_window {}",
                    self.stride, self.max_window
                ),
            ));
        }
        if !(self.compute_gmacs > 0.0 && self.compute_gmacs.is_finite()) {
            return Err(Error::config("board.compute_gmacs", "must be positive"));
        }
        if self.device == DeviceKind::Cpu && self.dtype == BoardDtype::F16 {
            log::warn!(
                "board {}: f16 on CPU is a storage format, about 2.4x slower than f32",
                self.name
            );
        }
        Ok(())
    }

    /// The candle device, refusing CUDA in a build without it.
    pub fn device(&self) -> Result<candle_core::Device> {
        match self.device {
            DeviceKind::Cpu => Ok(candle_core::Device::Cpu),
            DeviceKind::Cuda => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::Device(format!(
                        "board {} asks for CUDA, but this build has no CUDA support \
                         (build with --features cuda) or no GPU is present",
                        self.name
                    )));
                }
                Ok(candle_core::Device::new_cuda(0)?)
            }
        }
    }

    /// The candle dtype of inference.
    pub fn dtype(&self) -> candle_core::DType {
        match self.dtype {
            BoardDtype::F32 => candle_core::DType::F32,
            BoardDtype::F16 => candle_core::DType::F16,
        }
    }

    /// Compute the model needs on this board (GMAC/s) for `max_people`
    /// people at `fps`, one window each per `stride` frames.
    pub fn required_gmacs(&self, macs_per_window: u64, fps: f32) -> f64 {
        macs_per_window as f64 * self.max_people as f64 * fps as f64 / self.stride as f64 / 1e9
    }

    /// Refuses a model that does not fit: its window is longer than
    /// `max_window`, or it needs more compute than the board sustains.
    /// Returns the compute it needs (GMAC/s).
    pub fn check_model(&self, model: &LoadedModel) -> Result<f64> {
        self.check_models(&[model])
    }

    /// [`Board::check_model`] for models served together on every window
    /// (an [`crate::model::Ensemble`]): each window must fit, and their
    /// compute adds up. Returns the total compute (GMAC/s).
    pub fn check_models(&self, models: &[&LoadedModel]) -> Result<f64> {
        let mut need = 0.0;
        let mut macs_total = 0u64;
        for model in models {
            let card = &model.card;
            if card.temporal.frames > self.max_window {
                return Err(Error::mismatch(
                    format!("board {}: temporal.frames", self.name),
                    format!("at most {} frames per window", self.max_window),
                    format!("{} frames (model {})", card.temporal.frames, card.name),
                ));
            }
            // one forward pass per test-time view
            let views = card.input.views.len().max(1) as u64;
            let macs = builtin::macs_per_window(model, &candle_core::Device::Cpu)? * views;
            macs_total += macs;
            need += self.required_gmacs(macs, card.temporal.source_fps);
        }
        if need > self.compute_gmacs {
            let names: Vec<&str> = models.iter().map(|m| m.card.name.as_str()).collect();
            let fps = models.first().map_or(0.0, |m| m.card.temporal.source_fps);
            return Err(Error::mismatch(
                format!("board {}: compute", self.name),
                format!(
                    "at most {:.1} GMAC/s for inference",
                    self.compute_gmacs
                ),
                format!(
                    "{need:.1} GMAC/s for model {} ({:.3} GMAC per window x {} people x {} fps / stride {})",
                    names.join(" + "),
                    macs_total as f64 / 1e9,
                    self.max_people,
                    fps,
                    self.stride
                ),
            ));
        }
        Ok(need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for n in Board::builtin_names() {
            let b = Board::builtin(n).unwrap();
            assert_eq!(b.name, n);
        }
        assert!(matches!(
            Board::builtin("nope"),
            Err(Error::Unknown { kind: "board", .. })
        ));
    }

    #[test]
    fn unknown_keys_and_zero_values_are_refused() {
        let good = include_str!("../boards/x86-cpu.toml");
        let typo = format!("{good}\nstrid = 3\n");
        assert!(Board::from_toml(&typo, Path::new("t.toml")).is_err());
        let zero = good.replace("stride = 8", "stride = 0");
        assert!(matches!(
            Board::from_toml(&zero, Path::new("t.toml")),
            Err(Error::Config { .. })
        ));
    }
}
