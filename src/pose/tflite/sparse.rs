//! TensorFlow Lite's sparse tensor format (a variant of TACO), and its
//! expansion to a dense row-major array — what the `DENSIFY` operator does.
//!
//! Why: MediaPipe's pose detector stores 38 of its 1x1 convolution kernels
//! as CSR-compressed fp16 tensors behind `DENSIFY`; skelact expands them once
//! at load time. The format (TFLite `schema.fbs`, `SparsityParameters`): a
//! tensor of shape `(d0 .. dn-1)`, optionally cut into `k` block dimensions
//! `(dn .. dn+k-1)`, is traversed in `traversal_order` (n + k entries; the
//! first n a permutation of the tensor dimensions, the last k of the block
//! dimensions, `block_map` saying which tensor dimension each block
//! dimension divides). Each traversed level is either dense (all
//! `dense_size` coordinates present) or CSR (`array_segments` cuts
//! `array_indices` per element of the previous level). The values are
//! stored in traversal order. This follows TFLite's
//! `FormatConverter::SparseToDense`, with every index checked.

use crate::{Error, Result};

/// The most elements a densified tensor may have (1 Gi f32 values): a
/// corrupt shape must not make skelact allocate without bound.
pub const MAX_DENSE_ELEMENTS: usize = 1 << 28;

/// How one traversed level of a sparse tensor is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimFormat {
    /// Every coordinate `0..size` is present.
    Dense(usize),
    /// Compressed sparse row: the coordinates present under element `p` of
    /// the previous level are `indices[segments[p]..segments[p + 1]]`.
    SparseCsr {
        /// Offsets into `indices`, one more than the previous level has elements.
        segments: Vec<usize>,
        /// The coordinates present, within this level's dimension.
        indices: Vec<usize>,
    },
}

/// A tensor's sparsity parameters, as read from the model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparsity {
    /// The order the n + k dimensions are traversed in.
    pub traversal_order: Vec<usize>,
    /// For each block dimension, the tensor dimension it divides.
    pub block_map: Vec<usize>,
    /// One entry per traversed level (n + k).
    pub levels: Vec<DimFormat>,
}

/// Expands `values` (stored in traversal order) into a dense row-major
/// array of `dense_shape`; positions not stored are `T::default()`.
pub fn densify<T: Copy + Default>(
    values: &[T],
    dense_shape: &[usize],
    sparsity: &Sparsity,
) -> Result<Vec<T>> {
    // values: (nnz,) -> (prod(dense_shape),)
    let n = dense_shape.len();
    let k = sparsity.block_map.len();
    let levels = n + k;
    if sparsity.traversal_order.len() != levels || sparsity.levels.len() != levels {
        return Err(Error::tflite(format!(
            "sparse tensor of rank {n} with {k} block dims needs {levels} traversal levels, found {} orders and {} levels",
            sparsity.traversal_order.len(),
            sparsity.levels.len()
        )));
    }
    let mut seen = vec![false; levels];
    for (i, &d) in sparsity.traversal_order.iter().enumerate() {
        let in_range = if i < n { d < n } else { d >= n && d < levels };
        if !in_range || seen[d] {
            return Err(Error::tflite(format!(
                "sparse traversal order {:?} is not a permutation of the dense then block dimensions",
                sparsity.traversal_order
            )));
        }
        seen[d] = true;
    }
    // block_size[j]: the size of block dimension n + j, read from its level.
    let mut block_size = vec![0usize; k];
    for (i, &d) in sparsity.traversal_order.iter().enumerate().skip(n) {
        block_size[d - n] = match sparsity.levels[i] {
            DimFormat::Dense(s) if s > 0 => s,
            _ => {
                return Err(Error::tflite(
                    "a sparse block dimension must be dense and non-empty",
                ))
            }
        };
    }
    for (j, &m) in sparsity.block_map.iter().enumerate() {
        if m >= n || dense_shape[m] % block_size[j] != 0 {
            return Err(Error::tflite(format!(
                "sparse block {j} (size {}) does not divide tensor dimension {m} of {dense_shape:?}",
                block_size[j]
            )));
        }
    }
    let total = dense_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&t| t <= MAX_DENSE_ELEMENTS)
        .ok_or_else(|| Error::tflite(format!("dense shape {dense_shape:?} is too large")))?;
    let mut dense = vec![T::default(); total];
    let mut walk = Walk {
        values,
        dense_shape,
        sparsity,
        block_size: &block_size,
        next_value: 0,
        indices: vec![0; levels],
        dense: &mut dense,
    };
    walk.level(0, 0)?;
    if walk.next_value != values.len() {
        return Err(Error::tflite(format!(
            "sparse tensor stores {} values, its index arrays address {}",
            values.len(),
            walk.next_value
        )));
    }
    Ok(dense)
}

/// The state of one depth-first walk over the traversal levels.
struct Walk<'a, T> {
    values: &'a [T],
    dense_shape: &'a [usize],
    sparsity: &'a Sparsity,
    block_size: &'a [usize],
    next_value: usize,
    indices: Vec<usize>,
    dense: &'a mut [T],
}

