//! Depthwise 2D convolution (one filter per channel, depth multiplier 1)
//! on NCHW f32 buffers — TFLite's `DEPTHWISE_CONV_2D` as BlazePose uses it.
//!
//! Why a kernel of its own: candle runs a grouped convolution as one
//! convolution per group (CANDLE-NOTES.md measured 19x slower than PyTorch
//! on a depthwise layer), and BlazePose has 66 depthwise layers on inputs up
//! to 128x128. Here each channel is a small stencil over a contiguous plane;
//! channels run in parallel on rayon.

use rayon::prelude::*;

use crate::kernel::simd::fmadd;

/// Geometry of one depthwise convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    /// Channels.
    pub c: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height and width.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (rows, columns).
    pub stride: (usize, usize),
    /// Dilation (rows, columns).
    pub dilation: (usize, usize),
    /// Zero padding before the first row and column.
    pub pad_before: (usize, usize),
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

/// `out[c, oy, ox] = clamp(bias[c] + sum w[c, ky, kx] * x[c, oy*sh + ky*dh - ph, ox*sw + kx*dw - pw])`
/// with zeros outside the input, for one image; `clamp` is the fused
/// activation's `(lo, hi)` (infinite bounds for none).
///
/// `x` is `(c, h, w)`, `weight` is `(c, kh, kw)`, `bias` is `(c,)` or empty,
/// `out` is `(c, oh, ow)`. Returns `false` (and writes nothing) when a slice
/// length does not match the geometry.
///
/// Each output row is finished (all taps, bias, activation) in registers,
/// a block of columns at a time (see `channel`).
pub fn depthwise_conv(
    g: &DepthwiseGeometry,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    clamp: (f32, f32),
    out: &mut [f32],
) -> bool {
    // x: (C, H, W), weight: (C, KH, KW), out: (C, OH, OW)
    let plane = g.h * g.w;
    let kplane = g.kh * g.kw;
    let oplane = g.oh * g.ow;
    if x.len() != g.c * plane
        || weight.len() != g.c * kplane
        || out.len() != g.c * oplane
        || !(bias.is_empty() || bias.len() == g.c)
        || g.stride.0 == 0
        || g.stride.1 == 0
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    let fma = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let fma = false;
    // At least ~16k outputs per task: BlazePose's late layers are hundreds
    // of 2x2 to 8x8 planes, where a task per channel costs more than it does.
    out.par_chunks_mut(oplane.max(1))
        .with_min_len((16_384 / oplane.max(1)).max(1))
        .enumerate()
        .for_each_init(Vec::new, |pad, (c, o)| {
            let xin = &x[c * plane..(c + 1) * plane];
            let k = &weight[c * kplane..(c + 1) * kplane];
            let b = bias.get(c).copied().unwrap_or(0.0);
            #[cfg(target_arch = "x86_64")]
            if fma {
                // SAFETY: the CPU supports the features the function is compiled for.
                unsafe { channel_avx2(g, xin, k, b, clamp, o, pad) };
                return;
            }
            let _ = fma;
            channel::<false>(g, xin, k, b, clamp, o, pad);
        });
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn channel_avx2(
    g: &DepthwiseGeometry,
    x: &[f32],
    k: &[f32],
    b: f32,
    clamp: (f32, f32),
    o: &mut [f32],
    pad: &mut Vec<f32>,
) {
    channel::<true>(g, x, k, b, clamp, o, pad)
}

/// Output columns per register block of [`channel`]: four AVX2 vectors
/// (the rest of a row takes blocks of 8).
const BLOCK: usize = 32;

/// One channel: `x` `(H, W)`, `k` `(KH, KW)`, `o` `(OH, OW)`; `pad` is
/// the caller's scratch.
///
/// The input is first copied into `pad` with its zero border (and enough
/// zero columns on the right for a whole last block), so that every tap of
/// every output column reads inside the padded plane: then each row goes
/// [`BLOCK`] or 8 columns at a time with the sums held in registers across
/// all taps, no bounds checks in the loop. BlazePose's later layers are
/// 2x2 to 16x16 planes with 5x5 kernels, where checking the border per tap
/// cost more than the copy.
#[inline(always)]
fn channel<const FMA: bool>(
    g: &DepthwiseGeometry,
    x: &[f32],
    k: &[f32],
    b: f32,
    clamp: (f32, f32),
    o: &mut [f32],
    pad: &mut Vec<f32>,
) {
    if g.oh == 0 || g.ow == 0 {
        return;
    }
    let (pt, pl) = g.pad_before;
    let owr = g.ow.div_ceil(8) * 8;
    let pw = ((owr - 1) * g.stride.1 + (g.kw - 1) * g.dilation.1 + 1).max(pl + g.w);
    let ph = ((g.oh - 1) * g.stride.0 + (g.kh - 1) * g.dilation.0 + 1).max(pt + g.h);
    pad.clear();
    pad.resize(ph * pw, 0.0);
    for (r, row) in x.chunks_exact(g.w.max(1)).enumerate().take(g.h) {
        let at = (r + pt) * pw + pl;
        pad[at..at + g.w].copy_from_slice(row);
    }
    let plane = Padded {
        data: pad,
        width: pw,
    };
    for (oy, orow) in o.chunks_exact_mut(g.ow).enumerate().take(g.oh) {
        let mut ox = 0;
        while ox + BLOCK <= owr {
            block::<FMA, BLOCK>(g, &plane, k, b, clamp, oy, ox, orow);
            ox += BLOCK;
        }
        while ox < owr {
            block::<FMA, 8>(g, &plane, k, b, clamp, oy, ox, orow);
            ox += 8;
        }
    }
}

/// A zero-padded input plane, row-major.
struct Padded<'a> {
    data: &'a [f32],
    width: usize,
}

