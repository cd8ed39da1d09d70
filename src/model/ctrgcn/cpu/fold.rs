//! Builds the folded f32 weights of a [`super::CpuCtrGcn`] from a CTR-GCN
//! state dict (the reference names, f32/f16/bf16 tensors).
//!
//! Every BN that follows a linear map is folded into it (`w·s`, `b·s + t`
//! with `s = γ/√(σ² + ε)`, `t = β − μ·s`); the unit BN of each spatial unit
//! goes into the value convs (`conv3`, scale and bias: the aggregation is
//! linear per channel) and a per-channel shift after the sum; `alpha` is
//! multiplied into each `conv4`. The BN after the max-pool stays an affine
//! map (a max does not commute with a negative scale).

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use super::{BlockPlan, Residual};
use crate::kernel::simd::padded_width;
use crate::model::ctrgcn::Config;
use crate::model::layer::batch_norm::BN_EPS;
use crate::{Error, Result};

/// Reads tensors by name as f32 vectors, with the expected element count.
pub(super) struct Weights<'a> {
    map: &'a HashMap<String, Tensor>,
}

impl<'a> Weights<'a> {
    pub(super) fn new(map: &'a HashMap<String, Tensor>) -> Self {
        Self { map }
    }

    /// `name` flattened to f32, checked to hold `len` elements.
    pub(super) fn get(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let t = self.map.get(name).ok_or_else(|| Error::MissingWeight {
            name: name.to_string(),
            path: "(state dict)".into(),
        })?;
        if t.elem_count() != len {
            return Err(Error::shape(
                format!("weight {name}"),
                format!("{len} elements"),
                t.dims(),
            ));
        }
        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// A BN's inference `(scale, shift)` over `c` channels.
    pub(super) fn bn(&self, prefix: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let g = self.get(&format!("{prefix}.weight"), c)?;
        let b = self.get(&format!("{prefix}.bias"), c)?;
        let m = self.get(&format!("{prefix}.running_mean"), c)?;
        let v = self.get(&format!("{prefix}.running_var"), c)?;
        let mut scale = vec![0f32; c];
        let mut shift = vec![0f32; c];
        for i in 0..c {
            let s = g[i] as f64 / (v[i] as f64 + BN_EPS).sqrt();
            scale[i] = s as f32;
            shift[i] = (b[i] as f64 - m[i] as f64 * s) as f32;
        }
        Ok((scale, shift))
    }

    /// A 1x1 conv `(O, I, 1, 1)` as `(O·I)` row-major weight and `(O)` bias.
    pub(super) fn pointwise(
        &self,
        prefix: &str,
        o: usize,
        i: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((
            self.get(&format!("{prefix}.weight"), o * i)?,
            self.get(&format!("{prefix}.bias"), o)?,
        ))
    }

    /// A 1x1 conv followed by a BN, folded.
    pub(super) fn pointwise_bn(
        &self,
        conv: &str,
        bn: &str,
        o: usize,
        i: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mut w, mut b) = self.pointwise(conv, o, i)?;
        let (s, t) = self.bn(bn, o)?;
        scale_rows(&mut w, &mut b, &s, i);
        for (b, t) in b.iter_mut().zip(&t) {
            *b += t;
        }
        Ok((w, b))
    }
}

/// `w[o, :] *= s[o]`, `b[o] *= s[o]` for a row-major `(O, cols)` weight.
fn scale_rows(w: &mut [f32], b: &mut [f32], s: &[f32], cols: usize) {
    for (o, &s) in s.iter().enumerate() {
        for x in &mut w[o * cols..(o + 1) * cols] {
            *x *= s;
        }
        b[o] *= s;
    }
}

