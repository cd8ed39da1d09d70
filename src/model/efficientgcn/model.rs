//! EfficientGCN's layers and network, with weight names equal to the
//! authors' `state_dict` keys (`input_branches.{b}.stem_scn.conv.gcn.weight`,
//! `main_stream.block-0_tcn-0.depth_conv.0.weight`, `classifier.fc.bias`, ...),
//! so their checkpoint loads one to one.
//!
//! Follows the authors' `src/model/{nets,layers,attentions}.py` (v1):
//! - graph layer (`Spatial_Graph_Layer`): 1x1 conv to `K * C_out` channels,
//!   aggregation `y[n,c,t,w] = Σ_k Σ_v x[n,k,c,t,v] (A ⊙ edge)[k,v,w]`, BN,
//!   residual (identity, or 1x1 conv + BN when the width changes), activation;
//! - basic temporal layer (`Temporal_Basic_Layer`, the stem): `(K, 1)` conv,
//!   BN, identity residual, activation;
//! - separable temporal layer (`Temporal_Sep_Layer`): act(BN(1x1 expand)) →
//!   act(BN(depthwise `(K, 1)`, stride)) → BN(1x1 project), plus the residual
//!   (identity, or strided 1x1 conv + BN), no activation after the sum;
//! - attention (`Attention_Layer` with `ST_Joint_Att`): frame and joint
//!   means, a shared 1x1 conv + BN + Hardswish, sigmoid gates per frame and
//!   per joint; `act(BN(x · gate_t · gate_v) + x)`.
//!
//! Persons are folded into the batch (`N * M`, person-minor as in the
//! reference) and averaged with frames and joints in the global pooling.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::depthwise::DepthwiseTemporalConv;
use super::{Activation, Config};
use crate::model::layer::{hard_swish, swish, BatchNorm, Pointwise, TemporalConv};
use crate::model::{flops, Encoder, Trace};
use crate::skeleton::graph::{hop_distance, normalize_digraph, Adjacency};
use crate::skeleton::Layout;

/// The authors' graph partition: joints within `max_hop` hops are
/// connected, the matrix is column-normalized (`A D^-1`), and subset `k`
/// keeps the normalized entries of the pairs exactly `k` hops apart, for
/// `k < num_subsets`. With the NTU layout, `max_hop = 3` and 3 subsets this
/// equals the `A` stored in the config-2001 checkpoint.
pub fn hop_partition(layout: &Layout, max_hop: usize, num_subsets: usize) -> Adjacency {
    let v = layout.num_joints();
    let hop = hop_distance(layout, max_hop);
    let within: Vec<f32> = hop
        .iter()
        .map(|&h| if h <= max_hop { 1.0 } else { 0.0 })
        .collect();
    let norm = normalize_digraph(&within, v);
    let mut data = vec![0f32; num_subsets * v * v];
    for k in 0..num_subsets {
        for (idx, (&h, &a)) in hop.iter().zip(&norm).enumerate() {
            if h == k {
                data[k * v * v + idx] = a;
            }
        }
    }
    Adjacency {
        k: num_subsets,
        v,
        data,
    }
}

fn activate(act: Activation, x: &Tensor) -> Result<Tensor> {
    match act {
        Activation::Swish => swish(x),
        Activation::HardSwish => hard_swish(x),
        Activation::Relu => x.relu(),
    }
}

fn kaiming(vb: &VarBuilder, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
    // The authors' init: Kaiming normal, fan-out.
    let init = Init::Kaiming {
        dist: candle_nn::init::NormalOrUniform::Normal,
        fan: candle_nn::init::FanInOut::FanOut,
        non_linearity: candle_nn::init::NonLinearity::ReLU,
    };
    vb.get_with_hints(shape, "weight", init)
}

fn pointwise(i: usize, o: usize, stride: usize, bias: bool, vb: VarBuilder) -> Result<Pointwise> {
    if bias {
        Pointwise::new(i, o, stride, vb)
    } else {
        Pointwise::new_no_bias(i, o, stride, vb)
    }
}

