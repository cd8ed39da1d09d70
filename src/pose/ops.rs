//! The TFLite operators BlazePose's two networks use, as loops over `f32`
//! slices in the [`Interpreter`](super::interpreter::Interpreter)'s
//! internal layout: NCHW for rank-4 tensors, other ranks as TFLite stores
//! them.
//!
//! Why slices and not candle tensors: each candle op allocates its output
//! and walks memory once, and a fused ReLU6 is two more ops (`clamp` is a
//! maximum and a minimum); on the 200-operator landmark network that
//! overhead and the page faults of fresh allocations were most of the time.
//! Here every operator writes into a buffer the interpreter planned at load,
//! bias and activation are applied while the output is in cache, and the
//! convolutions are one `gemm` call each ([`crate::kernel::matmul`], the
//! kernel candle itself uses on CPU).
//!
//! Semantics follow TFLite's reference kernels
//! (`tensorflow/lite/kernels/internal/reference`): SAME padding puts the odd
//! pixel after, bilinear resizing clamps at the border, fused activations
//! apply after the bias. Shapes are checked when the interpreter is built;
//! the functions here assume them (slice indexing still bounds-checks).

use super::depthwise::{depthwise_conv, DepthwiseGeometry};
use super::tflite::Activation;
use crate::kernel::{matmul, MatMut, MatRef};

/// `(lo, hi)` of a fused activation that is a clamp; `None` for tanh.
pub fn clamp_bounds(act: Activation) -> Option<(f32, f32)> {
    match act {
        Activation::None => Some((f32::NEG_INFINITY, f32::INFINITY)),
        Activation::Relu => Some((0.0, f32::INFINITY)),
        Activation::ReluN1To1 => Some((-1.0, 1.0)),
        Activation::Relu6 => Some((0.0, 6.0)),
        Activation::Tanh => None,
    }
}

/// Applies a fused activation in place.
pub fn activate(y: &mut [f32], act: Activation) {
    match clamp_bounds(act) {
        Some((lo, hi)) if lo == f32::NEG_INFINITY && hi == f32::INFINITY => {}
        Some(bounds) => bias_clamp(y, 0.0, bounds),
        None => y.iter_mut().for_each(|v| *v = v.tanh()),
    }
}

/// Output size and padding before, as TFLite computes them.
pub fn out_size(
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    same: bool,
) -> (usize, usize) {
    let eff = (k - 1) * dilation + 1;
    if same {
        let out = input.div_ceil(stride);
        let total = ((out.max(1) - 1) * stride + eff).saturating_sub(input);
        (out, total / 2)
    } else {
        ((input.saturating_sub(eff)) / stride + 1, 0)
    }
}

/// Geometry of one `CONV_2D` on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels, height, width.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Dilation (both axes).
    pub dilation: usize,
    /// Zero rows before the first input row.
    pub pad_top: usize,
    /// Zero columns before the first input column.
    pub pad_left: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl ConvGeometry {
    /// A 1x1 convolution without stride or padding: one matrix product on
    /// the input as it is.
    pub fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad_top == 0 && self.pad_left == 0
    }

    /// Fewer output channels than kernel taps (BlazePose's segmentation
    /// head: 8 channels to 1 at 256x256): im2col would write every input
    /// value `KH·KW` times to feed a one-row product, so [`conv2d`] sums
    /// per-channel stencils instead (one depthwise pass per output
    /// channel).
    pub fn few_outputs(&self) -> bool {
        !self.pointwise() && self.o < self.kh * self.kw
    }

    /// Length of the scratch buffer [`conv2d`] needs: the im2col matrix,
    /// or one stencil plane per input channel for [`Self::few_outputs`]
    /// (0 for pointwise).
    pub fn scratch_len(&self) -> usize {
        if self.pointwise() {
            0
        } else if self.few_outputs() {
            self.c * self.oh * self.ow
        } else {
            self.c * self.kh * self.kw * self.oh * self.ow
        }
    }

    /// The same stencil per channel, as a depthwise geometry.
    fn per_channel(&self) -> DepthwiseGeometry {
        DepthwiseGeometry {
            c: self.c,
            h: self.h,
            w: self.w,
            kh: self.kh,
            kw: self.kw,
            stride: (self.stride, self.stride),
            dilation: (self.dilation, self.dilation),
            pad_before: (self.pad_top, self.pad_left),
            oh: self.oh,
            ow: self.ow,
        }
    }
}

