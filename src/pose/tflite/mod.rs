//! Reads TensorFlow Lite model files (`.tflite`, a FlatBuffer with file
//! identifier `TFL3`) into an owned graph: tensors with their constant
//! data, operators with their options, the first subgraph's inputs and
//! outputs.
//!
//! Why: MediaPipe ships BlazePose only as TFLite files; skelact runs them
//! with its own interpreter ([`super::interpreter`]) rather than linking
//! TensorFlow Lite.
//! Every access goes through [planus](https://docs.rs/planus)'s verifying
//! reader, so a corrupt or truncated file is a typed [`Error::Tflite`],
//! never a panic or an out-of-bounds read; constant buffers are checked
//! against their tensors' shapes; operators outside the set skelact
//! implements are refused by name ([`Error::TfliteUnsupported`]).
//!
//! The schema: `schema.fbs` beside this file is TensorFlow Lite's schema
//! (version 3c) trimmed to what is read here (its header says how).
//! `schema_generated.rs` was generated from it with planus-cli 1.3.0:
//!
//! ```sh
//! cargo install planus-cli --version 1.3.0
//! planus rust -o src/pose/tflite/schema_generated.rs src/pose/tflite/schema.fbs
//! ```

#[allow(
    missing_docs,
    dead_code,
    clippy::all,
    rustdoc::all,
    unused_qualifications
)]
mod schema_generated;
pub mod sparse;

use std::path::Path;

use half::f16;
use schema_generated::tflite as fb;

use crate::{Error, Result};
use sparse::{DimFormat, Sparsity};

/// Element types skelact reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// 32-bit float.
    F32,
    /// 16-bit float (weights behind `DEQUANTIZE`).
    F16,
    /// 32-bit signed integer (shapes, paddings).
    I32,
}

/// A constant tensor's values, decoded from little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// float32 values.
    F32(Vec<f32>),
    /// float16 values.
    F16(Vec<f16>),
    /// int32 values.
    I32(Vec<i32>),
}

/// One tensor of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDef {
    /// Name in the file (for messages).
    pub name: String,
    /// Static shape (TFLite layout, NHWC for images).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: ElementType,
    /// Constant values, for weights; for a sparse tensor, the stored
    /// (non-zero) values in traversal order.
    pub data: Option<Data>,
    /// Sparsity parameters of a sparse constant.
    pub sparsity: Option<Sparsity>,
}

/// Convolution and pooling padding as TFLite defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, zeros split evenly, the odd one after.
    Same,
    /// No padding.
    Valid,
}

/// A fused activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    None,
    /// max(x, 0).
    Relu,
    /// clamp(x, -1, 1).
    ReluN1To1,
    /// clamp(x, 0, 6).
    Relu6,
    /// tanh.
    Tanh,
}

/// The operators skelact implements, with the options they use.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// CONV_2D: input, filter (O, KH, KW, I), optional bias.
    Conv2d {
        /// Padding.
        padding: Padding,
        /// (rows, columns).
        stride: (usize, usize),
        /// (rows, columns).
        dilation: (usize, usize),
        /// Fused activation.
        act: Activation,
    },
    /// DEPTHWISE_CONV_2D: input, filter (1, KH, KW, C*M), optional bias.
    DepthwiseConv2d {
        /// Padding.
        padding: Padding,
        /// (rows, columns).
        stride: (usize, usize),
        /// (rows, columns).
        dilation: (usize, usize),
        /// Channel multiplier.
        depth_multiplier: usize,
        /// Fused activation.
        act: Activation,
    },
    /// ADD with broadcasting.
    Add(Activation),
    /// MAX_POOL_2D.
    MaxPool2d {
        /// Padding.
        padding: Padding,
        /// (rows, columns).
        stride: (usize, usize),
        /// (rows, columns).
        filter: (usize, usize),
        /// Fused activation.
        act: Activation,
    },
    /// PAD with zeros: input, paddings (rank, 2).
    Pad,
    /// RESHAPE to the output tensor's shape.
    Reshape,
    /// CONCATENATION along `axis` (TFLite layout, may be negative).
    Concatenation {
        /// Axis.
        axis: i32,
        /// Fused activation.
        act: Activation,
    },
    /// RESIZE_BILINEAR to the output tensor's size.
    ResizeBilinear {
        /// Corner pixels aligned.
        align_corners: bool,
        /// Pixel centres at +0.5.
        half_pixel_centers: bool,
    },
    /// LOGISTIC (sigmoid).
    Logistic,
    /// DEQUANTIZE (fp16 -> f32 here).
    Dequantize,
    /// DENSIFY (sparse -> dense).
    Densify,
    /// DEPTH_TO_SPACE with this block size (from the tensors' shapes).
    DepthToSpace(usize),
}