fn with_bn(y: Tensor, bn: Option<&BatchNorm>, train: bool) -> Result<Tensor> {
    match bn {
        Some(bn) => bn.forward_t(&y, train),
        None => Ok(y),
    }
}

/// `x + shift` with `shift: (C,)` broadcast over dimension 1 of
/// `x: (N, C, T, V)`.
fn add_channel_shift(x: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    x.broadcast_add(&shift.to_dtype(x.dtype())?.reshape((1, c, 1, 1))?)
}

/// `weight (O, ...)` and `bias (O,)` scaled per output channel by `scale`
/// (computed in f32, returned in the weight's dtype).
fn scale_out(weight: &Tensor, bias: Option<&Tensor>, scale: &Tensor) -> Result<(Tensor, Tensor)> {
    let dt = weight.dtype();
    let o = weight.dim(0)?;
    let mut shape = vec![1usize; weight.rank()];
    shape[0] = o;
    let w = weight
        .to_dtype(DType::F32)?
        .broadcast_mul(&scale.reshape(shape.as_slice())?)?
        .to_dtype(dt)?;
    let b = match bias {
        Some(b) => (b.to_dtype(DType::F32)? * scale)?,
        None => scale.zeros_like()?,
    };
    Ok((w, b.to_dtype(dt)?))
}

/// A 1x1 convolution followed by batch norm (`<name>.0`, `<name>.1` in the
/// reference's `nn.Sequential`); after folding, the convolution alone.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Pointwise,
    bn: Option<BatchNorm>,
}

impl ConvBn {
    fn new(i: usize, o: usize, stride: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: pointwise(i, o, stride, bias, vb.pp("0"))?,
            bn: Some(BatchNorm::new(o, vb.pp("1"))?),
        })
    }

    /// `x: (N, I, T, V) -> (N, O, T', V)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        with_bn(self.conv.forward(x)?, self.bn.as_ref(), train)
    }

    fn fold(&self) -> Result<Self> {
        Ok(match &self.bn {
            Some(bn) => Self {
                conv: self.conv.fold_bn(bn)?,
                bn: None,
            },
            None => self.clone(),
        })
    }
}

/// The graph layer (`Spatial_Graph_Layer` with `SpatialGraphConv`).
#[derive(Debug, Clone)]
struct GraphLayer {
    /// `conv.gcn`: `(K * C_out, C_in, 1, 1)`
    gcn: Pointwise,
    /// `conv.A`: `(K, V, V)`
    a: Tensor,
    /// `conv.edge`: `(K, V, V)` learnable mask, if configured
    edge: Option<Tensor>,
    bn: Option<BatchNorm>,
    /// The folded BN's shift `(C_out,)`, added after the aggregation when
    /// it could not be merged into a residual convolution.
    shift: Option<Tensor>,
    /// `None`: identity.
    residual: Option<ConvBn>,
    k: usize,
    act: Activation,
}

impl GraphLayer {
    fn new(i: usize, o: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let k = cfg.num_subsets();
        let layout = cfg.skeleton().map_err(candle_core::Error::wrap)?;
        let v = layout.num_joints();
        let vc = vb.pp("conv");
        let a = if vc.contains_tensor("A") {
            vc.get((k, v, v), "A")?
        } else {
            // Not in the weights (a fresh VarMap): the graph the checkpoint
            // was built with. A is a constant, not a parameter.
            hop_partition(layout, cfg.graph_max_hop, k)
                .to_tensor(vb.device())?
                .to_dtype(vb.dtype())?
        };
        let edge = if cfg.edge {
            Some(vc.get_with_hints((k, v, v), "edge", Init::Const(1.0))?)
        } else {
            None
        };
        let residual = if i != o {
            Some(ConvBn::new(i, o, 1, cfg.bias, vb.pp("residual"))?)
        } else {
            None
        };
        Ok(Self {
            gcn: pointwise(i, k * o, 1, cfg.bias, vc.pp("gcn"))?,
            a,
            edge,
            bn: Some(BatchNorm::new(o, vb.pp("bn"))?),
            shift: None,
            residual,
            k,
            act: cfg.activation,
        })
    }

