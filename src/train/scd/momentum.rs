//! The momentum (key) encoder's update (MoCo; SCD-Net m = 0.999): after
//! every step each key parameter becomes `m * key + (1 - m) * query`. Batch
//! norm statistics are not averaged: the key encoder's own forward passes
//! keep them, as in MoCo.

use candle_nn::VarMap;

use crate::model::directory::is_buffer;
use crate::{Error, Result};

/// SCD-Net's momentum.
pub const MOMENTUM: f64 = 0.999;

/// `key = m * key + (1 - m) * query` for every trained parameter of `key`
/// (names must match); returns how many were updated.
pub fn momentum_update(key: &VarMap, query: &VarMap, m: f64) -> Result<usize> {
    let poisoned = |_| Error::config("varmap", "weight map poisoned");
    let k = key.data().lock().map_err(poisoned)?;
    let q = query.data().lock().map_err(poisoned)?;
    let mut n = 0;
    for (name, kv) in k.iter().filter(|(name, _)| !is_buffer(name)) {
        let qv = q
            .get(name)
            .ok_or_else(|| Error::config("momentum", format!("query encoder has no `{name}`")))?;
        let next = ((kv.as_tensor() * m)? + (qv.as_tensor() * (1.0 - m))?)?;
        kv.set(&next)?;
        n += 1;
    }
    Ok(n)
}

/// Copies every tensor of `query` into `key` (the key encoder's start).
pub fn copy_into(key: &VarMap, query: &VarMap) -> Result<()> {
    let poisoned = |_| Error::config("varmap", "weight map poisoned");
    let k = key.data().lock().map_err(poisoned)?;
    let q = query.data().lock().map_err(poisoned)?;
    for (name, kv) in k.iter() {
        if let Some(qv) = q.get(name) {
            kv.set(qv.as_tensor())?;
        }
    }
    Ok(())
}
