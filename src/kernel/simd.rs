//! Dense loops written so that LLVM vectorizes them, compiled twice on
//! x86-64 (baseline SSE2, and AVX2 + FMA chosen at run time): the
//! per-channel joint aggregation of graph convolutions and a rational
//! `tanh`.

/// Largest joint count the register-blocked aggregation handles; wider
/// skeletons take the plain loop.
pub const MAX_BLOCKED_JOINTS: usize = 32;

/// Per-channel joint aggregation of one output channel:
/// `y[t, u] = Σ_i Σ_v rows[i][t, v] · adj[(i, v), u]`.
///
/// - `rows[i]`: `(T, V)` row-major, the channel's values under subset `i`;
/// - `adj`: `(K·V, W)` row-major, row `i·V + v` holding `adj_i[u, v]` for
///   `u < V` and zeros up to the padded width `w` (see [`padded_width`]);
/// - `y`: `(T, V)` row-major, overwritten.
pub fn aggregate(rows: &[&[f32]], adj: &[f32], t: usize, v: usize, w: usize, y: &mut [f32]) {
    assert_eq!(w, padded_width(v), "aggregate: padded width");
    assert!(adj.len() >= rows.len() * v * w, "aggregate: adjacency size");
    assert!(y.len() >= t * v, "aggregate: output size");
    for r in rows {
        assert!(r.len() >= t * v, "aggregate: input rows");
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        unsafe { aggregate_avx2(rows, adj, t, v, w, y) };
        return;
    }
    aggregate_any::<false>(rows, adj, t, v, w, y);
}

