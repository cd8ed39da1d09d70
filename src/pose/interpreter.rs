//! Runs a TFLite graph ([`Model`]) in candle on CPU, for exactly the
//! operators MediaPipe BlazePose's detector and landmark networks use.
//!
//! What: constants behind `DEQUANTIZE` (fp16 weights) and `DENSIFY` (CSR
//! weights) are expanded once when the interpreter is built; convolution
//! kernels are re-laid out for candle then too. At run time the operators
//! execute in file order (TFLite stores them topologically sorted).
//!
//! Layout: TFLite is NHWC. Inside the interpreter every rank-4 activation is
//! held NCHW (candle's convolution layout); rank-4 inputs and outputs are
//! transposed at the graph boundary, and the few operators whose meaning
//! depends on memory order (`RESHAPE`) go through NHWC explicitly. Operator
//! semantics follow TFLite's reference kernels (`tensorflow/lite/kernels/
//! internal/reference`): SAME padding puts the odd pixel after, bilinear
//! resizing clamps at the border, fused activations apply after the bias.

use candle_core::{DType, Device, Tensor};

use super::depthwise::{depthwise_conv, DepthwiseGeometry};
use super::tflite::sparse::densify;
use super::tflite::{Activation, Data, Model, Op, Padding};
use crate::{Error, Result};

/// A TFLite graph prepared for execution.
pub struct Interpreter {
    device: Device,
    /// Per tensor: its TFLite shape.
    shapes: Vec<Vec<usize>>,
    /// Per tensor: the constant value (internal layout), if it is one.
    constants: Vec<Option<Tensor>>,
    steps: Vec<Step>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    names: Vec<String>,
}

/// One operator, ready to run.
struct Step {
    kind: Kind,
    inputs: Vec<usize>,
    output: usize,
}

enum Kind {
    Conv {
        /// (O, I, KH, KW)
        weight: Tensor,
        /// (1, O, 1, 1)
        bias: Option<Tensor>,
        padding: Padding,
        stride: usize,
        dilation: usize,
        act: Activation,
    },
    Depthwise {
        /// (C, KH, KW), contiguous.
        weight: Vec<f32>,
        bias: Vec<f32>,
        kh: usize,
        kw: usize,
        padding: Padding,
        stride: (usize, usize),
        dilation: (usize, usize),
        act: Activation,
    },
    Add(Activation),
    MaxPool {
        filter: (usize, usize),
        stride: (usize, usize),
    },
    /// (before, after) per NCHW (or plain) dimension.
    Pad(Vec<(usize, usize)>),
    Reshape,
    Concat {
        axis: usize,
        act: Activation,
    },
    ResizeBilinear {
        /// (OH, IH) interpolation matrix.
        rows: Tensor,
        /// (IW, OW) interpolation matrix.
        cols: Tensor,
    },
    Logistic,
    DepthToSpace(usize),
}

/// TFLite NHWC axis -> internal NCHW axis for rank-4 tensors.
const NHWC_TO_NCHW_AXIS: [usize; 4] = [0, 2, 3, 1];

