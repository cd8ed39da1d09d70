//! Initialising a model from pretrained weights (SkeletonMAE's or
//! SCD-Net's encoder, say) before supervised fine-tuning: every variable of
//! the model whose name is in the file takes the file's value; the rest
//! keep their fresh initialisation.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;

use crate::model::scdnet::Widths;
use crate::{Error, Result};

/// Sets every variable of `varmap` named in the safetensors file `path`;
/// returns how many were set. Shapes must agree; a file that matches no
/// variable is an error (the wrong file, most likely).
pub fn load_matching(varmap: &VarMap, path: &Path, device: &Device) -> Result<usize> {
    let file = candle_core::safetensors::load(path, device)?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::config("varmap", "weight map poisoned"))?;
    let mut set = 0;
    for (name, var) in data.iter() {
        if let Some(t) = file.get(name) {
            if t.dims() != var.dims() {
                return Err(Error::mismatch(
                    format!("{} in {}", name, path.display()),
                    format!("{:?}", var.dims()),
                    format!("{:?}", t.dims()),
                ));
            }
            var.set(&t.to_dtype(var.dtype())?)?;
            set += 1;
        }
    }
    if set == 0 {
        return Err(Error::config(
            "init",
            format!("{} holds none of the model's weights", path.display()),
        ));
    }
    Ok(set)
}

/// The SCD-Net widths a saved encoder (`skelact pretrain scd`'s
/// `scd.safetensors`) was trained with, read from its tensor shapes, so
/// that `skelact train --arch scdnet --init FILE` builds a classifier the
/// file fits. The head count does not show in the shapes; it is the
/// pretraining's (8).
pub fn scdnet_widths(path: &Path) -> Result<Widths> {
    let file = candle_core::safetensors::load(path, &Device::Cpu)?;
    let dims = |name: &str| -> Result<Vec<usize>> {
        file.get(name).map(|t| t.dims().to_vec()).ok_or_else(|| {
            Error::config(
                "init",
                format!(
                    "{} is not an SCD-Net encoder: no tensor `{name}`",
                    path.display()
                ),
            )
        })
    };
    let mut gcn_channels = Vec::new();
    while let Some(t) = file.get(&format!("gcn.{}.spatial.weight", gcn_channels.len())) {
        gcn_channels.push(t.dim(0)?);
    }
    let first = *gcn_channels.first().ok_or_else(|| {
        Error::config(
            "init",
            format!("{} holds no SCD-Net GCN unit (`gcn.0.*`)", path.display()),
        )
    })?;
    let temporal = dims("gcn.0.temporal.weight")?; // (C_out, k * C_out)
    let embed = dims("temporal.embed.weight")?; // (d, C_in)
    let ff = dims("temporal.layer.ff1.weight")?; // (ff, d)
    let widths = Widths {
        gcn_channels,
        temporal_kernel: temporal.get(1).copied().unwrap_or(0) / first,
        model_dim: embed[0],
        heads: Widths::small().heads,
        ff_dim: ff[0],
    };
    widths.validate()?;
    Ok(widths)
}
