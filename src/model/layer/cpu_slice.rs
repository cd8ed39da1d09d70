//! The input accessor and the output allocation of the layers' custom CPU
//! ops.

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

/// An output buffer of `len` f32 that the op overwrites in full, without
/// the zero fill of `vec![0.0; len]`: on memory the allocator reuses, a
/// zeroed allocation is a `memset`, and those were 13 % of a CTR-GCN
/// training step (`perf`, batch 16) for buffers whose every element is
/// written next. candle's own CPU kernels allocate their outputs the same
/// way.
///
/// The elements start uninitialised (clippy's `uninit_vec`): the callers
/// only write them (copies, non-accumulating gemm, element-wise stores)
/// before the first read, which is what Miri accepts; a `MaybeUninit`
/// buffer would need every kernel, gemm's included, to take one.
///
/// # Safety
///
/// The caller writes every element before any is read, and before the
/// vector is returned or dropped on a path that reads it.
#[allow(clippy::uninit_vec)]
pub(crate) unsafe fn output_buffer(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: the capacity is `len`; initialising the elements is the
    // caller's contract.
    unsafe { v.set_len(len) };
    v
}

/// [`output_buffer`] when `written_in_full`, else `len` zeros: for ops
/// that write every element except in degenerate shapes (an empty inner
/// dimension, no subsets, no frames), where the zeros are the answer.
///
/// # Safety
///
/// When `written_in_full`, as for [`output_buffer`].
pub(crate) unsafe fn output_buffer_or_zeros(len: usize, written_in_full: bool) -> Vec<f32> {
    if written_in_full {
        // SAFETY: forwarded to the caller.
        unsafe { output_buffer(len) }
    } else {
        vec![0f32; len]
    }
}