impl Interpreter {
    /// Prepares `model` for execution on `device`: folds constant
    /// `DEQUANTIZE`/`DENSIFY`, re-lays out kernels, checks every operator's
    /// inputs, and refuses operators or options it does not implement.
    pub fn new(model: &Model, device: &Device) -> Result<Self> {
        let n = model.tensors.len();
        let shapes: Vec<Vec<usize>> = model.tensors.iter().map(|t| t.shape.clone()).collect();
        // Raw constants in TFLite layout, as f32 (or i32 for shapes/paddings).
        let mut raw: Vec<Option<Data>> = model.tensors.iter().map(|t| t.data.clone()).collect();
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
                        detail: format!(
                            ": input `{}` is not a float32 constant",
                            model.tensors[t].name
                        ),
                    }),
                }
            };
            let kind = match &op.op {
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
                                    model.tensors[t].name
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
                            check_len(&d, &shapes[out], &model.tensors[out].name)?;
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
                    let w = input(1)?;
                    let ws = &shapes[w];
                    let wv = const_f32(&raw, w)?;
                    let [o, kh, kw, ci] = rank4(ws, &model.tensors[w].name)?;
                    if stride.0 != stride.1 || dilation.0 != dilation.1 {
                        return Err(unsupported(&op.op, "unequal strides or dilations"));
                    }
                    // (O, KH, KW, I) -> (O, I, KH, KW)
                    let weight = Tensor::from_vec(wv, (o, kh, kw, ci), device)?
                        .permute((0, 3, 1, 2))?
                        .contiguous()?;
                    let bias = match op.inputs.get(2).copied().flatten() {
                        Some(b) => {
                            Some(Tensor::from_vec(const_f32(&raw, b)?, (1, o, 1, 1), device)?)
                        }
                        None => None,
                    };
                    Kind::Conv {
                        weight,
                        bias,
                        padding: *padding,
                        stride: stride.0,
                        dilation: dilation.0,
                        act: *act,
                    }
                }
                Op::DepthwiseConv2d {
                    padding,
                    stride,
                    dilation,
                    depth_multiplier,
                    act,
                } => {
                    let w = input(1)?;
                    let [one, kh, kw, c] = rank4(&shapes[w], &model.tensors[w].name)?;
                    if one != 1 || *depth_multiplier != 1 {
                        return Err(unsupported(&op.op, "depth multiplier other than 1"));
                    }
                    let wv = const_f32(&raw, w)?;
                    if wv.len() != kh * kw * c {
                        return Err(Error::tflite(format!(
                            "depthwise filter `{}` holds {} values",
                            model.tensors[w].name,
                            wv.len()
                        )));
                    }
                    // (1, KH, KW, C) -> (C, KH, KW)
                    let mut weight = vec![0.0; c * kh * kw];
                    for (p, &v) in wv.iter().enumerate() {
                        weight[(p % c) * kh * kw + p / c] = v;
                    }
                    let bias = match op.inputs.get(2).copied().flatten() {
                        Some(b) => const_f32(&raw, b)?,
                        None => Vec::new(),
                    };
                    if !(bias.is_empty() || bias.len() == c) {
                        return Err(Error::tflite(format!(
                            "depthwise bias of {} for {c} channels",
                            bias.len()
                        )));
                    }
                    Kind::Depthwise {
                        weight,
                        bias,
                        kh,
                        kw,
                        padding: *padding,
                        stride: *stride,
                        dilation: *dilation,
                        act: *act,
                    }
                }
                Op::Add(act) => Kind::Add(*act),
                Op::MaxPool2d {
                    padding,
                    stride,
                    filter,
                    act,
                } => {
                    let s = &shapes[input(0)?];
                    let valid_fit = s.len() == 4
                        && s[1] % stride.0 == 0
                        && s[2] % stride.1 == 0
                        && filter == stride;
                    if *act != Activation::None || !(matches!(padding, Padding::Valid) || valid_fit)
                    {
                        return Err(unsupported(&op.op, "padding or fused activation"));
                    }
                    Kind::MaxPool {
                        filter: *filter,
                        stride: *stride,
                    }
                }
                Op::Pad => {
                    let p = input(1)?;
                    let v = match &raw[p] {
                        Some(Data::I32(v)) => v.clone(),
                        _ => return Err(unsupported(&op.op, "non-constant paddings")),
                    };
                    let rank = shapes[input(0)?].len();
                    if v.len() != 2 * rank || v.iter().any(|&x| x < 0) {
                        return Err(Error::tflite(format!("PAD paddings {v:?} for rank {rank}")));
                    }
                    let mut pads: Vec<(usize, usize)> = v
                        .chunks(2)
                        .map(|c| (c[0] as usize, c[1] as usize))
                        .collect();
                    if rank == 4 {
                        pads = vec![pads[0], pads[3], pads[1], pads[2]];
                    }
                    Kind::Pad(pads)
                }
                Op::Reshape => Kind::Reshape,
                Op::Concatenation { axis, act } => {
                    let rank = shapes[out].len() as i64;
                    let a = if *axis < 0 {
                        rank + *axis as i64
                    } else {
                        *axis as i64
                    };
                    if a < 0 || a >= rank {
                        return Err(Error::tflite(format!(
                            "CONCATENATION axis {axis} for rank {rank}"
                        )));
                    }
                    let a = a as usize;
                    Kind::Concat {
                        axis: if rank == 4 { NHWC_TO_NCHW_AXIS[a] } else { a },
                        act: *act,
                    }
                }
                Op::ResizeBilinear {
                    align_corners,
                    half_pixel_centers,
                } => {
                    let [_, ih, iw, _] = rank4(&shapes[input(0)?], "RESIZE_BILINEAR input")?;
                    let [_, oh, ow, _] = rank4(&shapes[out], "RESIZE_BILINEAR output")?;
                    let rows = interpolation(ih, oh, *align_corners, *half_pixel_centers, device)?;
                    let cols = interpolation(iw, ow, *align_corners, *half_pixel_centers, device)?
                        .t()?
                        .contiguous()?;
                    Kind::ResizeBilinear { rows, cols }
                }
                Op::Logistic => Kind::Logistic,
                Op::DepthToSpace(b) => Kind::DepthToSpace(*b),
            };
            let inputs = op.inputs.iter().map(|x| x.unwrap_or(usize::MAX)).collect();
            steps.push(Step {
                kind,
                inputs,
                output: out,
            });
        }
        // Constants as tensors, in the internal layout.
        let mut constants = Vec::with_capacity(n);
        for (t, d) in raw.iter().enumerate() {
            constants.push(match d {
                Some(Data::F32(v)) => {
                    check_len(
                        d.as_ref().unwrap_or(&Data::F32(Vec::new())),
                        &shapes[t],
                        &model.tensors[t].name,
                    )?;
                    Some(to_internal(Tensor::from_vec(
                        v.clone(),
                        shapes[t].as_slice(),
                        device,
                    )?)?)
                }
                _ => None,
            });
        }
        Ok(Self {
            device: device.clone(),
            shapes,
            constants,
            steps,
            inputs: model.inputs.clone(),
            outputs: model.outputs.clone(),
            names: model.tensors.iter().map(|t| t.name.clone()).collect(),
        })
    }

    /// The TFLite shape of graph input `i`.
    pub fn input_shape(&self, i: usize) -> Option<&[usize]> {
        self.inputs.get(i).map(|&t| self.shapes[t].as_slice())
    }

    /// Number of operators that run (after constant folding).
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Runs the graph on `inputs` (TFLite layout, NHWC for images) and
    /// returns its outputs in TFLite layout and order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::shape(
                "TFLite graph inputs",
                format!("{} tensors", self.inputs.len()),
                &[inputs.len()],
            ));
        }
        let mut values: Vec<Option<Tensor>> = vec![None; self.shapes.len()];
        for (&t, x) in self.inputs.iter().zip(inputs) {
            if x.dims() != self.shapes[t].as_slice() {
                return Err(Error::shape(
                    format!("TFLite input `{}`", self.names[t]),
                    format!("{:?}", self.shapes[t]),
                    x.dims(),
                ));
            }
            values[t] = Some(to_internal(
                x.to_dtype(DType::F32)?.to_device(&self.device)?,
            )?);
        }
        for step in &self.steps {
            let y = self.step(step, &values)?;
            values[step.output] = Some(y);
        }
        self.outputs
            .iter()
            .map(|&t| {
                let v = self.value(&values, t)?;
                from_internal(&v)
            })
            .collect()
    }

    fn value(&self, values: &[Option<Tensor>], t: usize) -> Result<Tensor> {
        values
            .get(t)
            .cloned()
            .flatten()
            .or_else(|| self.constants.get(t).cloned().flatten())
            .ok_or_else(|| Error::tflite(format!("tensor {t} is read before it is written")))
    }

    fn step(&self, s: &Step, values: &[Option<Tensor>]) -> Result<Tensor> {
        let x = self.value(values, s.inputs[0])?;
        let out_shape = &self.shapes[s.output];
        let y = match &s.kind {
            Kind::Conv {
                weight,
                bias,
                padding,
                stride,
                dilation,
                act,
            } => {
                // x: (N, C, H, W), weight: (O, C, KH, KW) -> (N, O, OH, OW)
                let (_, _, kh, kw) = weight.dims4()?;
                let x = pad_same(
                    &x,
                    *padding,
                    (kh, kw),
                    (*stride, *stride),
                    (*dilation, *dilation),
                )?;
                let mut y = if kh == 1 && kw == 1 && *stride == 1 {
                    // A pointwise convolution is one matrix product per image:
                    // (O, C) x (C, H*W), without candle's im2col copy.
                    let (n, c, h, w) = x.dims4()?;
                    let o = weight.dim(0)?;
                    let w2 = weight.reshape((o, c))?;
                    w2.broadcast_left(n)?
                        .matmul(&x.reshape((n, c, h * w))?)?
                        .reshape((n, o, h, w))?
                } else {
                    x.conv2d(weight, 0, *stride, *dilation, 1)?
                };
                if let Some(b) = bias {
                    y = y.broadcast_add(b)?;
                }
                activate(y, *act)?
            }
            Kind::Depthwise {
                weight,
                bias,
                kh,
                kw,
                padding,
                stride,
                dilation,
                act,
            } => {
                // x: (N, C, H, W) -> (N, C, OH, OW)
                let (n, c, h, w) = x.dims4()?;
                let (oh, pt) = out_size(h, *kh, stride.0, dilation.0, *padding);
                let (ow, pl) = out_size(w, *kw, stride.1, dilation.1, *padding);
                let g = DepthwiseGeometry {
                    c,
                    h,
                    w,
                    kh: *kh,
                    kw: *kw,
                    stride: *stride,
                    dilation: *dilation,
                    pad_before: (pt, pl),
                    oh,
                    ow,
                };
                let xv = x.flatten_all()?.to_vec1::<f32>()?;
                let mut out = vec![0.0f32; n * c * oh * ow];
                for (xi, oi) in xv.chunks(c * h * w).zip(out.chunks_mut(c * oh * ow)) {
                    if !depthwise_conv(&g, xi, weight, bias, oi) {
                        return Err(Error::shape(
                            "DEPTHWISE_CONV_2D input",
                            format!("{c} channels"),
                            x.dims(),
                        ));
                    }
                }
                activate(Tensor::from_vec(out, (n, c, oh, ow), &self.device)?, *act)?
            }
            Kind::Add(act) => activate(x.broadcast_add(&self.value(values, s.inputs[1])?)?, *act)?,
            Kind::MaxPool { filter, stride } => x.max_pool2d_with_stride(*filter, *stride)?,
            Kind::Pad(pads) => {
                let mut y = x;
                for (d, &(a, b)) in pads.iter().enumerate() {
                    if a + b > 0 {
                        y = y.pad_with_zeros(d, a, b)?;
                    }
                }
                y
            }
            Kind::Reshape => {
                let nhwc = from_internal(&x)?;
                to_internal(nhwc.reshape(out_shape.as_slice())?)?
            }
            Kind::Concat { axis, act } => {
                let parts = s
                    .inputs
                    .iter()
                    .map(|&t| self.value(values, t))
                    .collect::<Result<Vec<_>>>()?;
                activate(Tensor::cat(&parts, *axis)?, *act)?
            }
            Kind::ResizeBilinear { rows, cols } => {
                // x: (N, C, IH, IW) -> (N, C, OH, OW) = rows · x · cols
                let (n, c, ih, iw) = x.dims4()?;
                let (oh, ow) = (rows.dim(0)?, cols.dim(1)?);
                let y = x.reshape((n * c * ih, iw))?.matmul(cols)?; // (N*C*IH, OW)
                let y = y.reshape((n * c, ih, ow))?;
                rows.broadcast_left(n * c)?
                    .matmul(&y)?
                    .reshape((n, c, oh, ow))?
            }
            Kind::Logistic => candle_nn::ops::sigmoid(&x)?,
            Kind::DepthToSpace(b) => {
                // (N, b*b*C, H, W) -> (N, C, H*b, W*b); TFLite's channel index is (i*b + j)*C + c.
                let (n, cbb, h, w) = x.dims4()?;
                let c = cbb / (b * b);
                x.reshape((n, *b, *b, c, h, w))?
                    .permute((0, 3, 4, 1, 5, 2))?
                    .reshape((n, c, h * b, w * b))?
            }
        };
        let want: Vec<usize> = if out_shape.len() == 4 {
            vec![out_shape[0], out_shape[3], out_shape[1], out_shape[2]]
        } else {
            out_shape.clone()
        };
        if y.dims() != want.as_slice() {
            return Err(Error::shape(
                format!("TFLite tensor `{}`", self.names[s.output]),
                format!("{want:?} (NCHW of {out_shape:?})"),
                y.dims(),
            ));
        }
        Ok(y)
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

/// NHWC -> NCHW for rank 4; other ranks unchanged.
fn to_internal(t: Tensor) -> Result<Tensor> {
    Ok(if t.rank() == 4 {
        t.permute((0, 3, 1, 2))?.contiguous()?
    } else {
        t
    })
}

/// NCHW -> NHWC for rank 4; other ranks unchanged.
fn from_internal(t: &Tensor) -> Result<Tensor> {
    Ok(if t.rank() == 4 {
        t.permute((0, 2, 3, 1))?.contiguous()?
    } else {
        t.clone()
    })
}

/// Output size and padding before, as TFLite computes them.
fn out_size(
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> (usize, usize) {
    let eff = (k - 1) * dilation + 1;
    match padding {
        Padding::Valid => ((input.saturating_sub(eff)) / stride + 1, 0),
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + eff).saturating_sub(input);
            (out, total / 2)
        }
    }
}

