//! A bounds-checked interface to `gemm::gemm` (the f32 kernel candle also
//! uses), for strided row-major views into caller-owned buffers.

use gemm::Parallelism;

/// A read-only matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// A writable matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

impl<'a> MatRef<'a> {
    /// A strided view; panics if it reaches past `data` (a caller bug, not
    /// an input error: plans size their buffers from the model's shapes).
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(
            span(rows, cols, rs, cs) <= data.len(),
            "MatRef {rows}x{cols} (rs {rs}, cs {cs}) over {} elements",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A contiguous row-major `rows x cols` matrix at the start of `data`.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }
}

impl<'a> MatMut<'a> {
    /// A strided view; panics if it reaches past `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(
            span(rows, cols, rs, cs) <= data.len(),
            "MatMut {rows}x{cols} (rs {rs}, cs {cs}) over {} elements",
            data.len()
        );
        assert!(
            rows <= 1 || cols <= 1 || (rs != 0 && cs != 0),
            "MatMut with a zero stride aliases its elements"
        );
        Self {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A contiguous row-major `rows x cols` matrix at the start of `data`.
    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `threads > 1`
/// splits the product over the rayon pool.
///
/// Panics on mismatched shapes (a plan bug).
pub fn matmul(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>, accumulate: bool, threads: usize) {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    assert_eq!(lhs.rows, m, "matmul: lhs rows");
    assert_eq!(rhs.rows, k, "matmul: rhs rows");
    assert_eq!(rhs.cols, n, "matmul: rhs cols");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst.data[r * dst.rs + c * dst.cs] = 0.0;
                }
            }
        }
        return;
    }
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the three views were checked against their slices' lengths
    // at construction (every index (r, c) with r < rows, c < cols is in
    // bounds), `dst` is borrowed mutably so it aliases neither input, and
    // its strides are non-zero (checked in `MatMut::new`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn dense_and_strided_products_match_the_definition() {
        let (m, n, k) = (7, 5, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, n, k);
        let mut c = vec![0f32; m * n];
        matmul(
            MatMut::dense(&mut c, m, n),
            MatRef::dense(&a, m, k),
            MatRef::dense(&b, k, n),
            false,
            1,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        // Transposed destination (column-major), accumulating twice.
        let mut ct = vec![0f32; m * n];
        for _ in 0..2 {
            matmul(
                MatMut::new(&mut ct, m, n, 1, m),
                MatRef::dense(&a, m, k),
                MatRef::dense(&b, k, n),
                true,
                2,
            );
        }
        for i in 0..m {
            for j in 0..n {
                assert!((ct[j * m + i] - 2.0 * want[i * n + j]).abs() < 1e-5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "MatRef")]
    fn a_view_past_its_buffer_is_refused() {
        let a = vec![0f32; 5];
        let _ = MatRef::dense(&a, 2, 3);
    }
}