impl<T: Copy> Walk<'_, T> {
    /// Visits level `level` under element `prev` of the level before.
    fn level(&mut self, level: usize, prev: usize) -> Result<()> {
        if level == self.indices.len() {
            return self.store();
        }
        match &self.sparsity.levels[level] {
            DimFormat::Dense(size) => {
                let size = *size;
                if size > MAX_DENSE_ELEMENTS {
                    return Err(Error::tflite("sparse dense level is too large"));
                }
                for i in 0..size {
                    self.indices[level] = i;
                    let pos = prev
                        .checked_mul(size)
                        .and_then(|p| p.checked_add(i))
                        .ok_or_else(|| Error::tflite("sparse position overflows"))?;
                    self.level(level + 1, pos)?;
                }
            }
            DimFormat::SparseCsr { segments, indices } => {
                let (Some(&lo), Some(&hi)) = (segments.get(prev), segments.get(prev + 1)) else {
                    return Err(Error::tflite(format!(
                        "sparse level {level}: segment {prev} out of {} offsets",
                        segments.len()
                    )));
                };
                if lo > hi || hi > indices.len() {
                    return Err(Error::tflite(format!(
                        "sparse level {level}: segment {lo}..{hi} outside {} indices",
                        indices.len()
                    )));
                }
                for (p, &index) in indices.iter().enumerate().take(hi).skip(lo) {
                    self.indices[level] = index;
                    self.level(level + 1, p)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the next stored value at the dense position of `indices`.
    fn store(&mut self) -> Result<()> {
        let n = self.dense_shape.len();
        let mut orig = vec![0usize; n];
        for (i, &d) in self.sparsity.traversal_order.iter().enumerate() {
            if i < n {
                orig[d] = self.indices[i];
            } else {
                let b = d - n;
                let m = self.sparsity.block_map[b];
                orig[m] = orig[m] * self.block_size[b] + self.indices[i];
            }
        }
        let mut flat = 0usize;
        for (&o, &s) in orig.iter().zip(self.dense_shape) {
            if o >= s {
                return Err(Error::tflite(format!(
                    "sparse index {orig:?} outside shape {:?}",
                    self.dense_shape
                )));
            }
            flat = flat * s + o;
        }
        let value = self
            .values
            .get(self.next_value)
            .ok_or_else(|| Error::tflite("sparse index arrays address more values than stored"))?;
        self.dense[flat] = *value;
        self.next_value += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CSR over the last dimension of a 3x4 matrix, as the pose detector's
    /// kernels are stored.
    #[test]
    fn csr_rows() {
        // [[1 0 0 2]
        //  [0 0 0 0]
        //  [0 3 4 0]]
        let sp = Sparsity {
            traversal_order: vec![0, 1],
            block_map: vec![],
            levels: vec![
                DimFormat::Dense(3),
                DimFormat::SparseCsr {
                    segments: vec![0, 2, 2, 4],
                    indices: vec![0, 3, 1, 2],
                },
            ],
        };
        let d = densify(&[1.0f32, 2.0, 3.0, 4.0], &[3, 4], &sp).unwrap();
        assert_eq!(d, vec![1., 0., 0., 2., 0., 0., 0., 0., 0., 3., 4., 0.]);
    }

    /// Block-sparse 4x4 with 2x2 blocks (TFLite's sparse_tensor.json case):
    /// only blocks (0,0) and (1,1) are stored, row-major inside a block.
    #[test]
    fn blocks_2x2() {
        // [[1 2 0 0]
        //  [3 4 0 0]
        //  [0 0 5 6]
        //  [0 0 7 8]]
        let sp = Sparsity {
            traversal_order: vec![0, 1, 2, 3],
            block_map: vec![0, 1],
            levels: vec![
                DimFormat::Dense(2),
                DimFormat::SparseCsr {
                    segments: vec![0, 1, 2],
                    indices: vec![0, 1],
                },
                DimFormat::Dense(2),
                DimFormat::Dense(2),
            ],
        };
        let d = densify(&[1, 2, 3, 4, 5, 6, 7, 8], &[4, 4], &sp).unwrap();
        assert_eq!(d, vec![1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 5, 6, 0, 0, 7, 8]);
    }

    /// Column-major traversal: the first n entries permute the dimensions.
    #[test]
    fn column_major() {
        let sp = Sparsity {
            traversal_order: vec![1, 0],
            block_map: vec![],
            levels: vec![DimFormat::Dense(3), DimFormat::Dense(2)],
        };
        // dense 2x3 [[a b c] [d e f]] stored by columns: a d b e c f
        let d = densify(&[1, 4, 2, 5, 3, 6], &[2, 3], &sp).unwrap();
        assert_eq!(d, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn bad_indices_are_errors() {
        let mut sp = Sparsity {
            traversal_order: vec![0, 1],
            block_map: vec![],
            levels: vec![
                DimFormat::Dense(2),
                DimFormat::SparseCsr {
                    segments: vec![0, 1, 2],
                    indices: vec![0, 7],
                },
            ],
        };
        assert!(densify(&[1, 2], &[2, 4], &sp).is_err()); // index 7 >= 4
        sp.levels[1] = DimFormat::SparseCsr {
            segments: vec![0, 3],
            indices: vec![0],
        };
        assert!(densify(&[1, 2], &[2, 4], &sp).is_err()); // segments too short / past the end
        sp.traversal_order = vec![0, 0];
        assert!(densify(&[1, 2], &[2, 4], &sp).is_err()); // not a permutation
    }
}