/// Zero-pads `x` (N, C, H, W) for SAME padding (odd pixel after).
fn pad_same(
    x: &Tensor,
    padding: Padding,
    k: (usize, usize),
    stride: (usize, usize),
    dil: (usize, usize),
) -> Result<Tensor> {
    if padding == Padding::Valid {
        return Ok(x.clone());
    }
    let (_, _, h, w) = x.dims4()?;
    let mut y = x.clone();
    for (dim, size, k, s, d) in [(2, h, k.0, stride.0, dil.0), (3, w, k.1, stride.1, dil.1)] {
        let (out, before) = out_size(size, k, s, d, padding);
        let total = ((out - 1) * s + (k - 1) * d + 1).saturating_sub(size);
        if total > 0 {
            y = y.pad_with_zeros(dim, before, total - before)?;
        }
    }
    Ok(y)
}

fn activate(y: Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::None => y,
        Activation::Relu => y.relu()?,
        Activation::ReluN1To1 => y.clamp(-1f32, 1f32)?,
        Activation::Relu6 => y.clamp(0f32, 6f32)?,
        Activation::Tanh => y.tanh()?,
    })
}

/// The (out, in) matrix of TFLite's bilinear resize along one axis.
fn interpolation(
    input: usize,
    output: usize,
    align_corners: bool,
    half_pixel: bool,
    device: &Device,
) -> Result<Tensor> {
    let scale = if align_corners && output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        input as f32 / output as f32
    };
    let mut m = vec![0f32; output * input];
    for o in 0..output {
        let v = if half_pixel {
            (o as f32 + 0.5) * scale - 0.5
        } else {
            o as f32 * scale
        };
        let lo = (v.floor() as i64).max(0) as usize;
        let hi = (v.ceil() as i64).min(input as i64 - 1).max(0) as usize;
        let lo = lo.min(input - 1);
        let f = v - lo as f32;
        m[o * input + lo] += 1.0 - f;
        m[o * input + hi] += f;
    }
    Ok(Tensor::from_vec(m, (output, input), device)?)
}
