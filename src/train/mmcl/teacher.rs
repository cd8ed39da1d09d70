//! Per-clip teacher features for MMCL's Feature Refinement Module: the
//! file format, and the inertial-sensor teacher skelact computes.
//!
//! In the paper the teacher is a multimodal LLM answering a yes/no
//! question about the clip's RGB frames ("are the people holding
//! objects?"); its answer features (3 values) feed the refinement MLP.
//! skelact has no RGB and runs no LLM. The teacher it ships is a summary
//! of a sensor that exists only at training time, UTD-MHAD's wearable
//! inertial unit (wrist for hand actions, thigh for leg actions, 50 Hz),
//! answering "how hard does the worn limb move?" with three numbers per
//! clip ([`INERTIAL_FEATURES`]):
//!
//! 1. `accel_dyn_g`: RMS over samples of `|a| - 1` (acceleration magnitude
//!    minus gravity), in g;
//! 2. `gyro_rms_100dps`: RMS of the angular-rate magnitude `|ω|`, in
//!    units of 100 degrees per second;
//! 3. `gyro_active_share`: the share of samples with `|ω| >` 50 deg/s.
//!
//! Any other teacher works as long as it is written in this format.
//!
//! ## File format
//!
//! A safetensors file holding one `F32` tensor of shape `(D,)` per clip,
//! named by the clip id `aA_sS_tT` (UTD-MHAD's trial, without modality);
//! every tensor has the same `D`. Header metadata: `format` =
//! [`FORMAT_TAG`], `features` = the `D` feature names comma-separated,
//! `source` = what produced them, in words. Write one with `skelact
//! mmcl-teacher --data ROOT --out FILE`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::depth::trial_id;
use crate::source::utd::{self, InertialSeq, Modality, Trial};
use crate::{Error, Result};

/// The `format` metadata value of a teacher file.
pub const FORMAT_TAG: &str = "skelact-mmcl-teacher/1";

/// The error format name of teacher files.
const FORMAT: &str = "MMCL teacher features";

/// Names of the inertial teacher's features, in order.
pub const INERTIAL_FEATURES: [&str; 3] = ["accel_dyn_g", "gyro_rms_100dps", "gyro_active_share"];

/// Angular rate above which a sample counts as active, deg/s.
pub const GYRO_ACTIVE_DPS: f64 = 50.0;

/// Teacher features by clip id.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherFeatures {
    /// Feature names (`D` of them).
    pub names: Vec<String>,
    /// What produced them, in words.
    pub source: String,
    /// `D` values per clip id (`aA_sS_tT`).
    pub by_clip: BTreeMap<String, Vec<f32>>,
}

/// The inertial teacher of one recording (see the module docs).
pub fn inertial_features(seq: &InertialSeq) -> [f32; 3] {
    let n = seq.len().max(1) as f64;
    let mut acc = 0.0;
    let mut gyro = 0.0;
    let mut active = 0usize;
    for (a, w) in seq.accel_g.iter().zip(&seq.gyro_deg_s) {
        let am = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt() - 1.0;
        let wm = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
        acc += am * am;
        gyro += wm * wm;
        if wm > GYRO_ACTIVE_DPS {
            active += 1;
        }
    }
    [
        (acc / n).sqrt() as f32,
        ((gyro / n).sqrt() / 100.0) as f32,
        (active as f64 / n) as f32,
    ]
}

impl TeacherFeatures {
    /// The inertial teacher for every recording in `utd_root/inertial/`.
    pub fn from_inertial(utd_root: &Path) -> Result<Self> {
        let files = utd::list(&utd_root.join("inertial"), Modality::Inertial)?;
        if files.is_empty() {
            return Err(Error::config(
                "teacher",
                format!(
                    "no aA_sS_tT_inertial.mat files in {}",
                    utd_root.join("inertial").display()
                ),
            ));
        }
        let rows = files
            .par_iter()
            .map(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let (trial, _) = Trial::parse(name).ok_or_else(|| Error::Format {
                    format: FORMAT,
                    path: p.clone(),
                    reason: "not an aA_sS_tT_inertial.mat file".into(),
                })?;
                let seq = utd::read_inertial(p)?;
                Ok((trial_id(&trial), inertial_features(&seq).to_vec()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            names: INERTIAL_FEATURES.iter().map(|s| s.to_string()).collect(),
            source: "UTD-MHAD wearable inertial sensor (50 Hz; wrist for hand actions, thigh \
                     for leg actions): RMS dynamic acceleration in g, RMS angular rate in \
                     100 deg/s, share of samples turning faster than 50 deg/s"
                .into(),
            by_clip: rows.into_iter().collect(),
        })
    }

    /// Values per clip (`D`).
    pub fn dim(&self) -> usize {
        self.names.len()
    }

    /// Writes the file (format in the module docs).
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes: Vec<(String, Vec<u8>)> = self
            .by_clip
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect();
        let views = bytes
            .iter()
            .map(|(k, b)| {
                TensorView::new(Dtype::F32, vec![b.len() / 4], b)
                    .map(|v| (k.as_str(), v))
                    .map_err(|e| corrupt(path, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta: HashMap<String, String> = [
            ("format".to_string(), FORMAT_TAG.to_string()),
            ("features".to_string(), self.names.join(",")),
            ("source".to_string(), self.source.clone()),
        ]
        .into_iter()
        .collect();
        safetensors::serialize_to_file(views, Some(meta), path)
            .map_err(|e| corrupt(path, e.to_string()))
    }

    /// Reads and checks a teacher file: the format tag, one finite `F32`
    /// vector of the same length per clip.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT_TAG) {
            return Err(corrupt(
                path,
                format!("metadata `format` is not `{FORMAT_TAG}`"),
            ));
        }
        let names: Vec<String> = meta
            .get("features")
            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err(corrupt(path, "metadata `features` names no feature"));
        }
        let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e.to_string()))?;
        let mut by_clip = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 || view.shape() != [names.len()] {
                return Err(corrupt(
                    path,
                    format!(
                        "`{name}` is {:?} {:?}, expected F32 [{}]",
                        view.dtype(),
                        view.shape(),
                        names.len()
                    ),
                ));
            }
            let v: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(corrupt(path, format!("`{name}` holds a non-finite value")));
            }
            by_clip.insert(name, v);
        }
        if by_clip.is_empty() {
            return Err(corrupt(path, "no clip"));
        }
        Ok(Self {
            names,
            source: meta.get("source").cloned().unwrap_or_default(),
            by_clip,
        })
    }

    /// The features of `ids` as `(N, D)`; a clip without features is an
    /// error naming it.
    pub fn batch(&self, ids: &[&str], device: &Device) -> Result<Tensor> {
        let d = self.dim();
        let mut data = Vec::with_capacity(ids.len() * d);
        for id in ids {
            let v = self
                .by_clip
                .get(*id)
                .ok_or_else(|| Error::config("teacher", format!("no features for clip `{id}`")))?;
            data.extend_from_slice(v);
        }
        Ok(Tensor::from_vec(data, (ids.len(), d), device)?)
    }

    /// The ids among `ids` that have no features.
    pub fn missing<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        ids.into_iter()
            .filter(|id| !self.by_clip.contains_key(*id))
            .collect()
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        format: FORMAT,
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}