    /// `x: (N, C_in, T, V) -> (N, C_out, T, V)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.gcn.forward(x)?; // (N, K*C, T, V)
        let (n, kc, t, v) = y.dims4()?;
        let k = self.k;
        let c = kc / k;
        let a = match &self.edge {
            Some(e) => (&self.a * e)?,
            None => self.a.clone(),
        }; // (K, V, W)
        let w = a.dim(2)?;
        let a = a.to_dtype(y.dtype())?.reshape((k * v, w))?;
        // (N, K, C, T, V) -> (N, C, T, K, V): rows of the aggregation matmul
        let y = y
            .reshape((n, k, c, t, v))?
            .permute((0, 2, 3, 1, 4))?
            .contiguous()?
            .reshape((n * c * t, k * v))?;
        flops::add((n * c * t * k * v * w) as u64);
        let y = y.matmul(&a)?.reshape((n, c, t, w))?; // (N, C, T, W)
        let y = with_bn(y, self.bn.as_ref(), train)?;
        let y = match &self.shift {
            Some(s) => add_channel_shift(&y, s)?,
            None => y,
        };
        let res = match &self.residual {
            Some(r) => r.forward_t(x, train)?,
            None => x.clone(),
        };
        activate(self.act, &(y + res)?)
    }

    fn fold(&self) -> Result<Self> {
        let Some(bn) = &self.bn else {
            return Ok(self.clone());
        };
        // BN after the aggregation: its scale acts per output channel c and
        // commutes with the aggregation, so it goes into the K groups of the
        // gcn weights; its shift is added after the aggregation, merged into
        // the residual convolution's bias when there is one.
        let (scale, shift) = bn.scale_shift()?;
        let scale_k = scale.repeat(self.k)?; // (K*C,), k-major like the channels
        let (w, b) = scale_out(self.gcn.weight(), self.gcn.bias(), &scale_k)?;
        let gcn = Pointwise::from_tensors(w, Some(b), 1);
        let (residual, shift) = match &self.residual {
            Some(r) => {
                let r = r.fold()?;
                let bias = match r.conv.bias() {
                    Some(b) => (b.to_dtype(DType::F32)? + &shift)?,
                    None => shift,
                };
                let dt = r.conv.weight().dtype();
                let conv =
                    Pointwise::from_tensors(r.conv.weight().clone(), Some(bias.to_dtype(dt)?), 1);
                (Some(ConvBn { conv, bn: None }), None)
            }
            None => (None, Some(shift)),
        };
        Ok(Self {
            gcn,
            a: self.a.clone(),
            edge: self.edge.clone(),
            bn: None,
            shift,
            residual,
            k: self.k,
            act: self.act,
        })
    }
}

/// The stem's temporal layer (`Temporal_Basic_Layer`, stride 1): `(K, 1)`
/// conv, BN, identity residual, activation.
#[derive(Debug, Clone)]
struct BasicTemporalLayer {
    conv: TemporalConv,
    bn: Option<BatchNorm>,
    act: Activation,
}

impl BasicTemporalLayer {
    fn new(c: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let k = cfg.temporal_window;
        let vc = vb.pp("conv");
        let weight = kaiming(&vc, (c, c, k, 1))?;
        let bias = if cfg.bias {
            Some(vc.get_with_hints(c, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            conv: TemporalConv::from_tensors(weight, bias, 1, 1, (k - 1) / 2),
            bn: Some(BatchNorm::new(c, vb.pp("bn"))?),
            act: cfg.activation,
        })
    }

    /// `x: (N, C, T, V) -> (N, C, T, V)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = with_bn(self.conv.forward(x)?, self.bn.as_ref(), train)?;
        activate(self.act, &(y + x)?)
    }

    fn fold(&self) -> Result<Self> {
        Ok(match &self.bn {
            Some(bn) => Self {
                conv: self.conv.fold_bn(bn)?,
                bn: None,
                act: self.act,
            },
            None => self.clone(),
        })
    }
}

/// The separable temporal layer (`Temporal_Sep_Layer`).
#[derive(Debug, Clone)]
struct SepLayer {
    expand: ConvBn,
    depth: DepthwiseTemporalConv,
    depth_bn: Option<BatchNorm>,
    point: ConvBn,
    /// `None`: identity (stride 1).
    residual: Option<ConvBn>,
    act: Activation,
}