/// [`conv2d`] for [`ConvGeometry::few_outputs`]: for each output channel,
/// the `C` stencils of its filter into `scratch`, summed with the bias.
fn conv2d_few_outputs(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    act: Activation,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let n = g.oh * g.ow;
    let k = g.c * g.kh * g.kw;
    let dg = g.per_channel();
    let planes = &mut scratch[..g.c * n];
    let none = (f32::NEG_INFINITY, f32::INFINITY);
    for (o, yo) in y.chunks_exact_mut(n.max(1)).take(g.o).enumerate() {
        // planes: (C, OH, OW), the filter's slice for each input channel.
        let ok = depthwise_conv(&dg, x, &weight[o * k..(o + 1) * k], &[], none, planes);
        debug_assert!(ok, "geometry checked at load");
        yo.fill(bias.get(o).copied().unwrap_or(0.0));
        for p in planes.chunks_exact(n.max(1)) {
            yo.iter_mut().zip(p).for_each(|(v, &t)| *v += t);
        }
    }
    activate(y, act);
}

/// `y = act(W · im2col(x) + b)` for one image.
///
/// `x` `(C, H, W)`, `weight` `(O, C·KH·KW)` (rows in `(c, ky, kx)` order),
/// `bias` `(O,)` or empty, `scratch` at least [`ConvGeometry::scratch_len`],
/// `y` `(O, OH, OW)`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    act: Activation,
    scratch: &mut [f32],
    y: &mut [f32],
    threads: usize,
) {
    let k = g.c * g.kh * g.kw;
    let n = g.oh * g.ow;
    let y = &mut y[..g.o * n];
    if g.few_outputs() {
        return conv2d_few_outputs(g, x, weight, bias, act, scratch, y);
    }
    let rhs = if g.pointwise() {
        MatRef::dense(x, k, n)
    } else {
        let cols = &mut scratch[..k * n];
        im2col(g, x, cols);
        MatRef::dense(cols, k, n)
    };
    matmul(
        MatMut::dense(y, g.o, n),
        MatRef::dense(weight, g.o, k),
        rhs,
        false,
        threads,
    );
    // Bias and activation in one pass over the product.
    match clamp_bounds(act) {
        Some(bounds) => {
            for (i, row) in y.chunks_exact_mut(n.max(1)).enumerate() {
                bias_clamp(row, bias.get(i).copied().unwrap_or(0.0), bounds);
            }
        }
        None => {
            for (row, b) in y.chunks_exact_mut(n.max(1)).zip(bias) {
                row.iter_mut().for_each(|v| *v += b);
            }
            activate(y, act);
        }
    }
}

/// `v = clamp(v + b, lo, hi)`, written as comparisons so that it compiles
/// to vector max/min (NaN handling as `maxps`/`minps`, not `f32::max`).
fn bias_clamp(row: &mut [f32], b: f32, (lo, hi): (f32, f32)) {
    for v in row.iter_mut() {
        let t = *v + b;
        let t = if t < lo { lo } else { t };
        *v = if t > hi { hi } else { t };
    }
}