/// The folded plan of block `l{k}` (`k` from 1).
#[allow(clippy::too_many_arguments)]
pub(super) fn block(
    w: &Weights,
    cfg: &Config,
    k: usize,
    c_in: usize,
    c_out: usize,
    stride: usize,
    subsets: usize,
    v: usize,
) -> Result<BlockPlan> {
    let p = format!("l{k}");
    let (i_, o) = (c_in, c_out);
    let rel = cfg.rel_channels(c_in);
    let g = format!("{p}.gcn1");
    let (gs, gshift) = w.bn(&format!("{g}.bn"), o)?;
    let alpha = w.get(&format!("{g}.alpha"), 1)?[0];
    let pa = w.get(&format!("{g}.PA"), subsets * v * v)?;
    let pw = padded_width(v);
    let mut pa_t = vec![0f32; subsets * v * pw];
    for s in 0..subsets {
        for u in 0..v {
            for vv in 0..v {
                pa_t[(s * v + vv) * pw + u] = pa[(s * v + u) * v + vv];
            }
        }
    }

    let mut w12 = Vec::with_capacity(subsets * 2 * rel * i_);
    let mut b12 = Vec::with_capacity(subsets * 2 * rel);
    let mut w4 = Vec::with_capacity(subsets * o * rel);
    let mut c4 = Vec::with_capacity(subsets * o);
    // Rows of the fused product with the block input: conv3 of every
    // subset, then `down`, then the block residual conv.
    let mut wx = Vec::new();
    let mut bx = Vec::new();
    for s in 0..subsets {
        let c = format!("{g}.convs.{s}");
        for n in ["conv1", "conv2"] {
            let (cw, cb) = w.pointwise(&format!("{c}.{n}"), rel, i_)?;
            w12.extend(cw);
            b12.extend(cb);
        }
        let (mut cw, mut cb) = w.pointwise(&format!("{c}.conv3"), o, i_)?;
        scale_rows(&mut cw, &mut cb, &gs, i_);
        wx.extend(cw);
        bx.extend(cb);
        let (cw, cb) = w.pointwise(&format!("{c}.conv4"), o, rel)?;
        w4.extend(cw.iter().map(|x| x * alpha));
        c4.extend(cb.iter().map(|x| x * alpha));
    }
    let down = c_in != c_out;
    let mut gshift = gshift;
    if down {
        let (dw, db) = w.pointwise_bn(&format!("{g}.down.0"), &format!("{g}.down.1"), o, i_)?;
        wx.extend(dw);
        // The unit BN's shift rides on the down conv's bias.
        bx.extend(db.iter().zip(&gshift).map(|(a, b)| a + b));
        gshift.iter_mut().for_each(|x| *x = 0.0);
    }
    let residual = if k == 1 {
        Residual::None
    } else if c_in == c_out && stride == 1 {
        Residual::Identity
    } else {
        let (rw, rb) = w.pointwise_bn(
            &format!("{p}.residual.conv"),
            &format!("{p}.residual.bn"),
            o,
            i_,
        )?;
        wx.extend(rw);
        bx.extend(rb);
        Residual::Conv
    };

    let t = format!("{p}.tcn1.branches");
    let nb = cfg.dilations.len() + 2;
    let bc = o / nb;
    let kt = cfg.temporal_kernel;
    let mut wb = Vec::with_capacity(o * o);
    let mut bb = Vec::with_capacity(o);
    let mut wt = Vec::new();
    let mut bt = Vec::new();
    for (j, _) in cfg.dilations.iter().enumerate() {
        let (bw, b) = w.pointwise_bn(&format!("{t}.{j}.0"), &format!("{t}.{j}.1"), bc, o)?;
        wb.extend(bw);
        bb.extend(b);
        // (O, I, K, 1) -> [o][tap][i], then the BN folded per output row.
        let raw = w.get(&format!("{t}.{j}.3.conv.weight"), bc * bc * kt)?;
        let mut tw = vec![0f32; bc * kt * bc];
        for oc in 0..bc {
            for ic in 0..bc {
                for tap in 0..kt {
                    tw[oc * kt * bc + tap * bc + ic] = raw[(oc * bc + ic) * kt + tap];
                }
            }
        }
        let mut tb = w.get(&format!("{t}.{j}.3.conv.bias"), bc)?;
        let (s, sh) = w.bn(&format!("{t}.{j}.3.bn"), bc)?;
        scale_rows(&mut tw, &mut tb, &s, kt * bc);
        tb.iter_mut().zip(&sh).for_each(|(a, b)| *a += b);
        wt.push(tw);
        bt.push(tb);
    }
    let jp = cfg.dilations.len();
    let (bw, b) = w.pointwise_bn(&format!("{t}.{jp}.0"), &format!("{t}.{jp}.1"), bc, o)?;
    wb.extend(bw);
    bb.extend(b);
    let (pool_scale, pool_shift) = w.bn(&format!("{t}.{jp}.4"), bc)?;
    let jw = jp + 1;
    let (bw, b) = w.pointwise_bn(&format!("{t}.{jw}.0"), &format!("{t}.{jw}.1"), bc, o)?;
    wb.extend(bw);
    bb.extend(b);

    Ok(BlockPlan {
        c_in,
        c_out,
        stride,
        rel,
        w12,
        b12,
        w4,
        c4,
        pa_t,
        wx,
        bx,
        down,
        residual,
        gshift,
        nb,
        bc,
        kt,
        dilations: cfg.dilations.clone(),
        wb,
        bb,
        wt,
        bt,
        pool_scale,
        pool_shift,
    })
}