impl Op {
    /// TensorFlow Lite's name of the operator.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "CONV_2D",
            Op::DepthwiseConv2d { .. } => "DEPTHWISE_CONV_2D",
            Op::Add(_) => "ADD",
            Op::MaxPool2d { .. } => "MAX_POOL_2D",
            Op::Pad => "PAD",
            Op::Reshape => "RESHAPE",
            Op::Concatenation { .. } => "CONCATENATION",
            Op::ResizeBilinear { .. } => "RESIZE_BILINEAR",
            Op::Logistic => "LOGISTIC",
            Op::Dequantize => "DEQUANTIZE",
            Op::Densify => "DENSIFY",
            Op::DepthToSpace(_) => "DEPTH_TO_SPACE",
        }
    }

    /// TensorFlow Lite's builtin code of the operator.
    pub fn code(&self) -> i32 {
        match self {
            Op::Add(_) => 0,
            Op::Concatenation { .. } => 2,
            Op::Conv2d { .. } => 3,
            Op::DepthwiseConv2d { .. } => 4,
            Op::DepthToSpace(_) => 5,
            Op::Dequantize => 6,
            Op::Logistic => 14,
            Op::MaxPool2d { .. } => 17,
            Op::Reshape => 22,
            Op::ResizeBilinear { .. } => 23,
            Op::Pad => 34,
            Op::Densify => 124,
        }
    }
}

/// One operator node.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    /// What it computes.
    pub op: Op,
    /// Input tensor indices (`None` for an omitted optional input).
    pub inputs: Vec<Option<usize>>,
    /// Output tensor indices.
    pub outputs: Vec<usize>,
}

/// A TFLite model's first subgraph, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// All tensors.
    pub tensors: Vec<TensorDef>,
    /// Operators in execution order.
    pub operators: Vec<Operator>,
    /// Graph input tensor indices.
    pub inputs: Vec<usize>,
    /// Graph output tensor indices.
    pub outputs: Vec<usize>,
    /// The file's description string.
    pub description: String,
}

/// The most bytes a model file may have (2 GiB, FlatBuffers' own limit).
pub const MAX_FILE_BYTES: usize = 1 << 31;
/// The most dimensions a tensor may have.
const MAX_RANK: usize = 8;

fn verify(e: planus::Error) -> Error {
    Error::Tflite {
        reason: "FlatBuffer verification failed".into(),
        source: Some(e),
    }
}

fn index(v: i64, len: usize, what: &str) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&i| i < len)
        .ok_or_else(|| Error::tflite(format!("{what} index {v} out of range 0..{len}")))
}

