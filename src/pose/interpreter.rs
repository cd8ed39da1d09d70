//! Runs a TFLite graph ([`Model`]) on the CPU, for exactly the operators
//! MediaPipe BlazePose's detector and landmark networks use.
//!
//! What: constants behind `DEQUANTIZE` (fp16 weights) and `DENSIFY` (CSR
//! weights) are expanded once when the interpreter is built; kernels are
//! re-laid out, every operator's output shape is derived from its inputs
//! and checked against the file, and each activation tensor gets a buffer
//! from a pool planned by liveness (a buffer is reused once the last
//! operator reading its tensor has run). A run then executes the operators
//! in file order (TFLite stores them topologically sorted) over those
//! buffers with the slice kernels of [`super::ops`] and
//! [`super::depthwise`]: no allocation and no candle op per operator.
//!
//! Why not candle ops: the landmark network is ~200 operators on inputs up
//! to 128x128; as candle tensors each allocated its output (page faults
//! were a fifth of the time), a fused ReLU6 was two more passes, and the
//! network ran at about a quarter of MediaPipe's speed. The convolutions
//! still run on the `gemm` crate, candle's own CPU matrix kernel.
//!
//! Layout: TFLite is NHWC. Inside, every rank-4 activation is held NCHW;
//! rank-4 inputs and outputs are transposed at the graph boundary, and
//! `RESHAPE` (whose meaning depends on memory order) goes through NHWC
//! explicitly.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

use super::depthwise::{depthwise_conv, DepthwiseGeometry};
use super::ops::{self, ConvGeometry, Tap};
use super::tflite::sparse::densify;
use super::tflite::{Activation, Data, Model, Op, Padding};
use crate::{Error, Result};

/// A TFLite graph prepared for execution.
pub struct Interpreter {
    /// Device of the tensors [`Interpreter::run`] returns.
    device: Device,
    /// Per tensor: its TFLite shape.
    shapes: Vec<Vec<usize>>,
    /// Per tensor: its internal dimensions (NCHW for rank 4), padded to
    /// four with leading ones; zeros for tensors of higher rank.
    dims: Vec<[usize; 4]>,
    /// Per tensor: its element count.
    len: Vec<usize>,
    /// Per tensor: the constant value (internal layout), if an operator
    /// reads it as an activation.
    constants: Vec<Option<Vec<f32>>>,
    steps: Vec<Step>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    names: Vec<String>,
    /// Per tensor: its buffer in the arena (`usize::MAX` for constants).
    slot: Vec<usize>,
    arena: Mutex<Arena>,
}

/// The buffers a run writes: one per slot, and the im2col / reshape scratch.
struct Arena {
    bufs: Vec<Vec<f32>>,
    scratch: Vec<f32>,
}

/// One operator, ready to run.
struct Step {
    kind: Kind,
    /// The activation (non-weight) inputs.
    inputs: Vec<usize>,
    output: usize,
}

enum Kind {
    Conv {
        g: ConvGeometry,
        /// (O, I·KH·KW)
        weight: Vec<f32>,
        /// (O,) or empty.
        bias: Vec<f32>,
        act: Activation,
    },
    Depthwise {
        g: DepthwiseGeometry,
        /// (C, KH, KW)
        weight: Vec<f32>,
        /// (C,) or empty.
        bias: Vec<f32>,
        act: Activation,
    },
    Add(Activation),
    MaxPool {
        filter: (usize, usize),
        stride: (usize, usize),
    },
    /// (before, after) per internal axis, rank-padded to 4.
    Pad([(usize, usize); 4]),
    Reshape,
    Concat {
        /// Internal axis, rank-padded to 4.
        axis: usize,
        act: Activation,
    },
    ResizeBilinear {
        rows: Vec<Tap>,
        cols: Vec<Tap>,
    },
    Logistic,
    DepthToSpace(usize),
}

impl Kind {
    /// What [`Interpreter::profile`] groups by.
    fn label(&self) -> String {
        match self {
            Kind::Conv { g, .. } if g.pointwise() => "conv 1x1".to_string(),
            Kind::Conv { g, .. } if g.few_outputs() => {
                format!("conv {}x{} (per-channel stencils)", g.kh, g.kw)
            }
            Kind::Conv { g, .. } => format!("conv {}x{} (im2col)", g.kh, g.kw),
            Kind::Depthwise { g, .. } => format!("depthwise {}x{}", g.kh, g.kw),
            Kind::Add(_) => "add".to_string(),
            Kind::MaxPool { .. } => "max pool".to_string(),
            Kind::Pad(_) => "pad".to_string(),
            Kind::Reshape => "reshape".to_string(),
            Kind::Concat { .. } => "concat".to_string(),
            Kind::ResizeBilinear { .. } => "resize bilinear".to_string(),
            Kind::Logistic => "logistic".to_string(),
            Kind::DepthToSpace(_) => "depth to space".to_string(),
        }
    }
}

