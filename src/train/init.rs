//! Initialising a model from pretrained weights (SkeletonMAE's encoder,
//! say) before supervised fine-tuning: every variable of the model whose
//! name is in the file takes the file's value; the rest keep their fresh
//! initialisation.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;

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