impl SepLayer {
    fn new(c: usize, stride: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let inner = c * cfg.expand_ratio;
        let vd = vb.pp("depth_conv");
        let residual = if stride != 1 {
            Some(ConvBn::new(c, c, stride, cfg.bias, vb.pp("residual"))?)
        } else {
            None
        };
        Ok(Self {
            expand: ConvBn::new(c, inner, 1, cfg.bias, vb.pp("expand_conv"))?,
            depth: DepthwiseTemporalConv::new(
                inner,
                cfg.temporal_window,
                stride,
                cfg.bias,
                vd.pp("0"),
            )?,
            depth_bn: Some(BatchNorm::new(inner, vd.pp("1"))?),
            point: ConvBn::new(inner, c, 1, cfg.bias, vb.pp("point_conv"))?,
            residual,
            act: cfg.activation,
        })
    }

    /// `x: (N, C, T, V) -> (N, C, ceil(T / s), V)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let res = match &self.residual {
            Some(r) => r.forward_t(x, train)?,
            None => x.clone(),
        };
        let y = activate(self.act, &self.expand.forward_t(x, train)?)?; // (N, eC, T, V)
        let y = with_bn(self.depth.forward(&y)?, self.depth_bn.as_ref(), train)?;
        let y = activate(self.act, &y)?; // (N, eC, T', V)
        self.point.forward_t(&y, train)? + res
    }

    fn fold(&self) -> Result<Self> {
        Ok(Self {
            expand: self.expand.fold()?,
            depth: match &self.depth_bn {
                Some(bn) => self.depth.fold_bn(bn)?,
                None => self.depth.clone(),
            },
            depth_bn: None,
            point: self.point.fold()?,
            residual: self.residual.as_ref().map(ConvBn::fold).transpose()?,
            act: self.act,
        })
    }
}

/// The attention layer (`Attention_Layer` with `ST_Joint_Att`).
#[derive(Debug, Clone)]
struct AttentionLayer {
    /// `att.fcn`: 1x1 conv `C -> C / r` + BN (+ Hardswish)
    fcn: ConvBn,
    /// `att.conv_t`: `C / r -> C`, always with bias
    conv_t: Pointwise,
    /// `att.conv_v`: `C / r -> C`, always with bias
    conv_v: Pointwise,
    /// `bn`: follows a product, not a convolution; kept as an affine map.
    bn: BatchNorm,
    act: Activation,
}

impl AttentionLayer {
    fn new(c: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let inner = c / cfg.reduct_ratio;
        let va = vb.pp("att");
        Ok(Self {
            fcn: ConvBn::new(c, inner, 1, cfg.bias, va.pp("fcn"))?,
            conv_t: Pointwise::new(inner, c, 1, va.pp("conv_t"))?,
            conv_v: Pointwise::new(inner, c, 1, va.pp("conv_v"))?,
            bn: BatchNorm::new(c, vb.pp("bn"))?,
            act: cfg.activation,
        })
    }

    /// `x: (N, C, T, V) -> (N, C, T, V)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_n, _c, t, v) = x.dims4()?;
        // Means over 25 joints and up to 288 frames: accumulate in f32 (an
        // f16 sum of that many terms costs a visible share of f16 accuracy).
        let xf = x.to_dtype(DType::F32)?;
        let x_t = xf.mean_keepdim(3)?.to_dtype(x.dtype())?; // (N, C, T, 1)
        let x_v = xf.mean_keepdim(2)?.transpose(2, 3)?.to_dtype(x.dtype())?; // (N, C, V, 1)
        let z = Tensor::cat(&[&x_t, &x_v], 2)?; // (N, C, T+V, 1)
        let z = hard_swish(&self.fcn.forward_t(&z, train)?)?; // (N, C/r, T+V, 1)
        let z_t = z.narrow(2, 0, t)?; // (N, C/r, T, 1)
        let z_v = z.narrow(2, t, v)?.transpose(2, 3)?; // (N, C/r, 1, V)
        let gate_t = candle_nn::ops::sigmoid(&self.conv_t.forward(&z_t)?)?; // (N, C, T, 1)
        let gate_v = candle_nn::ops::sigmoid(&self.conv_v.forward(&z_v)?)?; // (N, C, 1, V)
        let y = x.broadcast_mul(&gate_t)?.broadcast_mul(&gate_v)?; // (N, C, T, V)
        let y = self.bn.forward_t(&y, train)?;
        activate(self.act, &(y + x)?)
    }

    fn fold(&self) -> Result<Self> {
        Ok(Self {
            fcn: self.fcn.fold()?,
            ..self.clone()
        })
    }
}

