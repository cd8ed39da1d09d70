//! Depthwise 2D convolution (one filter per channel, depth multiplier 1)
//! on NCHW f32 buffers — TFLite's `DEPTHWISE_CONV_2D` as BlazePose uses it.
//!
//! Why a kernel of its own: candle runs a grouped convolution as one
//! convolution per group (CANDLE-NOTES.md measured 19x slower than PyTorch
//! on a depthwise layer), and BlazePose has 66 depthwise layers on inputs up
//! to 128x128. Here each channel is a small stencil over a contiguous plane;
//! channels run in parallel on rayon.

use rayon::prelude::*;

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

/// `out[c, oy, ox] = bias[c] + sum w[c, ky, kx] * x[c, oy*sh + ky*dh - ph, ox*sw + kx*dw - pw]`
/// with zeros outside the input, for one image.
///
/// `x` is `(c, h, w)`, `weight` is `(c, kh, kw)`, `bias` is `(c,)` or empty,
/// `out` is `(c, oh, ow)`. Returns `false` (and writes nothing) when a slice
/// length does not match the geometry.
pub fn depthwise_conv(
    g: &DepthwiseGeometry,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
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
    out.par_chunks_mut(oplane.max(1))
        .enumerate()
        .for_each(|(c, o)| {
            let xin = &x[c * plane..(c + 1) * plane];
            let k = &weight[c * kplane..(c + 1) * kplane];
            let b = bias.get(c).copied().unwrap_or(0.0);
            o.fill(b);
            for ky in 0..g.kh {
                let dy = (ky * g.dilation.0) as isize - g.pad_before.0 as isize;
                for kx in 0..g.kw {
                    let dx = (kx * g.dilation.1) as isize - g.pad_before.1 as isize;
                    let wv = k[ky * g.kw + kx];
                    for oy in 0..g.oh {
                        let iy = (oy * g.stride.0) as isize + dy;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        let row = &xin[iy as usize * g.w..(iy as usize + 1) * g.w];
                        let orow = &mut o[oy * g.ow..(oy + 1) * g.ow];
                        // The columns whose input stays inside the row.
                        let lo = if dx < 0 {
                            ((-dx) as usize).div_ceil(g.stride.1)
                        } else {
                            0
                        };
                        let hi = if (g.w as isize) <= dx {
                            0
                        } else {
                            ((g.w as isize - dx) as usize)
                                .div_ceil(g.stride.1)
                                .min(g.ow)
                        };
                        if g.stride.1 == 1 {
                            let start = (lo as isize + dx) as usize;
                            if lo < hi {
                                for (ov, iv) in
                                    orow[lo..hi].iter_mut().zip(&row[start..start + hi - lo])
                                {
                                    *ov += wv * iv;
                                }
                            }
                        } else {
                            for (ox, ov) in orow.iter_mut().enumerate().take(hi).skip(lo) {
                                *ov += wv * row[((ox * g.stride.1) as isize + dx) as usize];
                            }
                        }
                    }
                }
            }
        });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a direct evaluation of the definition, with padding, stride 2
    /// and dilation 2 on a 2-channel 5x6 input.
    #[test]
    fn matches_definition() {
        for &(stride, dil, pad) in &[
            ((1, 1), (1, 1), (1, 1)),
            ((2, 2), (1, 1), (0, 1)),
            ((1, 2), (2, 2), (2, 1)),
        ] {
            let (c, h, w, kh, kw) = (2, 5, 6, 3, 3);
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
            assert!(depthwise_conv(&g, &x, &k, &b, &mut out));
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
                        assert_eq!(
                            out[ci * oh * ow + oy * ow + ox],
                            s,
                            "c{ci} y{oy} x{ox} {g:?}"
                        );
                    }
                }
            }
        }
    }
}