/// `cols[(c, ky, kx), (oy, ox)] = x[c, oy·s + ky·d - pt, ox·s + kx·d - pl]`, zero outside.
fn im2col(g: &ConvGeometry, x: &[f32], cols: &mut [f32]) {
    let n = g.oh * g.ow;
    let mut rows = cols.chunks_exact_mut(n.max(1));
    for plane in x.chunks_exact(g.h * g.w).take(g.c) {
        for ky in 0..g.kh {
            let dy = (ky * g.dilation) as isize - g.pad_top as isize;
            for kx in 0..g.kw {
                let dx = (kx * g.dilation) as isize - g.pad_left as isize;
                let Some(row) = rows.next() else { return };
                for (oy, out) in row.chunks_exact_mut(g.ow.max(1)).enumerate() {
                    let iy = (oy * g.stride) as isize + dy;
                    if iy < 0 || iy >= g.h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    // Columns whose input is inside the row: first..end.
                    let first = if dx < 0 {
                        ((-dx) as usize).div_ceil(g.stride).min(g.ow)
                    } else {
                        0
                    };
                    let end = if dx >= g.w as isize {
                        first
                    } else {
                        ((g.w as isize - dx) as usize)
                            .div_ceil(g.stride)
                            .clamp(first, g.ow)
                    };
                    out[..first].fill(0.0);
                    out[end..].fill(0.0);
                    if first < end {
                        let start = (first as isize * g.stride as isize + dx) as usize;
                        for (o, v) in out[first..end]
                            .iter_mut()
                            .zip(src[start..].iter().step_by(g.stride))
                        {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}

/// Row-major strides of `d`, zero along axes where `d` is 1 and `out` is
/// not (numpy broadcasting).
fn broadcast_strides(d: [usize; 4], out: [usize; 4]) -> [usize; 4] {
    let mut s = [0; 4];
    let mut acc = 1;
    for i in (0..4).rev() {
        s[i] = if d[i] == 1 && out[i] != 1 { 0 } else { acc };
        acc *= d[i];
    }
    s
}

/// `y = act(a + b)`, broadcasting size-1 axes of either operand (both
/// given as 4-d, rank-padded with leading ones).
pub fn add(
    a: (&[f32], [usize; 4]),
    b: (&[f32], [usize; 4]),
    act: Activation,
    y: (&mut [f32], [usize; 4]),
) {
    let (y, yd) = y;
    if a.1 == yd && b.1 == yd {
        for ((o, p), q) in y.iter_mut().zip(a.0).zip(b.0) {
            *o = p + q;
        }
    } else {
        let (sa, sb) = (broadcast_strides(a.1, yd), broadcast_strides(b.1, yd));
        let mut i = 0;
        for i0 in 0..yd[0] {
            for i1 in 0..yd[1] {
                for i2 in 0..yd[2] {
                    let ra = i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
                    let rb = i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
                    for i3 in 0..yd[3] {
                        y[i] = a.0[ra + i3 * sa[3]] + b.0[rb + i3 * sb[3]];
                        i += 1;
                    }
                }
            }
        }
    }
    activate(y, act);
}

/// VALID max pooling of `x` `(N·C, H, W)` planes into `y` `(N·C, OH, OW)`.
pub fn max_pool(
    x: &[f32],
    (h, w): (usize, usize),
    filter: (usize, usize),
    stride: (usize, usize),
    y: &mut [f32],
    (oh, ow): (usize, usize),
) {
    for (plane, out) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..filter.0 {
                    let row = &plane[(oy * stride.0 + ky) * w..];
                    for kx in 0..filter.1 {
                        m = m.max(row[ox * stride.1 + kx]);
                    }
                }
                out[oy * ow + ox] = m;
            }
        }
    }
}

/// Zero padding of a 4-d `x` by `(before, after)` per axis into `y`.
pub fn pad(x: &[f32], xd: [usize; 4], pads: [(usize, usize); 4], y: &mut [f32], yd: [usize; 4]) {
    y.fill(0.0);
    let row = xd[3];
    let mut src = x.chunks_exact(row.max(1));
    for i0 in 0..xd[0] {
        for i1 in 0..xd[1] {
            for i2 in 0..xd[2] {
                let Some(s) = src.next() else { return };
                let o = (((i0 + pads[0].0) * yd[1] + i1 + pads[1].0) * yd[2] + i2 + pads[2].0)
                    * yd[3]
                    + pads[3].0;
                y[o..o + row].copy_from_slice(s);
            }
        }
    }
}

/// Concatenation of 4-d parts along `axis`, then the fused activation.
pub fn concat(parts: &[(&[f32], [usize; 4])], axis: usize, act: Activation, y: &mut [f32]) {
    let outer: usize = parts
        .first()
        .map(|(_, d)| d[..axis].iter().product())
        .unwrap_or(0);
    let mut off = 0;
    for o in 0..outer {
        for (p, d) in parts {
            let chunk: usize = d[axis..].iter().product();
            y[off..off + chunk].copy_from_slice(&p[o * chunk..(o + 1) * chunk]);
            off += chunk;
        }
    }
    activate(y, act);
}

/// One output coordinate of a bilinear resize: the two input indices and
/// the weight of the second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tap {
    lo: usize,
    hi: usize,
    frac: f32,
}

/// The taps of TFLite's bilinear resize along one axis.
pub fn bilinear_taps(
    input: usize,
    output: usize,
    align_corners: bool,
    half_pixel: bool,
) -> Vec<Tap> {
    let scale = if align_corners && output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        input as f32 / output as f32
    };
    (0..output)
        .map(|o| {
            let v = if half_pixel {
                (o as f32 + 0.5) * scale - 0.5
            } else {
                o as f32 * scale
            };
            let last = input.saturating_sub(1);
            let lo = (v.floor().max(0.0) as usize).min(last);
            let hi = (v.ceil().max(0.0) as usize).min(last);
            Tap {
                lo,
                hi,
                frac: v - lo as f32,
            }
        })
        .collect()
}

/// Bilinear resize of `(N·C, IH, IW)` planes to `(N·C, OH, OW)`, along
/// the width first, then the height.
pub fn resize_bilinear(
    x: &[f32],
    (ih, iw): (usize, usize),
    rows: &[Tap],
    cols: &[Tap],
    y: &mut [f32],
) {
    let (oh, ow) = (rows.len(), cols.len());
    for (plane, out) in x.chunks_exact(ih * iw).zip(y.chunks_exact_mut(oh * ow)) {
        for (r, orow) in rows.iter().zip(out.chunks_exact_mut(ow.max(1))) {
            let (top, bottom) = (&plane[r.lo * iw..], &plane[r.hi * iw..]);
            for (c, o) in cols.iter().zip(orow.iter_mut()) {
                let t = top[c.lo] * (1.0 - c.frac) + top[c.hi] * c.frac;
                let b = bottom[c.lo] * (1.0 - c.frac) + bottom[c.hi] * c.frac;
                *o = t * (1.0 - r.frac) + b * r.frac;
            }
        }
    }
}

/// `y = 1 / (1 + exp(-x))`.
pub fn logistic(x: &[f32], y: &mut [f32]) {
    for (o, v) in y.iter_mut().zip(x) {
        *o = 1.0 / (1.0 + (-v).exp());
    }
}

/// TFLite's DEPTH_TO_SPACE in NCHW: `(N, b·b·C, H, W) -> (N, C, H·b, W·b)`,
/// `y[n, c, h·b + i, w·b + j] = x[n, (i·b + j)·C + c, h, w]`.
pub fn depth_to_space(x: &[f32], [n, cbb, h, w]: [usize; 4], b: usize, y: &mut [f32]) {
    let c = cbb / (b * b);
    let (oh, ow) = (h * b, w * b);
    for ni in 0..n {
        for i in 0..b {
            for j in 0..b {
                for ci in 0..c {
                    let src = &x[((ni * cbb + (i * b + j) * c + ci) * h) * w..][..h * w];
                    let dst = &mut y[(ni * c + ci) * oh * ow..][..oh * ow];
                    for hh in 0..h {
                        let out = &mut dst[(hh * b + i) * ow..][..ow];
                        for (ww, v) in src[hh * w..(hh + 1) * w].iter().enumerate() {
                            out[ww * b + j] = *v;
                        }
                    }
                }
            }
        }
    }
}

/// NHWC `(N, H, W, C)` -> NCHW.
pub fn nhwc_to_nchw(x: &[f32], [n, h, w, c]: [usize; 4], y: &mut [f32]) {
    let hw = h * w;
    for ni in 0..n {
        let (src, dst) = (&x[ni * hw * c..][..hw * c], &mut y[ni * hw * c..][..hw * c]);
        for (p, pixel) in src.chunks_exact(c.max(1)).enumerate() {
            for (ci, v) in pixel.iter().enumerate() {
                dst[ci * hw + p] = *v;
            }
        }
    }
}

/// NCHW `(N, C, H, W)` -> NHWC.
pub fn nchw_to_nhwc(x: &[f32], [n, c, h, w]: [usize; 4], y: &mut [f32]) {
    let hw = h * w;
    for ni in 0..n {
        let (src, dst) = (&x[ni * hw * c..][..hw * c], &mut y[ni * hw * c..][..hw * c]);
        for (ci, plane) in src.chunks_exact(hw.max(1)).enumerate() {
            for (p, v) in plane.iter().enumerate() {
                dst[p * c + ci] = *v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_padded_convolution_matches_the_definition() {
        let (c, h, w, k) = (2, 5, 6, 3);
        // 3 outputs: per-channel stencils; 12: im2col and one product.
        for (stride, dilation, same, o) in [
            (1, 1, true, 3),
            (2, 1, true, 3),
            (1, 2, false, 3),
            (2, 1, false, 3),
            (1, 1, true, 12),
            (2, 1, true, 12),
            (1, 2, false, 12),
            (2, 1, false, 12),
        ] {
            let (oh, pt) = out_size(h, k, stride, dilation, same);
            let (ow, pl) = out_size(w, k, stride, dilation, same);
            let g = ConvGeometry {
                c,
                h,
                w,
                o,
                kh: k,
                kw: k,
                stride,
                dilation,
                pad_top: pt,
                pad_left: pl,
                oh,
                ow,
            };
            let x: Vec<f32> = (0..c * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
            let wt: Vec<f32> = (0..o * c * k * k)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            assert_eq!(g.few_outputs(), o < k * k);
            let bias: Vec<f32> = (0..o).map(|i| 0.5 - 0.25 * i as f32).collect();
            let mut scratch = vec![f32::NAN; g.scratch_len()];
            let mut y = vec![f32::NAN; o * oh * ow];
            conv2d(
                &g,
                &x,
                &wt,
                &bias,
                Activation::Relu6,
                &mut scratch,
                &mut y,
                2,
            );
            for oi in 0..o {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = bias[oi];
                        for ci in 0..c {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * stride + ky * dilation) as isize - pt as isize;
                                    let ix = (ox * stride + kx * dilation) as isize - pl as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        s += wt[((oi * c + ci) * k + ky) * k + kx]
                                            * x[(ci * h + iy as usize) * w + ix as usize];
                                    }
                                }
                            }
                        }
                        let got = y[(oi * oh + oy) * ow + ox];
                        assert!((got - s.clamp(0.0, 6.0)).abs() < 1e-5, "{g:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn broadcast_add_repeats_size_one_axes() {
        let a: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let b = [100.0, 200.0, 300.0];
        let mut y = vec![0.0; 12];
        // (1, 3, 2, 2) + (1, 3, 1, 1)
        add(
            (&a, [1, 3, 2, 2]),
            (&b, [1, 3, 1, 1]),
            Activation::None,
            (&mut y, [1, 3, 2, 2]),
        );
        let want: Vec<f32> = (0..12).map(|i| i as f32 + b[i / 4]).collect();
        assert_eq!(y, want);
    }

    #[test]
    fn layout_round_trip_and_depth_to_space() {
        let d = [2, 3, 4, 5]; // NHWC
        let x: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let mut nchw = vec![0.0; 120];
        nhwc_to_nchw(&x, d, &mut nchw);
        // n1 c2 h1 w3: NCHW ((1·5 + 2)·3 + 1)·4 + 3, NHWC ((1·3 + 1)·4 + 3)·5 + 2
        assert_eq!(
            nchw[((5 + 2) * 3 + 1) * 4 + 3],
            x[((3 + 1) * 4 + 3) * 5 + 2]
        );
        let mut back = vec![0.0; 120];
        nchw_to_nhwc(&nchw, [2, 5, 3, 4], &mut back);
        assert_eq!(back, x);
        // DEPTH_TO_SPACE with b = 2 on (1, 4, 1, 1): the 2x2 output reads
        // channels in (i, j) order.
        let mut y = vec![0.0; 4];
        depth_to_space(&[1.0, 2.0, 3.0, 4.0], [1, 4, 1, 1], 2, &mut y);
        assert_eq!(y, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn bilinear_resize_doubles_a_ramp() {
        // Half-pixel centres, 2 -> 4: 0, 0.25, 0.75, 1 of the way.
        let taps = bilinear_taps(2, 4, false, true);
        let one = bilinear_taps(1, 1, false, false);
        let mut y = vec![0.0; 4];
        resize_bilinear(&[0.0, 4.0], (1, 2), &one, &taps, &mut y);
        assert_eq!(y, [0.0, 1.0, 3.0, 4.0]);
    }
}