/// The padded row width of the adjacency [`aggregate`] takes for `v`
/// joints: the next multiple of 8 up to [`MAX_BLOCKED_JOINTS`], else `v`.
pub fn padded_width(v: usize) -> usize {
    if v <= MAX_BLOCKED_JOINTS {
        v.div_ceil(8) * 8
    } else {
        v
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn aggregate_avx2(
    rows: &[&[f32]],
    adj: &[f32],
    t: usize,
    v: usize,
    w: usize,
    y: &mut [f32],
) {
    aggregate_any::<true>(rows, adj, t, v, w, y)
}

#[inline(always)]
fn aggregate_any<const FMA: bool>(
    rows: &[&[f32]],
    adj: &[f32],
    t: usize,
    v: usize,
    w: usize,
    y: &mut [f32],
) {
    match w {
        8 => blocked::<8, 12, FMA>(rows, adj, t, v, y),
        16 => blocked::<16, 6, FMA>(rows, adj, t, v, y),
        24 => blocked::<24, 4, FMA>(rows, adj, t, v, y),
        32 => blocked::<32, 3, FMA>(rows, adj, t, v, y),
        _ => plain::<FMA>(rows, adj, t, v, y),
    }
}

/// `a·b + c`, fused when `FMA` (for loops compiled with the `fma` feature).
#[inline(always)]
pub(crate) fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `R` frames at a time against `W`-wide adjacency rows: `R·W/8`
/// accumulator registers on AVX2.
#[inline(always)]
fn blocked<const W: usize, const R: usize, const FMA: bool>(
    rows: &[&[f32]],
    adj: &[f32],
    t: usize,
    v: usize,
    y: &mut [f32],
) {
    let mut t0 = 0;
    while t0 + R <= t {
        let mut acc = [[0f32; W]; R];
        for (i, row) in rows.iter().enumerate() {
            let frames: [&[f32]; R] = std::array::from_fn(|r| &row[(t0 + r) * v..(t0 + r + 1) * v]);
            for vv in 0..v {
                let a: &[f32; W] = adj[(i * v + vv) * W..(i * v + vv + 1) * W]
                    .try_into()
                    .expect("W-wide row");
                for r in 0..R {
                    let m = frames[r][vv];
                    for u in 0..W {
                        acc[r][u] = fmadd::<FMA>(m, a[u], acc[r][u]);
                    }
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            y[(t0 + r) * v..(t0 + r + 1) * v].copy_from_slice(&a[..v]);
        }
        t0 += R;
    }
    // The last t % R frames one at a time.
    while t0 < t {
        let mut acc = [0f32; W];
        for (i, row) in rows.iter().enumerate() {
            let frame = &row[t0 * v..(t0 + 1) * v];
            for (vv, &m) in frame.iter().enumerate() {
                let a: &[f32; W] = adj[(i * v + vv) * W..(i * v + vv + 1) * W]
                    .try_into()
                    .expect("W-wide row");
                for u in 0..W {
                    acc[u] = fmadd::<FMA>(m, a[u], acc[u]);
                }
            }
        }
        y[t0 * v..(t0 + 1) * v].copy_from_slice(&acc[..v]);
        t0 += 1;
    }
}

#[inline(always)]
fn plain<const FMA: bool>(rows: &[&[f32]], adj: &[f32], t: usize, v: usize, y: &mut [f32]) {
    for tt in 0..t {
        let out = &mut y[tt * v..(tt + 1) * v];
        out.fill(0.0);
        for (i, row) in rows.iter().enumerate() {
            for (vv, &m) in row[tt * v..(tt + 1) * v].iter().enumerate() {
                let a = &adj[(i * v + vv) * v..(i * v + vv + 1) * v];
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = fmadd::<FMA>(m, x, *o);
                }
            }
        }
    }
}

/// `x = tanh(x)` elementwise, to within 5e-7 absolute of `f32::tanh` (a few ulps near ±1).
///
/// A [13/6] rational approximation on `[-9, 9]` (beyond, `tanh` is ±1 in
/// f32), the form Eigen uses; branch-free, so it vectorizes.
pub fn tanh_inplace(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        unsafe { tanh_avx2(x) };
        return;
    }
    tanh_any::<false>(x);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tanh_avx2(x: &mut [f32]) {
    tanh_any::<true>(x)
}

#[inline(always)]
fn tanh_any<const FMA: bool>(xs: &mut [f32]) {
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_7e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    for x in xs.iter_mut() {
        let c = x.clamp(-9.0, 9.0);
        let c2 = c * c;
        let mut p = fmadd::<FMA>(c2, A13, A11);
        p = fmadd::<FMA>(c2, p, A9);
        p = fmadd::<FMA>(c2, p, A7);
        p = fmadd::<FMA>(c2, p, A5);
        p = fmadd::<FMA>(c2, p, A3);
        p = fmadd::<FMA>(c2, p, A1);
        p *= c;
        let mut q = fmadd::<FMA>(c2, B6, B4);
        q = fmadd::<FMA>(c2, q, B2);
        q = fmadd::<FMA>(c2, q, B0);
        *x = p / q;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_within_5e7_of_std() {
        let mut worst = 0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4; // [-20, 20]
            let mut y = [x];
            tanh_inplace(&mut y);
            let mut z = [x];
            tanh_any::<false>(&mut z);
            worst = worst
                .max((y[0] - x.tanh()).abs())
                .max((z[0] - x.tanh()).abs());
        }
        assert!(worst < 5e-7, "worst error {worst}");
    }

    #[test]
    fn aggregation_matches_the_definition_for_every_width() {
        for &(k, t, v) in &[(3, 7, 25), (3, 64, 20), (2, 5, 17), (1, 13, 8), (3, 4, 33)] {
            let w = padded_width(v);
            let rows: Vec<Vec<f32>> = (0..k)
                .map(|i| {
                    (0..t * v)
                        .map(|j| ((i * 31 + j) as f32 * 0.013).sin())
                        .collect()
                })
                .collect();
            // adj_i[u, v] = f(i, u, v)
            let f = |i: usize, u: usize, vv: usize| ((i * 7 + u * 3 + vv) as f32 * 0.021).cos();
            let mut adj = vec![0f32; k * v * w];
            for i in 0..k {
                for vv in 0..v {
                    for u in 0..v {
                        adj[(i * v + vv) * w + u] = f(i, u, vv);
                    }
                }
            }
            let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
            let mut y = vec![f32::NAN; t * v];
            aggregate(&refs, &adj, t, v, w, &mut y);
            let mut y0 = vec![f32::NAN; t * v];
            aggregate_any::<false>(&refs, &adj, t, v, w, &mut y0);
            for tt in 0..t {
                for u in 0..v {
                    let want: f32 = (0..k)
                        .flat_map(|i| (0..v).map(move |vv| (i, vv)))
                        .map(|(i, vv)| rows[i][tt * v + vv] * f(i, u, vv))
                        .sum();
                    let got = y[tt * v + u];
                    assert!((got - want).abs() < 1e-4, "k{k} t{t} v{v}: {got} vs {want}");
                    assert!((y0[tt * v + u] - want).abs() < 1e-4);
                }
            }
        }
    }
}