/// One block: graph layer, `depth` temporal layers, attention.
#[derive(Debug, Clone)]
struct GcnBlock {
    scn: GraphLayer,
    tcn: Vec<SepLayer>,
    att: AttentionLayer,
}

/// An input branch (`init_bn`, stem, blocks) or the main stream (blocks).
#[derive(Debug, Clone)]
struct Stream {
    init_bn: Option<BatchNorm>,
    stem: Option<(GraphLayer, BasicTemporalLayer)>,
    blocks: Vec<GcnBlock>,
}

impl Stream {
    /// `input_channel > 0` builds an input branch with `init_bn` and stem.
    fn new(
        cfg: &Config,
        blocks: &[super::Block],
        init_channel: usize,
        input_channel: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (init_bn, stem) = if input_channel > 0 {
            let bn = BatchNorm::new(input_channel, vb.pp("init_bn"))?;
            let scn = GraphLayer::new(input_channel, init_channel, cfg, vb.pp("stem_scn"))?;
            let tcn = BasicTemporalLayer::new(init_channel, cfg, vb.pp("stem_tcn"))?;
            (Some(bn), Some((scn, tcn)))
        } else {
            (None, None)
        };
        let mut last = init_channel;
        let mut out = Vec::with_capacity(blocks.len());
        for (i, b) in blocks.iter().enumerate() {
            let scn = GraphLayer::new(last, b.channels, cfg, vb.pp(format!("block-{i}_scn")))?;
            let tcn = (0..b.depth)
                .map(|j| {
                    let s = if j == 0 { b.stride } else { 1 };
                    SepLayer::new(b.channels, s, cfg, vb.pp(format!("block-{i}_tcn-{j}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let att = AttentionLayer::new(b.channels, cfg, vb.pp(format!("block-{i}_att")))?;
            out.push(GcnBlock { scn, tcn, att });
            last = b.channels;
        }
        Ok(Self {
            init_bn,
            stem,
            blocks: out,
        })
    }

    /// `x: (N*M, C, T, V) -> (N*M, C', T', V)`, recording
    /// `{prefix}.input_bn`, `{prefix}.stem_scn`, `{prefix}.stem_tcn`,
    /// `{prefix}.block{i}.scn`, `{prefix}.block{i}.tcn{j}` and
    /// `{prefix}.block{i}` (the block's output, after its attention).
    fn forward_traced(
        &self,
        x: &Tensor,
        train: bool,
        trace: &mut Trace,
        prefix: &str,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        if let Some(bn) = &self.init_bn {
            x = bn.forward_t(&x, train)?;
            trace.record(|| format!("{prefix}.input_bn"), &x);
        }
        if let Some((scn, tcn)) = &self.stem {
            x = scn.forward_t(&x, train)?;
            trace.record(|| format!("{prefix}.stem_scn"), &x);
            x = tcn.forward_t(&x, train)?;
            trace.record(|| format!("{prefix}.stem_tcn"), &x);
        }
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.scn.forward_t(&x, train)?;
            trace.record(|| format!("{prefix}.block{i}.scn"), &x);
            for (j, l) in b.tcn.iter().enumerate() {
                x = l.forward_t(&x, train)?;
                trace.record(|| format!("{prefix}.block{i}.tcn{j}"), &x);
            }
            x = b.att.forward_t(&x, train)?;
            trace.record(|| format!("{prefix}.block{i}"), &x);
        }
        Ok(x)
    }

    fn fold(&self) -> Result<Self> {
        let stem = match &self.stem {
            Some((scn, tcn)) => Some((scn.fold()?, tcn.fold()?)),
            None => None,
        };
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(GcnBlock {
                    scn: b.scn.fold()?,
                    tcn: b.tcn.iter().map(SepLayer::fold).collect::<Result<_>>()?,
                    att: b.att.fold()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            init_bn: self.init_bn.clone(),
            stem,
            blocks,
        })
    }
}

/// EfficientGCN: input `(N, num_input * in_channels, T, V, M)` — the
/// branches' streams stacked along channels (joint | velocity | bone, see
/// [`super::preprocess`]) — to logits `(N, num_class)`.
///
/// Trace points (names are shared with `tests/fixtures/gen_efficientgcn.py`):
/// `branch{b}.input_bn`, `branch{b}.stem_scn`, `branch{b}.stem_tcn`,
/// `branch{b}.block{i}.scn`, `branch{b}.block{i}` (b = 0 joint, 1 velocity,
/// 2 bone), `main.block{k}.scn`, `main.block{k}.tcn{j}`, `main.block{k}`,
/// all `(N*M, C, T, V)`; `pooled` `(N, C)`; `logits` `(N, num_class)`.
#[derive(Debug, Clone)]
pub struct EfficientGcn {
    cfg: Config,
    num_joints: usize,
    branches: Vec<Stream>,
    main: Stream,
    /// `classifier.fc.weight` as `(K, C)`
    fc_weight: Tensor,
    /// `classifier.fc.bias` `(K,)`
    fc_bias: Tensor,
}

impl EfficientGcn {
    /// Builds the network for `cfg`, taking weights from `vb` under the
    /// reference's names. When `vb` holds no `conv.A` for a graph layer (a
    /// fresh `VarMap`), the adjacency is derived from the layout with
    /// [`hop_partition`].
    pub fn new(cfg: &Config, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let blocks = cfg.blocks();
        let fs = cfg.fusion_stage;
        let vbi = vb.pp("input_branches");
        let branches = (0..cfg.num_input)
            .map(|b| {
                Stream::new(
                    cfg,
                    &blocks[..fs],
                    cfg.stem_channel,
                    cfg.in_channels,
                    vbi.pp(b.to_string()),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let last = if fs == 0 {
            cfg.stem_channel
        } else {
            blocks[fs - 1].channels
        };
        let main = Stream::new(
            cfg,
            &blocks[fs..],
            cfg.num_input * last,
            0,
            vb.pp("main_stream"),
        )?;
        let c = cfg.feature_channels();
        let k = cfg.num_class;
        let vf = vb.pp("classifier").pp("fc");
        let fc_weight = vf
            .get_with_hints(
                (k, c, 1, 1, 1),
                "weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.001,
                },
            )?
            .reshape((k, c))?;
        let fc_bias = vf.get_with_hints(k, "bias", Init::Const(0.0))?;
        Ok(Self {
            cfg: cfg.clone(),
            num_joints: cfg.num_joints()?,
            branches,
            main,
            fc_weight,
            fc_bias,
        })
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn check_input(&self, x: &Tensor) -> crate::Result<()> {
        let c = self.cfg.input_channels();
        let v = self.num_joints;
        let dims = x.dims();
        let ok = dims.len() == 5 && dims[1] == c && dims[3] == v && dims.iter().all(|&d| d > 0);
        if ok {
            Ok(())
        } else {
            Err(crate::Error::shape(
                "EfficientGCN input",
                format!("(N, {c}, T, {v}, M) with N, T, M > 0"),
                dims,
            ))
        }
    }

    fn forward_impl(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        let (n, ic, t, v, m) = x.dims5()?;
        let ci = self.cfg.in_channels;
        // (N, I*C, T, V, M) -> (N*M, I*C, T, V), person-minor in the batch
        let xb = x
            .permute((0, 4, 1, 2, 3))?
            .contiguous()?
            .reshape((n * m, ic, t, v))?;
        let mut ys = Vec::with_capacity(self.branches.len());
        for (b, branch) in self.branches.iter().enumerate() {
            let xi = xb.narrow(1, b * ci, ci)?; // (N*M, C, T, V)
            ys.push(branch.forward_traced(&xi, train, trace, &format!("branch{b}"))?);
        }
        let y = Tensor::cat(&ys, 1)?; // (N*M, I*C_b, T, V)
        let y = self.main.forward_traced(&y, train, trace, "main")?; // (N*M, C, T', V)
        let (_nm, c, _t, _v) = y.dims4()?;
        // mean over T, V and persons together, accumulated in f32
        let pooled = y
            .to_dtype(DType::F32)?
            .flatten_from(2)?
            .mean(2)? // (N*M, C)
            .reshape((n, m, c))?
            .mean(1)?
            .to_dtype(y.dtype())?; // (N, C)
        trace.record(|| "pooled".to_string(), &pooled);
        let feat = if train && self.cfg.drop_prob > 0.0 {
            candle_nn::ops::dropout(&pooled, self.cfg.drop_prob as f32)?
        } else {
            pooled
        };
        let k = self.cfg.num_class;
        flops::add((n * k * c) as u64);
        let w = self.fc_weight.to_dtype(feat.dtype())?;
        let logits = feat
            .matmul(&w.t()?)?
            .broadcast_add(&self.fc_bias.to_dtype(feat.dtype())?)?; // (N, K)
        trace.record(|| "logits".to_string(), &logits);
        Ok(logits)
    }
}

impl Encoder for EfficientGcn {
    fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> crate::Result<Tensor> {
        self.check_input(x)?;
        Ok(self.forward_impl(x, train, trace)?)
    }

    fn fold_batch_norm(&self) -> crate::Result<Box<dyn Encoder>> {
        let branches = self
            .branches
            .iter()
            .map(Stream::fold)
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Self {
            cfg: self.cfg.clone(),
            num_joints: self.num_joints,
            branches,
            main: self.main.fold()?,
            fc_weight: self.fc_weight.clone(),
            fc_bias: self.fc_bias.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    #[test]
    fn partition_columns_sum_to_one_over_three_hops() {
        let l = Layout::ntu25();
        // With as many subsets as hops, every column sums to 1.
        let full = hop_partition(l, 3, 4);
        for w in 0..25 {
            let s: f32 = (0..4)
                .map(|k| (0..25).map(|v| full.get(k, v, w)).sum::<f32>())
                .sum();
            assert!((s - 1.0).abs() < 1e-6, "column {w}: {s}");
        }
        // Subset 0 is the diagonal.
        let a = hop_partition(l, 3, 3);
        for i in 0..25 {
            for j in 0..25 {
                assert_eq!(a.get(0, i, j) > 0.0, i == j);
            }
        }
    }

    #[test]
    fn training_forward_reaches_every_parameter() -> crate::Result<()> {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let model = EfficientGcn::new(&Config::default(), vb)?;
        let x = Tensor::randn(0f32, 1.0, (2, 18, 8, 25, 2), &dev)?;
        let y = model.forward_t(&x, true)?;
        let grads = y.sqr()?.sum_all()?.backward()?;
        let data = vm.data().lock().expect("varmap lock");
        let mut checked = 0;
        for (name, var) in data.iter() {
            if name.ends_with("running_mean") || name.ends_with("running_var") {
                continue;
            }
            assert!(
                grads.get(var.as_tensor()).is_some(),
                "no gradient for {name}"
            );
            checked += 1;
        }
        // the checkpoint's 346 tensors less 104 running statistics and 11 A
        assert_eq!(checked, 231);
        Ok(())
    }

    #[test]
    fn fresh_model_runs_and_folds() -> crate::Result<()> {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let model = EfficientGcn::new(&Config::default(), vb)?;
        let x = Tensor::randn(0f32, 1.0, (1, 18, 12, 25, 2), &dev)?;
        let y = model.forward_t(&x, false)?;
        assert_eq!(y.dims(), &[1, 60]);
        let yf = model.fold_batch_norm()?.forward_t(&x, false)?;
        let d = (y - yf)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-4, "{d}");
        Ok(())
    }
}