impl Model {
    /// Reads a `.tflite` file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            Error::Tflite { reason, source } => Error::Tflite {
                reason: format!("{}: {reason}", path.display()),
                source,
            },
            other => other,
        })
    }

    /// Reads a TFLite model from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        use planus::ReadAsRoot;
        if bytes.len() < 8 || &bytes[4..8] != b"TFL3" {
            return Err(Error::tflite("not a TFLite file (no TFL3 identifier)"));
        }
        if bytes.len() > MAX_FILE_BYTES {
            return Err(Error::tflite("file larger than 2 GiB"));
        }
        let model = fb::ModelRef::read_as_root(bytes).map_err(verify)?;
        let description = model
            .description()
            .map_err(verify)?
            .unwrap_or("")
            .to_string();
        let buffers: Vec<fb::BufferRef<'_>> = match model.buffers().map_err(verify)? {
            Some(v) => v.iter().collect::<planus::Result<_>>().map_err(verify)?,
            None => Vec::new(),
        };
        let codes: Vec<fb::OperatorCodeRef<'_>> = match model.operator_codes().map_err(verify)? {
            Some(v) => v.iter().collect::<planus::Result<_>>().map_err(verify)?,
            None => Vec::new(),
        };
        let subgraphs = model
            .subgraphs()
            .map_err(verify)?
            .ok_or_else(|| Error::tflite("no subgraphs"))?;
        if subgraphs.len() != 1 {
            return Err(Error::tflite(format!(
                "{} subgraphs; skelact runs single-subgraph models",
                subgraphs.len()
            )));
        }
        let sg = subgraphs
            .get(0)
            .ok_or_else(|| Error::tflite("no subgraph"))?
            .map_err(verify)?;
        let fb_tensors: Vec<fb::TensorRef<'_>> = match sg.tensors().map_err(verify)? {
            Some(v) => v.iter().collect::<planus::Result<_>>().map_err(verify)?,
            None => Vec::new(),
        };
        let mut tensors = Vec::with_capacity(fb_tensors.len());
        for t in &fb_tensors {
            tensors.push(read_tensor(t, &buffers, bytes)?);
        }
        let n = tensors.len();
        let list = |v: Option<planus::Vector<'_, i32>>, what: &str| -> Result<Vec<usize>> {
            v.map(|v| v.iter().map(|i| index(i.into(), n, what)).collect())
                .unwrap_or_else(|| Ok(Vec::new()))
        };
        let inputs = list(sg.inputs().map_err(verify)?, "subgraph input")?;
        let outputs = list(sg.outputs().map_err(verify)?, "subgraph output")?;
        let mut operators = Vec::new();
        if let Some(ops) = sg.operators().map_err(verify)? {
            for (i, op) in ops.iter().enumerate() {
                let op = op.map_err(verify)?;
                let code = &codes[index(
                    op.opcode_index().map_err(verify)?.into(),
                    codes.len(),
                    "operator code",
                )?];
                let op_inputs: Vec<Option<usize>> = match op.inputs().map_err(verify)? {
                    Some(v) => v
                        .iter()
                        .map(|t| {
                            if t < 0 {
                                Ok(None)
                            } else {
                                index(t.into(), n, "operator input").map(Some)
                            }
                        })
                        .collect::<Result<_>>()?,
                    None => Vec::new(),
                };
                let op_outputs = list(op.outputs().map_err(verify)?, "operator output")?;
                let kind =
                    read_op(code, &op, &tensors, &op_inputs, &op_outputs).map_err(|e| match e {
                        Error::Tflite { reason, source } => Error::Tflite {
                            reason: format!("operator {i}: {reason}"),
                            source,
                        },
                        other => other,
                    })?;
                operators.push(Operator {
                    op: kind,
                    inputs: op_inputs,
                    outputs: op_outputs,
                });
            }
        }
        Ok(Model {
            tensors,
            operators,
            inputs,
            outputs,
            description,
        })
    }

    /// The distinct operator names of the graph, in first-use order.
    pub fn op_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for op in &self.operators {
            if !names.contains(&op.op.name()) {
                names.push(op.op.name());
            }
        }
        names
    }
}

