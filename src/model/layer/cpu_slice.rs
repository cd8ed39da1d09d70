//! The one input accessor of the layers' custom CPU ops.

use candle_core::{backend::BackendStorage, CpuStorage, Layout, Result};

/// The contiguous f32 elements of a custom op's input; any other dtype or
/// a strided layout is an error naming the op (callers make inputs
/// contiguous and send other dtypes to candle's own ops).
pub(crate) fn f32_slice<'s>(s: &'s CpuStorage, l: &Layout, op: &str) -> Result<&'s [f32]> {
    let Some((o, e)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous");
    };
    match s {
        CpuStorage::F32(v) => Ok(&v[o..e]),
        _ => candle_core::bail!("{op}: f32 only, got {:?}", s.dtype()),
    }
}