/// Output columns `ox..ox + B` of row `oy` (those that exist), all taps
/// summed in `B` registers, then bias and clamp applied.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block<const FMA: bool, const B: usize>(
    g: &DepthwiseGeometry,
    plane: &Padded<'_>,
    k: &[f32],
    b: f32,
    (lo, hi): (f32, f32),
    oy: usize,
    ox: usize,
    orow: &mut [f32],
) {
    let (s, d) = (g.stride.1, g.dilation.1);
    let mut acc = [b; B];
    for ky in 0..g.kh {
        let r = oy * g.stride.0 + ky * g.dilation.0;
        let row = &plane.data[r * plane.width..(r + 1) * plane.width];
        for kx in 0..g.kw {
            let wv = k[ky * g.kw + kx];
            let base = ox * s + kx * d;
            if s == 1 {
                let src: &[f32; B] = row[base..base + B].try_into().expect("B columns");
                for j in 0..B {
                    acc[j] = fmadd::<FMA>(wv, src[j], acc[j]);
                }
            } else {
                let src = &row[base..base + (B - 1) * s + 1];
                for j in 0..B {
                    acc[j] = fmadd::<FMA>(wv, src[j * s], acc[j]);
                }
            }
        }
    }
    let n = B.min(orow.len().saturating_sub(ox));
    for (v, a) in orow[ox..ox + n].iter_mut().zip(acc) {
        // Comparisons rather than f32::max/min: plain vector max/min.
        let t = if a < lo { lo } else { a };
        *v = if t > hi { hi } else { t };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a direct evaluation of the definition, with padding, stride 2
    /// and dilation 2 on 2-channel inputs 5 rows high.
    #[test]
    fn matches_definition() {
        // Widths 20 and 75 take the register blocks of 8 and 32, overlapping.
        for &(stride, dil, pad, w) in &[
            ((1, 1), (1, 1), (1, 1), 6),
            ((2, 2), (1, 1), (0, 1), 6),
            ((1, 2), (2, 2), (2, 1), 6),
            ((1, 1), (1, 1), (1, 1), 20),
            ((2, 2), (1, 1), (0, 1), 20),
            ((1, 1), (1, 1), (1, 1), 75),
            ((2, 2), (1, 1), (0, 1), 75),
            ((1, 2), (2, 2), (2, 1), 75),
        ] {
            let (c, h, kh, kw) = (2, 5, 3, 3);
            let oh = (h + 2 * pad.0 - dil.0 * (kh - 1) - 1) / stride.0 + 1;
            let ow = (w + 2 * pad.1 - dil.1 * (kw - 1) - 1) / stride.1 + 1;
            let g = DepthwiseGeometry {
                c,
                h,
                w,
                kh,
                kw,
                stride,
                dilation: dil,
                pad_before: pad,
                oh,
                ow,
            };
            let x: Vec<f32> = (0..c * h * w)
                .map(|i| ((i * 7 % 11) as f32) - 5.0)
                .collect();
            let k: Vec<f32> = (0..c * kh * kw)
                .map(|i| ((i * 3 % 5) as f32) * 0.5 - 1.0)
                .collect();
            let b = [0.25f32, -1.0];
            let mut out = vec![0.0; c * oh * ow];
            assert!(depthwise_conv(
                &g,
                &x,
                &k,
                &b,
                (f32::NEG_INFINITY, f32::INFINITY),
                &mut out
            ));
            for ci in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = b[ci];
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride.0 + ky * dil.0) as isize - pad.0 as isize;
                                let ix = (ox * stride.1 + kx * dil.1) as isize - pad.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    s += k[ci * 9 + ky * 3 + kx]
                                        * x[ci * h * w + iy as usize * w + ix as usize];
                                }
                            }
                        }
                        let got = out[ci * oh * ow + oy * ow + ox];
                        assert!(
                            (got - s).abs() <= 1e-5 * s.abs().max(1.0),
                            "c{ci} y{oy} x{ox} {g:?}: {got} vs {s}"
                        );
                    }
                }
            }
        }
    }
}