fn read_tensor(
    t: &fb::TensorRef<'_>,
    buffers: &[fb::BufferRef<'_>],
    file: &[u8],
) -> Result<TensorDef> {
    let name = t.name().map_err(verify)?.unwrap_or("").to_string();
    let shape: Vec<usize> = match t.shape().map_err(verify)? {
        Some(v) => v
            .iter()
            .map(|d| {
                usize::try_from(d)
                    .map_err(|_| Error::tflite(format!("tensor `{name}` has dimension {d}")))
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    if shape.len() > MAX_RANK {
        return Err(Error::tflite(format!(
            "tensor `{name}` has rank {}",
            shape.len()
        )));
    }
    let dtype = match t.type_().map_err(verify)? {
        fb::TensorType::Float32 => ElementType::F32,
        fb::TensorType::Float16 => ElementType::F16,
        fb::TensorType::Int32 => ElementType::I32,
        other => {
            return Err(Error::TfliteUnsupported {
                name: format!("tensor type {other:?}"),
                code: other as i32,
                detail: format!(" (tensor `{name}`)"),
            })
        }
    };
    let sparsity = match t.sparsity().map_err(verify)? {
        Some(s) => Some(read_sparsity(&s)?),
        None => None,
    };
    let b = t.buffer().map_err(verify)? as usize;
    let bytes: &[u8] = match buffers.get(b) {
        None if b == 0 => &[],
        None => {
            return Err(Error::tflite(format!(
                "tensor `{name}` refers to buffer {b} of {}",
                buffers.len()
            )))
        }
        Some(buf) => {
            let (offset, size) = (buf.offset().map_err(verify)?, buf.size().map_err(verify)?);
            if offset > 1 {
                // Schema 3c: the data lies outside the FlatBuffer, at an offset in the file.
                let end = offset.checked_add(size).filter(|&e| e <= file.len() as u64);
                match end {
                    Some(end) => &file[offset as usize..end as usize],
                    None => {
                        return Err(Error::tflite(format!(
                            "buffer {b} ({offset}+{size}) lies past the end of the file"
                        )))
                    }
                }
            } else {
                buf.data().map_err(verify)?.unwrap_or(&[])
            }
        }
    };
    let data = if bytes.is_empty() {
        None
    } else {
        let width = match dtype {
            ElementType::F16 => 2,
            _ => 4,
        };
        if bytes.len() % width != 0 {
            return Err(Error::tflite(format!(
                "buffer of `{name}` has {} bytes, not a multiple of {width}",
                bytes.len()
            )));
        }
        let count = bytes.len() / width;
        let expected: usize = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        if sparsity.is_none() && count != expected {
            return Err(Error::tflite(format!(
                "buffer of `{name}` holds {count} values for shape {shape:?}"
            )));
        }
        Some(match dtype {
            ElementType::F32 => Data::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            ElementType::F16 => Data::F16(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            ElementType::I32 => Data::I32(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        })
    };
    if sparsity.is_some() && data.is_none() {
        return Err(Error::tflite(format!("sparse tensor `{name}` has no data")));
    }
    Ok(TensorDef {
        name,
        shape,
        dtype,
        data,
        sparsity,
    })
}

fn index_vector(v: Option<fb::SparseIndexVectorRef<'_>>) -> Result<Vec<usize>> {
    let to_usize = |x: i32| {
        usize::try_from(x).map_err(|_| Error::tflite(format!("negative sparse index {x}")))
    };
    Ok(match v {
        None => Vec::new(),
        Some(fb::SparseIndexVectorRef::Int32Vector(v)) => match v.values().map_err(verify)? {
            Some(v) => v.iter().map(to_usize).collect::<Result<_>>()?,
            None => Vec::new(),
        },
        Some(fb::SparseIndexVectorRef::Uint16Vector(v)) => match v.values().map_err(verify)? {
            Some(v) => v.iter().map(usize::from).collect(),
            None => Vec::new(),
        },
        Some(fb::SparseIndexVectorRef::Uint8Vector(v)) => match v.values().map_err(verify)? {
            Some(v) => v.iter().map(|&x| usize::from(x)).collect(),
            None => Vec::new(),
        },
    })
}

fn read_sparsity(s: &fb::SparsityParametersRef<'_>) -> Result<Sparsity> {
    let ints = |v: Option<planus::Vector<'_, i32>>| -> Result<Vec<usize>> {
        v.map(|v| {
            v.iter()
                .map(|x| usize::try_from(x).map_err(|_| Error::tflite("negative sparsity order")))
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))
    };
    let traversal_order = ints(s.traversal_order().map_err(verify)?)?;
    let block_map = ints(s.block_map().map_err(verify)?)?;
    let mut levels = Vec::new();
    if let Some(dims) = s.dim_metadata().map_err(verify)? {
        if dims.len() > 2 * MAX_RANK {
            return Err(Error::tflite("too many sparse levels"));
        }
        for d in dims.iter() {
            let d = d.map_err(verify)?;
            levels.push(match d.format().map_err(verify)? {
                fb::DimensionType::Dense => {
                    let size = d.dense_size().map_err(verify)?;
                    DimFormat::Dense(
                        usize::try_from(size)
                            .map_err(|_| Error::tflite(format!("dense size {size}")))?,
                    )
                }
                fb::DimensionType::SparseCsr => DimFormat::SparseCsr {
                    segments: index_vector(d.array_segments().map_err(verify)?)?,
                    indices: index_vector(d.array_indices().map_err(verify)?)?,
                },
            });
        }
    }
    Ok(Sparsity {
        traversal_order,
        block_map,
        levels,
    })
}

fn padding(p: fb::Padding) -> Padding {
    match p {
        fb::Padding::Same => Padding::Same,
        fb::Padding::Valid => Padding::Valid,
    }
}

fn activation(a: fb::ActivationFunctionType) -> Result<Activation> {
    Ok(match a {
        fb::ActivationFunctionType::None => Activation::None,
        fb::ActivationFunctionType::Relu => Activation::Relu,
        fb::ActivationFunctionType::ReluN1To1 => Activation::ReluN1To1,
        fb::ActivationFunctionType::Relu6 => Activation::Relu6,
        fb::ActivationFunctionType::Tanh => Activation::Tanh,
        fb::ActivationFunctionType::SignBit => {
            return Err(Error::TfliteUnsupported {
                name: "fused activation SIGN_BIT".into(),
                code: 5,
                detail: String::new(),
            })
        }
    })
}

fn positive(v: i32, what: &str) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&x| x > 0)
        .ok_or_else(|| Error::tflite(format!("{what} {v} is not positive")))
}

fn read_op(
    code: &fb::OperatorCodeRef<'_>,
    op: &fb::OperatorRef<'_>,
    tensors: &[TensorDef],
    inputs: &[Option<usize>],
    outputs: &[usize],
) -> Result<Op> {
    // Schema 3a: the larger of the deprecated byte and the int32 field.
    let deprecated = i32::from(code.deprecated_builtin_code().map_err(verify)?);
    let builtin = match code.builtin_code() {
        Ok(b) => b,
        Err(_) => {
            return Err(Error::TfliteUnsupported {
                name: "unknown".into(),
                code: deprecated,
                detail: " (not in the schema)".into(),
            })
        }
    };
    let code_value = (builtin as i32).max(deprecated);
    let builtin =
        fb::BuiltinOperator::try_from(code_value).map_err(|_| Error::TfliteUnsupported {
            name: "unknown".into(),
            code: code_value,
            detail: " (not in the schema)".into(),
        })?;
    let options = || op.builtin_options().map_err(verify);
    let missing = |what: &str| Error::tflite(format!("{builtin:?} without {what}"));
    use fb::BuiltinOperator as B;
    use fb::BuiltinOptionsRef as O;
    Ok(match builtin {
        B::Conv2d => match options()? {
            Some(O::Conv2DOptions(o)) => Op::Conv2d {
                padding: padding(o.padding().map_err(verify)?),
                stride: (
                    positive(o.stride_h().map_err(verify)?, "stride")?,
                    positive(o.stride_w().map_err(verify)?, "stride")?,
                ),
                dilation: (
                    positive(o.dilation_h_factor().map_err(verify)?, "dilation")?,
                    positive(o.dilation_w_factor().map_err(verify)?, "dilation")?,
                ),
                act: activation(o.fused_activation_function().map_err(verify)?)?,
            },
            _ => return Err(missing("Conv2DOptions")),
        },
        B::DepthwiseConv2d => match options()? {
            Some(O::DepthwiseConv2DOptions(o)) => Op::DepthwiseConv2d {
                padding: padding(o.padding().map_err(verify)?),
                stride: (
                    positive(o.stride_h().map_err(verify)?, "stride")?,
                    positive(o.stride_w().map_err(verify)?, "stride")?,
                ),
                dilation: (
                    positive(o.dilation_h_factor().map_err(verify)?, "dilation")?,
                    positive(o.dilation_w_factor().map_err(verify)?, "dilation")?,
                ),
                depth_multiplier: positive(
                    o.depth_multiplier().map_err(verify)?,
                    "depth multiplier",
                )?,
                act: activation(o.fused_activation_function().map_err(verify)?)?,
            },
            _ => return Err(missing("DepthwiseConv2DOptions")),
        },
        B::Add => match options()? {
            Some(O::AddOptions(o)) => {
                Op::Add(activation(o.fused_activation_function().map_err(verify)?)?)
            }
            None => Op::Add(Activation::None),
            _ => return Err(missing("AddOptions")),
        },
        B::MaxPool2d => match options()? {
            Some(O::Pool2DOptions(o)) => Op::MaxPool2d {
                padding: padding(o.padding().map_err(verify)?),
                stride: (
                    positive(o.stride_h().map_err(verify)?, "stride")?,
                    positive(o.stride_w().map_err(verify)?, "stride")?,
                ),
                filter: (
                    positive(o.filter_height().map_err(verify)?, "filter")?,
                    positive(o.filter_width().map_err(verify)?, "filter")?,
                ),
                act: activation(o.fused_activation_function().map_err(verify)?)?,
            },
            _ => return Err(missing("Pool2DOptions")),
        },
        B::Concatenation => match options()? {
            Some(O::ConcatenationOptions(o)) => Op::Concatenation {
                axis: o.axis().map_err(verify)?,
                act: activation(o.fused_activation_function().map_err(verify)?)?,
            },
            _ => return Err(missing("ConcatenationOptions")),
        },
        B::ResizeBilinear => match options()? {
            Some(O::ResizeBilinearOptions(o)) => Op::ResizeBilinear {
                align_corners: o.align_corners().map_err(verify)?,
                half_pixel_centers: o.half_pixel_centers().map_err(verify)?,
            },
            None => Op::ResizeBilinear {
                align_corners: false,
                half_pixel_centers: false,
            },
            _ => return Err(missing("ResizeBilinearOptions")),
        },
        B::Pad => Op::Pad,
        B::Reshape => Op::Reshape,
        B::Logistic => Op::Logistic,
        B::Dequantize => Op::Dequantize,
        B::Densify => Op::Densify,
        B::DepthToSpace => {
            // The block size follows from the shapes: (N, H, W, b*b*C) -> (N, H*b, W*b, C).
            let shape =
                |t: Option<usize>| t.and_then(|t| tensors.get(t)).map(|t| t.shape.as_slice());
            match (
                shape(inputs.first().copied().flatten()),
                shape(outputs.first().copied()),
            ) {
                (Some(&[n, h, w, c]), Some(&[n2, h2, w2, c2]))
                    if h > 0 && w > 0 && h2 % h == 0 && h2 / h == w2 / w.max(1) =>
                {
                    let b = h2 / h;
                    if b == 0 || n != n2 || w2 != w * b || c != c2 * b * b {
                        return Err(Error::tflite(format!(
                            "DEPTH_TO_SPACE {:?} -> {:?}",
                            [n, h, w, c],
                            [n2, h2, w2, c2]
                        )));
                    }
                    Op::DepthToSpace(b)
                }
                _ => {
                    return Err(Error::tflite(
                        "DEPTH_TO_SPACE needs rank-4 input and output",
                    ))
                }
            }
        }
        other => {
            return Err(Error::TfliteUnsupported {
                name: format!("{other:?}"),
                code: code_value,
                detail: String::new(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::interpreter::Interpreter;
    use candle_core::{Device, Tensor};
    use proptest::prelude::*;

    /// A hand-made TFLite file: a 1x1 convolution (2 output channels, fused
    /// ReLU) whose fp16 filter is stored CSR-sparse behind DENSIFY and
    /// DEQUANTIZE, as the pose detector stores its kernels; `op` replaces
    /// the convolution's operator code.
    fn tiny_model(conv_code: fb::BuiltinOperator) -> Vec<u8> {
        let f16s = |v: &[f32]| {
            v.iter()
                .flat_map(|x| f16::from_f32(*x).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let tensor = |shape: &[i32], ty: fb::TensorType, buffer: u32, name: &str| fb::Tensor {
            shape: Some(shape.to_vec()),
            type_: ty,
            buffer,
            name: Some(name.into()),
            ..Default::default()
        };
        let dense = |n: i32| fb::DimensionMetadata {
            format: fb::DimensionType::Dense,
            dense_size: n,
            ..Default::default()
        };
        let mut sparse_filter = tensor(&[2, 1, 1, 1], fb::TensorType::Float16, 1, "filter_sparse");
        // Filter (2, 1, 1, 1) = [2, 0]: only output channel 0 stores a value.
        sparse_filter.sparsity = Some(Box::new(fb::SparsityParameters {
            traversal_order: Some(vec![0, 1, 2, 3]),
            block_map: None,
            dim_metadata: Some(vec![
                dense(2),
                dense(1),
                dense(1),
                fb::DimensionMetadata {
                    format: fb::DimensionType::SparseCsr,
                    dense_size: 0,
                    array_segments: Some(fb::SparseIndexVector::Uint8Vector(Box::new(
                        fb::Uint8Vector {
                            values: Some(vec![0, 1, 1]),
                        },
                    ))),
                    array_indices: Some(fb::SparseIndexVector::Uint8Vector(Box::new(
                        fb::Uint8Vector {
                            values: Some(vec![0]),
                        },
                    ))),
                },
            ]),
        }));
        let tensors = vec![
            tensor(&[1, 3, 3, 1], fb::TensorType::Float32, 0, "input"),
            sparse_filter,
            tensor(&[2, 1, 1, 1], fb::TensorType::Float16, 0, "filter_f16"),
            tensor(&[2, 1, 1, 1], fb::TensorType::Float32, 0, "filter"),
            tensor(&[2], fb::TensorType::Float32, 2, "bias"),
            tensor(&[1, 3, 3, 2], fb::TensorType::Float32, 0, "output"),
        ];
        let code = |c: fb::BuiltinOperator| fb::OperatorCode {
            builtin_code: c,
            deprecated_builtin_code: (c as i32).min(127) as i8,
            ..Default::default()
        };
        let op = |index: u32,
                  inputs: Vec<i32>,
                  output: i32,
                  options: Option<fb::BuiltinOptions>| fb::Operator {
            opcode_index: index,
            inputs: Some(inputs),
            outputs: Some(vec![output]),
            builtin_options: options,
            ..Default::default()
        };
        let conv = fb::Conv2DOptions {
            padding: fb::Padding::Same,
            stride_w: 1,
            stride_h: 1,
            fused_activation_function: fb::ActivationFunctionType::Relu,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
        };
        let model = fb::Model {
            version: 3,
            operator_codes: Some(vec![
                code(fb::BuiltinOperator::Densify),
                code(fb::BuiltinOperator::Dequantize),
                code(conv_code),
            ]),
            subgraphs: Some(vec![fb::SubGraph {
                tensors: Some(tensors),
                inputs: Some(vec![0]),
                outputs: Some(vec![5]),
                operators: Some(vec![
                    op(0, vec![1], 2, None),
                    op(1, vec![2], 3, None),
                    op(
                        2,
                        vec![0, 3, 4],
                        5,
                        Some(fb::BuiltinOptions::Conv2DOptions(Box::new(conv))),
                    ),
                ]),
                name: None,
            }]),
            description: Some("skelact test".into()),
            buffers: Some(vec![
                fb::Buffer::default(),
                fb::Buffer {
                    data: Some(f16s(&[2.0])),
                    ..Default::default()
                },
                fb::Buffer {
                    data: Some(f32s(&[0.5, -1.0])),
                    ..Default::default()
                },
            ]),
            metadata_buffer: None,
        };
        // planus 1.3 writes a file identifier before the root offset rather
        // than after it, so the identifier goes in by hand: 8 bytes after the
        // root offset (keeping 8-byte alignment), the root offset moved by 8.
        let plain = planus::Builder::new().finish(&model, None).to_vec();
        let root = u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]) + 8;
        let mut bytes = root.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"TFL3");
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&plain[4..]);
        bytes
    }

    #[test]
    fn hand_made_model_runs() {
        let model = Model::from_bytes(&tiny_model(fb::BuiltinOperator::Conv2d)).unwrap();
        assert_eq!(model.op_names(), ["DENSIFY", "DEQUANTIZE", "CONV_2D"]);
        assert_eq!(model.description, "skelact test");
        let it = Interpreter::new(&model, &Device::Cpu).unwrap();
        let x: Vec<f32> = (0..9).map(|i| i as f32 - 4.0).collect();
        let y = it
            .run(&[Tensor::from_vec(x.clone(), (1, 3, 3, 1), &Device::Cpu).unwrap()])
            .unwrap();
        let y = y[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Channel 0: relu(2x + 0.5); channel 1: relu(0x - 1) = 0.
        let want: Vec<f32> = x
            .iter()
            .flat_map(|v| [(2.0 * v + 0.5f32).max(0.0), 0.0])
            .collect();
        assert_eq!(y, want);
    }

    #[test]
    fn unsupported_operator_is_named() {
        match Model::from_bytes(&tiny_model(fb::BuiltinOperator::Softmax)) {
            Err(Error::TfliteUnsupported { name, code, .. }) => {
                assert_eq!(name, "Softmax");
                assert_eq!(code, 25);
            }
            other => panic!("expected TfliteUnsupported, got {other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Truncated or corrupted files give a typed error (or a model that
        /// then runs or errors), never a panic.
        #[test]
        fn corrupt_bytes_never_panic(cut in 0usize..2000, flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..6)) {
            let mut bytes = tiny_model(fb::BuiltinOperator::Conv2d);
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] = v;
            }
            bytes.truncate(cut.min(bytes.len()));
            if let Ok(model) = Model::from_bytes(&bytes) {
                if let Ok(it) = Interpreter::new(&model, &Device::Cpu) {
                    if let Some(shape) = it.input_shape(0) {
                        if shape.iter().product::<usize>() < 1 << 16 {
                            let x = Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap();
                            let _ = it.run(&[x]);
                        }
                    }
                }
            }
        }

        /// Arbitrary bytes behind a TFL3 identifier never panic.
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 8..512)) {
            bytes[4..8].copy_from_slice(b"TFL3");
            let _ = Model::from_bytes(&bytes);
        }
    }
}