/// Removes each `PAD` of height and width whose only reader is a
/// convolution (TFLite writes them before BlazePose's stride-2 layers):
/// the convolution reads the unpadded input and pads it itself, which its
/// kernels do without a copy (zeros outside the input).
fn fold_spatial_pads(steps: &mut Vec<Step>, outputs: &[usize]) {
    let mut i = 0;
    while i < steps.len() {
        let Kind::Pad(p) = steps[i].kind else {
            i += 1;
            continue;
        };
        let (from, padded) = (steps[i].inputs[0], steps[i].output);
        let mut readers = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.inputs.contains(&padded));
        let only = match (readers.next(), readers.next()) {
            (Some((j, s)), None) if s.inputs == [padded] => Some(j),
            _ => None,
        };
        let spatial = p[0] == (0, 0) && p[1] == (0, 0);
        let ((top, bottom), (left, right)) = (p[2], p[3]);
        let folded = match only.filter(|_| spatial && !outputs.contains(&padded)) {
            Some(j) => {
                let done = match &mut steps[j].kind {
                    Kind::Conv { g, .. } => {
                        g.h -= top + bottom;
                        g.w -= left + right;
                        g.pad_top += top;
                        g.pad_left += left;
                        true
                    }
                    Kind::Depthwise { g, .. } => {
                        g.h -= top + bottom;
                        g.w -= left + right;
                        g.pad_before.0 += top;
                        g.pad_before.1 += left;
                        true
                    }
                    _ => false,
                };
                if done {
                    steps[j].inputs[0] = from;
                }
                done
            }
            None => false,
        };
        if folded {
            steps.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Time spent in one kind of operator ([`Interpreter::profile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    /// The operator kind (`conv 1x1`, `depthwise 3x3`, `add`, ...).
    pub op: String,
    /// Milliseconds, summed over the profiled runs.
    pub ms: f64,
    /// Operators of this kind in the graph.
    pub count: usize,
}

/// TFLite NHWC axis -> internal NCHW axis for rank-4 tensors.
const NHWC_TO_NCHW_AXIS: [usize; 4] = [0, 2, 3, 1];

/// Internal dimensions of a TFLite shape, rank-padded to 4.
fn internal_dims(shape: &[usize]) -> Option<[usize; 4]> {
    match *shape {
        [n, h, w, c] => Some([n, c, h, w]),
        _ if shape.len() < 4 => {
            let mut d = [1; 4];
            d[4 - shape.len()..].copy_from_slice(shape);
            Some(d)
        }
        _ => None,
    }
}

impl Interpreter {
    /// Prepares `model` for execution: folds constant `DEQUANTIZE`/`DENSIFY`,
    /// re-lays out kernels, derives and checks every operator's output
    /// shape, plans the buffers, and refuses operators or options it does
    /// not implement. Computation runs on the CPU; [`Interpreter::run`]
    /// returns its tensors on `device`.
    pub fn new(model: &Model, device: &Device) -> Result<Self> {
        let n = model.tensors.len();
        let shapes: Vec<Vec<usize>> = model.tensors.iter().map(|t| t.shape.clone()).collect();
        let names: Vec<String> = model.tensors.iter().map(|t| t.name.clone()).collect();
        let dims: Vec<[usize; 4]> = shapes
            .iter()
            .map(|s| internal_dims(s).unwrap_or([0; 4]))
            .collect();
        // Raw constants in TFLite layout, as f32 (or i32 for shapes/paddings).
        let mut raw: Vec<Option<Data>> = model.tensors.iter().map(|t| t.data.clone()).collect();
        let mut written = vec![false; n];
        for &t in &model.inputs {
            *written
                .get_mut(t)
                .ok_or_else(|| Error::tflite(format!("graph input {t} is not a tensor")))? = true;
        }
        let mut steps = Vec::new();
        for (i, op) in model.operators.iter().enumerate() {
            let out = *op
                .outputs
                .first()
                .ok_or_else(|| Error::tflite(format!("operator {i} has no output")))?;
            let input = |j: usize| -> Result<usize> {
                op.inputs.get(j).copied().flatten().ok_or_else(|| {
                    Error::tflite(format!("operator {i} ({}) lacks input {j}", op.op.name()))
                })
            };
            let const_f32 = |raw: &[Option<Data>], t: usize| -> Result<Vec<f32>> {
                match &raw[t] {
                    Some(Data::F32(v)) => Ok(v.clone()),
                    _ => Err(Error::TfliteUnsupported {
                        name: op.op.name().to_string(),
                        code: op.op.code(),
                        detail: format!(": input `{}` is not a float32 constant", names[t]),
                    }),
                }
            };
            // Internal dims of an activation tensor of rank <= 4.
            let dims_of = |t: usize| -> Result<[usize; 4]> {
                if shapes[t].len() > 4 {
                    return Err(Error::shape(
                        format!("TFLite tensor `{}`", names[t]),
                        "rank <= 4",
                        &shapes[t],
                    ));
                }
                Ok(dims[t])
            };
            let (kind, inputs, expected) = match &op.op {
                Op::Dequantize | Op::Densify => {
                    let t = input(0)?;
                    let folded = match (&op.op, &raw[t]) {
                        (Op::Dequantize, Some(Data::F16(v))) => {
                            Some(Data::F32(v.iter().map(|x| x.to_f32()).collect()))
                        }
                        (Op::Dequantize, Some(Data::F32(v))) => Some(Data::F32(v.clone())),
                        (Op::Densify, Some(d)) => {
                            let sp = model.tensors[t].sparsity.as_ref().ok_or_else(|| {
                                Error::tflite(format!(
                                    "DENSIFY input `{}` has no sparsity",
                                    names[t]
                                ))
                            })?;
                            Some(match d {
                                Data::F32(v) => Data::F32(densify(v, &shapes[t], sp)?),
                                Data::F16(v) => Data::F16(densify(v, &shapes[t], sp)?),
                                Data::I32(v) => Data::I32(densify(v, &shapes[t], sp)?),
                            })
                        }
                        _ => None,
                    };
                    match folded {
                        Some(d) => {
                            check_len(&d, &shapes[out], &names[out])?;
                            raw[out] = Some(d);
                            continue;
                        }
                        None => {
                            return Err(Error::TfliteUnsupported {
                                name: op.op.name().to_string(),
                                code: op.op.code(),
                                detail: ": only on constant fp16/f32 inputs".into(),
                            })
                        }
                    }
                }
                Op::Conv2d {
                    padding,
                    stride,
                    dilation,
                    act,
                } => {
                    let x = input(0)?;
                    let [nb, c, h, w] = dims_of(x)?;
                    let wt = input(1)?;
                    let wv = const_f32(&raw, wt)?;
                    let [o, kh, kw, ci] = rank4(&shapes[wt], &names[wt])?;
                    if stride.0 != stride.1 || dilation.0 != dilation.1 {
                        return Err(unsupported(&op.op, "unequal strides or dilations"));
                    }
                    if ci != c || wv.len() != o * kh * kw * ci || kh * kw == 0 || stride.0 == 0 {
                        return Err(Error::shape(
                            format!("CONV_2D filter `{}` for {c} input channels", names[wt]),
                            "(O, KH, KW, C)",
                            &shapes[wt],
                        ));
                    }
                    let same = *padding == Padding::Same;
                    let (oh, pad_top) = ops::out_size(h, kh, stride.0, dilation.0, same);
                    let (ow, pad_left) = ops::out_size(w, kw, stride.0, dilation.0, same);
                    // (O, KH, KW, I) -> (O, I, KH, KW)
                    let mut weight = vec![0.0; wv.len()];
                    for (p, &v) in wv.iter().enumerate() {
                        let (oi, rest) = (p / (kh * kw * ci), p % (kh * kw * ci));
                        let (ky, kx, ii) = (rest / (kw * ci), rest / ci % kw, rest % ci);
                        weight[((oi * ci + ii) * kh + ky) * kw + kx] = v;
                    }
                    let bias = optional_bias(op.inputs.get(2).copied().flatten(), o, &raw)?;
                    let g = ConvGeometry {
                        c,
                        h,
                        w,
                        o,
                        kh,
                        kw,
                        stride: stride.0,
                        dilation: dilation.0,
                        pad_top,
                        pad_left,
                        oh,
                        ow,
                    };
                    let kind = Kind::Conv {
                        g,
                        weight,
                        bias,
                        act: *act,
                    };
                    (kind, vec![x], [nb, o, oh, ow])
                }
                Op::DepthwiseConv2d {
                    padding,
                    stride,
                    dilation,
                    depth_multiplier,
                    act,
                } => {
                    let x = input(0)?;
                    let [nb, c, h, w] = dims_of(x)?;
                    let wt = input(1)?;
                    let [one, kh, kw, cw] = rank4(&shapes[wt], &names[wt])?;
                    if one != 1 || *depth_multiplier != 1 {
                        return Err(unsupported(&op.op, "depth multiplier other than 1"));
                    }
                    let wv = const_f32(&raw, wt)?;
                    if cw != c || wv.len() != kh * kw * c || kh * kw == 0 {
                        return Err(Error::shape(
                            format!("depthwise filter `{}` for {c} channels", names[wt]),
                            "(1, KH, KW, C)",
                            &shapes[wt],
                        ));
                    }
                    // (1, KH, KW, C) -> (C, KH, KW)
                    let mut weight = vec![0.0; c * kh * kw];
                    for (p, &v) in wv.iter().enumerate() {
                        weight[(p % c) * kh * kw + p / c] = v;
                    }
                    let bias = optional_bias(op.inputs.get(2).copied().flatten(), c, &raw)?;
                    let same = *padding == Padding::Same;
                    let (oh, pt) = ops::out_size(h, kh, stride.0, dilation.0, same);
                    let (ow, pl) = ops::out_size(w, kw, stride.1, dilation.1, same);
                    let g = DepthwiseGeometry {
                        c,
                        h,
                        w,
                        kh,
                        kw,
                        stride: *stride,
                        dilation: *dilation,
                        pad_before: (pt, pl),
                        oh,
                        ow,
                    };
                    let kind = Kind::Depthwise {
                        g,
                        weight,
                        bias,
                        act: *act,
                    };
                    (kind, vec![x], [nb, c, oh, ow])
                }
                Op::Add(act) => {
                    let (a, b) = (input(0)?, input(1)?);
                    let (da, db) = (dims_of(a)?, dims_of(b)?);
                    if shapes[a].len() != shapes[b].len() {
                        return Err(unsupported(&op.op, "operands of different rank"));
                    }
                    let mut d = [0; 4];
                    for k in 0..4 {
                        d[k] = match (da[k], db[k]) {
                            (p, q) if p == q || q == 1 => p,
                            (1, q) => q,
                            _ => {
                                return Err(Error::shape(
                                    format!("ADD operand `{}`", names[b]),
                                    format!("broadcastable to {:?}", shapes[a]),
                                    &shapes[b],
                                ))
                            }
                        };
                    }
                    (Kind::Add(*act), vec![a, b], d)
                }
                Op::MaxPool2d {
                    padding,
                    stride,
                    filter,
                    act,
                } => {
                    let x = input(0)?;
                    let [nb, c, h, w] = dims_of(x)?;
                    // SAME equals VALID when the windows tile the input.
                    let tiles = filter == stride && h % stride.0 == 0 && w % stride.1 == 0;
                    if *act != Activation::None
                        || !(matches!(padding, Padding::Valid) || tiles)
                        || stride.0 * stride.1 * filter.0 * filter.1 == 0
                        || h < filter.0
                        || w < filter.1
                    {
                        return Err(unsupported(&op.op, "padding, fused activation or geometry"));
                    }
                    let kind = Kind::MaxPool {
                        filter: *filter,
                        stride: *stride,
                    };
                    let out_dims = [
                        nb,
                        c,
                        (h - filter.0) / stride.0 + 1,
                        (w - filter.1) / stride.1 + 1,
                    ];
                    (kind, vec![x], out_dims)
                }
                Op::Pad => {
                    let x = input(0)?;
                    let d = dims_of(x)?;
                    let p = input(1)?;
                    let v = match &raw[p] {
                        Some(Data::I32(v)) => v.clone(),
                        _ => return Err(unsupported(&op.op, "non-constant paddings")),
                    };
                    let rank = shapes[x].len();
                    if v.len() != 2 * rank || v.iter().any(|&x| x < 0) {
                        return Err(Error::tflite(format!("PAD paddings {v:?} for rank {rank}")));
                    }
                    let given: Vec<(usize, usize)> = v
                        .chunks(2)
                        .map(|c| (c[0] as usize, c[1] as usize))
                        .collect();
                    let mut pads = [(0, 0); 4];
                    if rank == 4 {
                        pads = [given[0], given[3], given[1], given[2]];
                    } else {
                        pads[4 - rank..].copy_from_slice(&given);
                    }
                    let mut out_dims = d;
                    for k in 0..4 {
                        out_dims[k] += pads[k].0 + pads[k].1;
                    }
                    (Kind::Pad(pads), vec![x], out_dims)
                }
                Op::Reshape => {
                    let x = input(0)?;
                    dims_of(x)?;
                    let (a, b) = (
                        shapes[x].iter().product::<usize>(),
                        shapes[out].iter().product::<usize>(),
                    );
                    if a != b {
                        return Err(Error::shape(
                            format!("RESHAPE of `{}` ({a} values)", names[x]),
                            format!("{b} values"),
                            &shapes[out],
                        ));
                    }
                    (Kind::Reshape, vec![x], dims[out])
                }
                Op::Concatenation { axis, act } => {
                    let rank = shapes[out].len();
                    let a = if *axis < 0 {
                        rank as i64 + *axis as i64
                    } else {
                        *axis as i64
                    };
                    if a < 0 || a >= rank as i64 || rank > 4 {
                        return Err(Error::tflite(format!(
                            "CONCATENATION axis {axis} for rank {rank}"
                        )));
                    }
                    let a = a as usize;
                    let axis = if rank == 4 {
                        NHWC_TO_NCHW_AXIS[a]
                    } else {
                        a + 4 - rank
                    };
                    let parts: Vec<usize> =
                        op.inputs.iter().map(|x| x.unwrap_or(usize::MAX)).collect();
                    let mut out_dims: Option<[usize; 4]> = None;
                    for &t in &parts {
                        if t >= n || shapes[t].len() != rank {
                            return Err(Error::tflite(format!(
                                "CONCATENATION of rank {rank} reads tensor {t}"
                            )));
                        }
                        let d = dims_of(t)?;
                        out_dims = Some(match out_dims {
                            None => d,
                            Some(mut acc) => {
                                for k in (0..4).filter(|&k| k != axis) {
                                    if acc[k] != d[k] {
                                        return Err(Error::shape(
                                            format!("CONCATENATION part `{}`", names[t]),
                                            format!("{acc:?} off axis {axis} (NCHW)"),
                                            &d,
                                        ));
                                    }
                                }
                                acc[axis] += d[axis];
                                acc
                            }
                        });
                    }
                    let out_dims =
                        out_dims.ok_or_else(|| Error::tflite("CONCATENATION of nothing"))?;
                    (Kind::Concat { axis, act: *act }, parts, out_dims)
                }
                Op::ResizeBilinear {
                    align_corners,
                    half_pixel_centers,
                } => {
                    let x = input(0)?;
                    let [nb, c, ih, iw] = dims_of(x)?;
                    let [_, oh, ow, _] = rank4(&shapes[out], "RESIZE_BILINEAR output")?;
                    if ih * iw == 0 {
                        return Err(Error::shape(
                            "RESIZE_BILINEAR input",
                            "non-empty",
                            &shapes[x],
                        ));
                    }
                    let rows = ops::bilinear_taps(ih, oh, *align_corners, *half_pixel_centers);
                    let cols = ops::bilinear_taps(iw, ow, *align_corners, *half_pixel_centers);
                    (
                        Kind::ResizeBilinear { rows, cols },
                        vec![x],
                        [nb, c, oh, ow],
                    )
                }
                Op::Logistic => {
                    let x = input(0)?;
                    (Kind::Logistic, vec![x], dims_of(x)?)
                }
                Op::DepthToSpace(b) => {
                    let x = input(0)?;
                    let [nb, c, h, w] = dims_of(x)?;
                    if *b == 0 || c % (b * b) != 0 || shapes[x].len() != 4 {
                        return Err(Error::shape(
                            format!("DEPTH_TO_SPACE input with block {b}"),
                            "channels a multiple of block²",
                            &shapes[x],
                        ));
                    }
                    (
                        Kind::DepthToSpace(*b),
                        vec![x],
                        [nb, c / (b * b), h * b, w * b],
                    )
                }
            };
            for &t in &inputs {
                let constant = matches!(raw.get(t), Some(Some(Data::F32(_))));
                if t >= n || !(written[t] || constant) {
                    return Err(Error::tflite(format!(
                        "operator {i} ({}) reads tensor {t} before it is written",
                        op.op.name()
                    )));
                }
            }
            if out >= n || dims_of(out)? != expected {
                return Err(Error::shape(
                    format!(
                        "TFLite tensor `{}` (output of {})",
                        names[out.min(n - 1)],
                        op.op.name()
                    ),
                    format!("{expected:?} (NCHW)"),
                    shapes.get(out).map(Vec::as_slice).unwrap_or(&[]),
                ));
            }
            written[out] = true;
            steps.push(Step {
                kind,
                inputs,
                output: out,
            });
        }
        for &t in &model.outputs {
            if t >= n || !written[t] || shapes[t].len() > 4 {
                return Err(Error::tflite(format!("graph output {t} is never written")));
            }
        }
        fold_spatial_pads(&mut steps, &model.outputs);
        // Constants read as activations, in the internal layout.
        let mut constants: Vec<Option<Vec<f32>>> = vec![None; n];
        for &t in steps.iter().flat_map(|s| &s.inputs) {
            if let (Some(d @ Data::F32(v)), None) = (&raw[t], &constants[t]) {
                check_len(d, &shapes[t], &names[t])?;
                constants[t] = Some(if shapes[t].len() == 4 {
                    let mut y = vec![0.0; v.len()];
                    let s = &shapes[t];
                    ops::nhwc_to_nchw(v, [s[0], s[1], s[2], s[3]], &mut y);
                    y
                } else {
                    v.clone()
                });
            }
        }
        let len: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
        let (slot, sizes) = plan_buffers(&steps, &model.inputs, &model.outputs, &constants, &len);
        let scratch = steps
            .iter()
            .map(|s| match &s.kind {
                Kind::Conv { g, .. } => g.scratch_len(),
                Kind::Reshape => len[s.inputs[0]],
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        Ok(Self {
            device: device.clone(),
            shapes,
            dims,
            len,
            constants,
            steps,
            inputs: model.inputs.clone(),
            outputs: model.outputs.clone(),
            names,
            slot,
            arena: Mutex::new(Arena {
                bufs: sizes.into_iter().map(|s| vec![0.0; s]).collect(),
                scratch: vec![0.0; scratch],
            }),
        })
    }

    /// The TFLite shape of graph input `i`.
    pub fn input_shape(&self, i: usize) -> Option<&[usize]> {
        self.inputs.get(i).map(|&t| self.shapes[t].as_slice())
    }

    /// The TFLite shape of graph output `i`.
    pub fn output_shape(&self, i: usize) -> Option<&[usize]> {
        self.outputs.get(i).map(|&t| self.shapes[t].as_slice())
    }

    /// Operators executed per run (constant folding excluded).
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Runs the graph on `inputs` (TFLite layout, NHWC for images) and
    /// returns its outputs in TFLite layout and order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut flat = Vec::with_capacity(inputs.len());
        for (i, x) in inputs.iter().enumerate() {
            if let Some(&t) = self.inputs.get(i) {
                if x.dims() != self.shapes[t].as_slice() {
                    return Err(Error::shape(
                        format!("TFLite input `{}`", self.names[t]),
                        format!("{:?}", self.shapes[t]),
                        x.dims(),
                    ));
                }
            }
            flat.push(x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
        }
        let refs: Vec<&[f32]> = flat.iter().map(Vec::as_slice).collect();
        self.run_slices(&refs)?
            .into_iter()
            .zip(&self.outputs)
            .map(|(v, &t)| {
                Ok(Tensor::from_vec(
                    v,
                    self.shapes[t].as_slice(),
                    &self.device,
                )?)
            })
            .collect()
    }

    /// [`Interpreter::run`] on flat slices in TFLite layout (NHWC for
    /// images), without tensors: the inputs are checked by length.
    pub fn run_slices(&self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        self.run_timed(inputs, None)
    }

    /// Runs the graph `runs` times on `inputs` and returns the time spent
    /// in each kind of operator ([`OpTime::op`] names the kind and, for
    /// convolutions, the kernel), most expensive first, summed over the
    /// runs.
    pub fn profile(&self, inputs: &[&[f32]], runs: usize) -> Result<Vec<OpTime>> {
        let mut per_step = vec![Duration::ZERO; self.steps.len()];
        for _ in 0..runs.max(1) {
            self.run_timed(inputs, Some(&mut per_step))?;
        }
        let mut by_op: Vec<OpTime> = Vec::new();
        for (s, t) in self.steps.iter().zip(&per_step) {
            let op = s.kind.label();
            match by_op.iter_mut().find(|o| o.op == op) {
                Some(o) => {
                    o.ms += t.as_secs_f64() * 1e3;
                    o.count += 1;
                }
                None => by_op.push(OpTime {
                    op,
                    ms: t.as_secs_f64() * 1e3,
                    count: 1,
                }),
            }
        }
        by_op.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(by_op)
    }

    /// [`Interpreter::run_slices`], adding each step's time to `times`.
    fn run_timed(
        &self,
        inputs: &[&[f32]],
        mut times: Option<&mut [Duration]>,
    ) -> Result<Vec<Vec<f32>>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::shape(
                "TFLite graph inputs",
                format!("{} tensors", self.inputs.len()),
                &[inputs.len()],
            ));
        }
        // A panic inside a run leaves nothing but scratch values behind.
        let mut arena = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        let Arena { bufs, scratch } = &mut *arena;
        for (&t, x) in self.inputs.iter().zip(inputs) {
            let want = self.len[t];
            if x.len() != want {
                return Err(Error::shape(
                    format!("TFLite input `{}` {:?}", self.names[t], self.shapes[t]),
                    format!("{want} values"),
                    &[x.len()],
                ));
            }
            let buf = &mut bufs[self.slot[t]][..want];
            match *self.shapes[t] {
                [n, h, w, c] => ops::nhwc_to_nchw(x, [n, h, w, c], buf),
                _ => buf.copy_from_slice(x),
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            let slot = self.slot[s.output];
            let mut out = std::mem::take(&mut bufs[slot]);
            let t = Instant::now();
            let done = self.step(s, bufs, scratch, &mut out[..self.len[s.output]]);
            if let Some(times) = times.as_deref_mut() {
                times[i] += t.elapsed();
            }
            bufs[slot] = out;
            done?;
        }
        Ok(self
            .outputs
            .iter()
            .map(|&t| {
                let v = self.read(bufs, t);
                match *self.shapes[t] {
                    [n, h, w, c] => {
                        let mut y = vec![0.0; v.len()];
                        ops::nchw_to_nhwc(v, [n, c, h, w], &mut y);
                        y
                    }
                    _ => v.to_vec(),
                }
            })
            .collect())
    }

    /// The current value of tensor `t` (internal layout).
    fn read<'a>(&'a self, bufs: &'a [Vec<f32>], t: usize) -> &'a [f32] {
        match &self.constants[t] {
            Some(c) => c,
            None => &bufs[self.slot[t]][..self.len[t]],
        }
    }

    fn step(&self, s: &Step, bufs: &[Vec<f32>], scratch: &mut [f32], y: &mut [f32]) -> Result<()> {
        let x = self.read(bufs, s.inputs[0]);
        let xd = self.dims[s.inputs[0]];
        let yd = self.dims[s.output];
        let threads = rayon::current_num_threads();
        match &s.kind {
            Kind::Conv {
                g,
                weight,
                bias,
                act,
            } => {
                // x: (N, C, H, W) -> y: (N, O, OH, OW)
                let (xs, ys) = (g.c * g.h * g.w, g.o * g.oh * g.ow);
                for (xi, yi) in x.chunks_exact(xs).zip(y.chunks_exact_mut(ys)) {
                    ops::conv2d(g, xi, weight, bias, *act, scratch, yi, threads);
                }
            }
            Kind::Depthwise {
                g,
                weight,
                bias,
                act,
            } => {
                // x: (N, C, H, W) -> y: (N, C, OH, OW)
                let (xs, ys) = (g.c * g.h * g.w, g.c * g.oh * g.ow);
                let clamp = ops::clamp_bounds(*act);
                let bounds = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                for (xi, yi) in x.chunks_exact(xs).zip(y.chunks_exact_mut(ys)) {
                    if !depthwise_conv(g, xi, weight, bias, bounds, yi) {
                        return Err(Error::shape(
                            "DEPTHWISE_CONV_2D input",
                            format!("{} channels", g.c),
                            &xd,
                        ));
                    }
                }
                if clamp.is_none() {
                    ops::activate(y, *act);
                }
            }
            Kind::Add(act) => {
                let b = s.inputs[1];
                ops::add((x, xd), (self.read(bufs, b), self.dims[b]), *act, (y, yd));
            }
            Kind::MaxPool { filter, stride } => {
                ops::max_pool(x, (xd[2], xd[3]), *filter, *stride, y, (yd[2], yd[3]));
            }
            Kind::Pad(pads) => ops::pad(x, xd, *pads, y, yd),
            Kind::Reshape => {
                // Through TFLite's (NHWC) memory order.
                let t = s.inputs[0];
                let nhwc: &[f32] = match *self.shapes[t] {
                    [n, _, _, _] => {
                        let buf = &mut scratch[..x.len()];
                        ops::nchw_to_nhwc(x, [n, xd[1], xd[2], xd[3]], buf);
                        buf
                    }
                    _ => x,
                };
                match *self.shapes[s.output] {
                    [n, h, w, c] => ops::nhwc_to_nchw(nhwc, [n, h, w, c], y),
                    _ => y.copy_from_slice(nhwc),
                }
            }
            Kind::Concat { axis, act } => {
                let parts: Vec<(&[f32], [usize; 4])> = s
                    .inputs
                    .iter()
                    .map(|&t| (self.read(bufs, t), self.dims[t]))
                    .collect();
                ops::concat(&parts, *axis, *act, y);
            }
            Kind::ResizeBilinear { rows, cols } => {
                ops::resize_bilinear(x, (xd[2], xd[3]), rows, cols, y);
            }
            Kind::Logistic => ops::logistic(x, y),
            Kind::DepthToSpace(b) => ops::depth_to_space(x, xd, *b, y),
        }
        Ok(())
    }
}

/// Assigns every activation tensor a buffer: graph inputs first, then each
/// operator's output in order; a buffer returns to the pool after the last
/// operator that reads its tensor (graph outputs keep theirs). Best fit by
/// size, else the largest free buffer grows. Returns the slot per tensor
/// (`usize::MAX` where none) and the slot sizes.
fn plan_buffers(
    steps: &[Step],
    inputs: &[usize],
    outputs: &[usize],
    constants: &[Option<Vec<f32>>],
    len: &[usize],
) -> (Vec<usize>, Vec<usize>) {
    let n = len.len();
    let mut last: Vec<Option<usize>> = vec![None; n];
    for (i, s) in steps.iter().enumerate() {
        for &t in &s.inputs {
            last[t] = Some(i);
        }
    }
    let mut slot = vec![usize::MAX; n];
    let mut sizes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let take = |need: usize, free: &mut Vec<usize>, sizes: &mut Vec<usize>| -> usize {
        let fit = free
            .iter()
            .enumerate()
            .filter(|(_, &s)| sizes[s] >= need)
            .min_by_key(|(_, &s)| sizes[s])
            .or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| sizes[s]))
            .map(|(i, _)| i);
        match fit {
            Some(i) => {
                let s = free.swap_remove(i);
                sizes[s] = sizes[s].max(need);
                s
            }
            None => {
                sizes.push(need);
                sizes.len() - 1
            }
        }
    };
    for &t in inputs {
        slot[t] = take(len[t], &mut free, &mut sizes);
    }
    for (i, s) in steps.iter().enumerate() {
        slot[s.output] = take(len[s.output], &mut free, &mut sizes);
        let release = |t: usize, free: &mut Vec<usize>| {
            if slot[t] != usize::MAX && !outputs.contains(&t) && !free.contains(&slot[t]) {
                free.push(slot[t]);
            }
        };
        for &t in &s.inputs {
            if constants[t].is_none() && last[t] == Some(i) {
                release(t, &mut free);
            }
        }
        if last[s.output].is_none() {
            release(s.output, &mut free);
        }
    }
    (slot, sizes)
}

fn optional_bias(t: Option<usize>, channels: usize, raw: &[Option<Data>]) -> Result<Vec<f32>> {
    let Some(t) = t else { return Ok(Vec::new()) };
    match raw.get(t) {
        Some(Some(Data::F32(v))) if v.len() == channels => Ok(v.clone()),
        Some(Some(Data::F32(v))) => Err(Error::tflite(format!(
            "bias of {} values for {channels} channels",
            v.len()
        ))),
        _ => Err(Error::tflite(format!(
            "bias tensor {t} is not a float32 constant"
        ))),
    }
}

fn unsupported(op: &Op, detail: &str) -> Error {
    Error::TfliteUnsupported {
        name: op.name().to_string(),
        code: op.code(),
        detail: format!(": {detail}"),
    }
}

fn rank4(shape: &[usize], what: &str) -> Result<[usize; 4]> {
    match shape {
        &[a, b, c, d] => Ok([a, b, c, d]),
        _ => Err(Error::shape(what, "rank 4", shape)),
    }
}

fn check_len(d: &Data, shape: &[usize], name: &str) -> Result<()> {
    let len = match d {
        Data::F32(v) => v.len(),
        Data::F16(v) => v.len(),
        Data::I32(v) => v.len(),
    };
    let want: usize = shape.iter().product();
    if len != want {
        return Err(Error::tflite(format!(
            "constant `{name}` holds {len} values for shape {shape:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(inputs: &[usize], output: usize) -> Step {
        Step {
            kind: Kind::Logistic,
            inputs: inputs.to_vec(),
            output,
        }
    }

    /// A padded depthwise equals the depthwise of `PAD` + VALID, and the
    /// fold applies only where the pad has that one convolution reader.
    #[test]
    fn spatial_pads_fold_into_their_convolution() {
        let (c, h, w) = (2, 5, 7);
        let pads = [(0, 0), (0, 0), (1, 2), (2, 1)];
        let (ph, pw) = (h + 3, w + 3);
        let g = DepthwiseGeometry {
            c,
            h: ph,
            w: pw,
            kh: 3,
            kw: 3,
            stride: (2, 2),
            dilation: (1, 1),
            pad_before: (0, 0),
            oh: (ph - 3) / 2 + 1,
            ow: (pw - 3) / 2 + 1,
        };
        let weight: Vec<f32> = (0..c * 9).map(|i| (i as f32 * 0.3).sin()).collect();
        let dw = |g: DepthwiseGeometry| Kind::Depthwise {
            g,
            weight: weight.clone(),
            bias: vec![0.1, -0.2],
            act: Activation::None,
        };
        // t0 -> PAD -> t1 -> depthwise -> t2
        let pad_then_dw = || {
            vec![
                Step {
                    kind: Kind::Pad(pads),
                    inputs: vec![0],
                    output: 1,
                },
                Step {
                    kind: dw(g),
                    inputs: vec![1],
                    output: 2,
                },
            ]
        };
        let mut steps = pad_then_dw();
        let x: Vec<f32> = (0..c * h * w).map(|i| (i as f32 * 0.7).cos()).collect();
        let mut padded = vec![0.0; c * ph * pw];
        ops::pad(&x, [1, c, h, w], pads, &mut padded, [1, c, ph, pw]);
        let mut want = vec![0.0; c * g.oh * g.ow];
        let none = (f32::NEG_INFINITY, f32::INFINITY);
        assert!(depthwise_conv(
            &g,
            &padded,
            &weight,
            &[0.1, -0.2],
            none,
            &mut want
        ));
        fold_spatial_pads(&mut steps, &[2]);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].inputs, [0]);
        let Kind::Depthwise { g: folded, .. } = &steps[0].kind else {
            panic!("not a depthwise step");
        };
        assert_eq!((folded.h, folded.w, folded.pad_before), (h, w, (1, 2)));
        let mut got = vec![0.0; want.len()];
        assert!(depthwise_conv(
            folded,
            &x,
            &weight,
            &[0.1, -0.2],
            none,
            &mut got
        ));
        assert_eq!(got, want);
        // A pad that is also a graph output, or read twice, stays.
        for (outputs, second_reader) in [(vec![1, 2], false), (vec![2, 3], true)] {
            let mut steps = pad_then_dw();
            if second_reader {
                steps.push(step(&[1], 3));
            }
            fold_spatial_pads(&mut steps, &outputs);
            assert!(matches!(steps[0].kind, Kind::Pad(_)));
        }
    }

    /// No tensor's buffer is handed to another tensor while it may still be
    /// read: before its last reader, or ever for a graph output.
    #[test]
    fn planned_buffers_never_overlap_live_tensors() {
        // t0 input; t1 = f(t0); t2 = f(t1); t3 = t1 + t2; t4 = f(t3);
        // t5 = f(t4) unused; t6 = t4 + t0 (an input read late); c7 constant.
        let steps = vec![
            step(&[0], 1),
            step(&[1], 2),
            step(&[1, 2], 3),
            step(&[3, 7], 4),
            step(&[4], 5),
            step(&[4, 0], 6),
        ];
        let len = vec![10, 20, 5, 30, 8, 8, 40, 3];
        let mut constants = vec![None; 8];
        constants[7] = Some(vec![0.0; 3]);
        let outputs = [6, 2];
        let (slot, sizes) = plan_buffers(&steps, &[0], &outputs, &constants, &len);
        assert_eq!(slot[7], usize::MAX, "constants get no buffer");
        let last = |t: usize| {
            if outputs.contains(&t) {
                usize::MAX
            } else {
                steps
                    .iter()
                    .rposition(|s| s.inputs.contains(&t))
                    .unwrap_or(0)
            }
        };
        let born = |t: usize| steps.iter().position(|s| s.output == t).unwrap_or(0);
        for a in 0..7 {
            assert!(sizes[slot[a]] >= len[a], "tensor {a} fits its buffer");
            for b in a + 1..7 {
                // b is written at step born(b); a is live then if it is read
                // at or after that step.
                if slot[a] == slot[b] {
                    assert!(last(a) < born(b), "tensors {a} and {b} share a live buffer");
                }
            }
        }
        // Something was reused: fewer buffers than tensors.
        assert!(sizes.len() < 7, "{sizes:?}");
    }
}
