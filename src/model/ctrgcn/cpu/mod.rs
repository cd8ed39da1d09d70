//! CTR-GCN inference on the CPU without a tensor graph: a plan of folded
//! f32 weights run over buffers the plan owns and reuses.
//!
//! The candle model ([`super::CtrGcn`]) is the definition, the trainer and
//! the GPU path; this is the same function, rearranged for a 2-core CPU at
//! batch 1 where candle's per-op allocation and memory passes cost more
//! than the arithmetic (CANDLE-NOTES.md). Per block and sample:
//!
//! 1. one matrix product of the block input with every 1x1 conv that reads
//!    it — the value convs of all subsets, `down`, and the block residual —
//!    BN folded, biases added in the same pass;
//! 2. the topology refinement on the time-averaged input (small products,
//!    a vectorized `tanh`), written as per-channel adjacency rows padded to
//!    a SIMD width, with `PA` and `alpha` folded in;
//! 3. the joint aggregation of every channel in one register-blocked loop
//!    ([`crate::kernel::simd::aggregate`]) summing the subsets, then shift,
//!    residual and ReLU in the same pass;
//! 4. one product for the four branch 1x1 convs of the temporal unit, one
//!    im2col product per dilated branch, the max-pool branch and the strided
//!    branch as loops, the block residual and ReLU.
//!
//! Samples (and persons) run in parallel over the rayon pool; a single
//! sample splits its products and the aggregation over the pool instead.
//! Buffers come from a pool of scratch sets: after the first call of a given
//! size no call allocates except for its output.
//!
//! Outputs equal the candle model's to f32 rounding (tests/parity_ctrgcn.rs
//! checks both against the PyTorch reference).

mod fold;

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::Config;
use crate::kernel::simd::{aggregate, padded_width, tanh_inplace};
use crate::kernel::{matmul, MatMut, MatRef};
use crate::model::{Encoder, Trace};
use crate::{Error, Result};

/// The residual of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Residual {
    None,
    Identity,
    /// Strided 1x1 conv + BN, computed in the fused input product.
    Conv,
}

/// One `TCN_GCN_unit`, folded.
#[derive(Debug, Clone)]
struct BlockPlan {
    c_in: usize,
    c_out: usize,
    stride: usize,
    rel: usize,
    /// `(S·2R, I)`: conv1 then conv2 of each subset.
    w12: Vec<f32>,
    b12: Vec<f32>,
    /// `(S, O, R)`: conv4 of each subset times `alpha`.
    w4: Vec<f32>,
    /// `(S, O)`: conv4's bias times `alpha`.
    c4: Vec<f32>,
    /// `(S, V, W)`: the learnable adjacency transposed (`[v][u]`), rows
    /// padded to the aggregation's SIMD width `W`.
    pa_t: Vec<f32>,
    /// `(rows, I)`: conv3 of each subset (unit BN scale folded), `down`,
    /// the block residual conv.
    wx: Vec<f32>,
    bx: Vec<f32>,
    down: bool,
    residual: Residual,
    /// `(O,)`: the unit BN's shift (zero when it rides on `down`'s bias).
    gshift: Vec<f32>,
    nb: usize,
    bc: usize,
    kt: usize,
    dilations: Vec<usize>,
    /// `(O, O)`: the branch 1x1 convs, BN folded.
    wb: Vec<f32>,
    bb: Vec<f32>,
    /// Per dilated branch, `(bc, kt·bc)` in `[o][tap][i]` order, BN folded.
    wt: Vec<Vec<f32>>,
    bt: Vec<Vec<f32>>,
    pool_scale: Vec<f32>,
    pool_shift: Vec<f32>,
}

impl BlockPlan {
    /// Multiply-accumulates of this block for one sample of `t` frames and
    /// `v` joints, counted per layer as the candle model counts them.
    fn macs(&self, subsets: usize, t: usize, v: usize) -> u64 {
        let (ci, co, r, bc) = (self.c_in, self.c_out, self.rel, self.bc);
        let (tv, t2v) = (t * v, t.div_ceil(self.stride) * v);
        let mut n = subsets * (2 * r * ci * v + co * r * v * v + co * ci * tv + co * tv * v);
        if self.down {
            n += co * ci * tv;
        }
        n += (self.nb - 1) * bc * co * tv + bc * co * t2v;
        n += self.dilations.len() * bc * bc * self.kt * t2v;
        if self.residual == Residual::Conv {
            n += co * ci * t2v;
        }
        n as u64
    }

    fn x_rows(&self, subsets: usize) -> usize {
        self.c_out * (subsets + self.down as usize + (self.residual == Residual::Conv) as usize)
    }
}

/// The stages of a block that [`CpuCtrGcn::profile`] times.
pub const STAGES: [&str; 6] = [
    "input 1x1 products (conv3 x subsets, down, residual)",
    "topology refinement (q/k, tanh, conv4, adjacency rows)",
    "joint aggregation + shift + residual + ReLU",
    "temporal 1x1 products (4 branches)",
    "dilated temporal convs (im2col + product)",
    "max-pool, strided branch, block residual + ReLU",
];

/// Nanoseconds per stage, summed over samples and threads.
#[derive(Debug, Default)]
struct Clock {
    on: std::sync::atomic::AtomicBool,
    ns: [std::sync::atomic::AtomicU64; 6],
}

impl Clock {
    fn start(&self) -> Option<std::time::Instant> {
        self.on
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(std::time::Instant::now)
    }

    fn lap(&self, stage: usize, t0: &mut Option<std::time::Instant>) {
        if let Some(t) = t0 {
            let now = std::time::Instant::now();
            self.ns[stage].fetch_add(
                (now - *t).as_nanos() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            *t = now;
        }
    }
}

/// The buffers one sample needs; grown on first use, then reused.
#[derive(Debug, Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    big: Vec<f32>,
    g: Vec<f32>,
    h: Vec<f32>,
    col: Vec<f32>,
    xm: Vec<f32>,
    qk: Vec<f32>,
    rel: Vec<f32>,
    adj: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

impl Clone for CpuCtrGcn {
    fn clone(&self) -> Self {
        Self {
            cfg: self.cfg.clone(),
            subsets: self.subsets,
            in_scale: self.in_scale.clone(),
            in_shift: self.in_shift.clone(),
            blocks: self.blocks.clone(),
            fc_w: self.fc_w.clone(),
            fc_b: self.fc_b.clone(),
            pool: Mutex::new(Vec::new()),
            clock: Clock::default(),
        }
    }
}

impl Encoder for CpuCtrGcn {
    /// Logits in the input's dtype; the trace records `logits` only (the
    /// plan has no layer boundaries to record). Inference only.
    fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor> {
        if train {
            return Err(Error::config(
                "train",
                "the CPU inference plan of CTR-GCN cannot train; use the candle model",
            ));
        }
        let logits = self.forward(x)?.to_dtype(x.dtype())?;
        trace.record(|| "logits".to_string(), &logits);
        Ok(logits)
    }

    /// The plan is folded already.
    fn fold_batch_norm(&self) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(self.clone()))
    }
}

/// CTR-GCN folded for CPU inference: `(N, C, T, V, M)` windows to `(N, K)`
/// logits, f32 compute (f16 / bf16 weights are widened once at build).
#[derive(Debug)]
pub struct CpuCtrGcn {
    cfg: Config,
    subsets: usize,
    /// `(M·V·C,)` input BN as an affine map.
    in_scale: Vec<f32>,
    in_shift: Vec<f32>,
    blocks: Vec<BlockPlan>,
    /// `(K, C_last)`
    fc_w: Vec<f32>,
    fc_b: Vec<f32>,
    pool: Mutex<Vec<Scratch>>,
    clock: Clock,
}

impl CpuCtrGcn {
    /// Folds a CTR-GCN state dict (reference names; any float dtype) into a
    /// plan. Fails with the name of a missing or misshapen tensor.
    pub fn new(cfg: &Config, weights: &HashMap<String, Tensor>) -> Result<Self> {
        cfg.validate()?;
        let w = fold::Weights::new(weights);
        let (m, v, c) = (cfg.num_person, cfg.num_point, cfg.in_channels);
        let pa = weights
            .get("l1.gcn1.PA")
            .ok_or_else(|| Error::MissingWeight {
                name: "l1.gcn1.PA".into(),
                path: "(state dict)".into(),
            })?;
        let subsets = pa.dims().first().copied().unwrap_or(0);
        if subsets == 0 || subsets > 8 {
            return Err(Error::shape(
                "weight l1.gcn1.PA",
                "(S, V, V) with 1 <= S <= 8",
                pa.dims(),
            ));
        }
        let (in_scale, in_shift) = w.bn("data_bn", m * v * c)?;
        let mut blocks = Vec::with_capacity(cfg.blocks.len());
        let mut c_in = c;
        for (k, spec) in cfg.blocks.iter().enumerate() {
            blocks.push(fold::block(
                &w,
                cfg,
                k + 1,
                c_in,
                spec.out_channels,
                spec.stride,
                subsets,
                v,
            )?);
            c_in = spec.out_channels;
        }
        Ok(Self {
            cfg: cfg.clone(),
            subsets,
            in_scale,
            in_shift,
            blocks,
            fc_w: w.get("fc.weight", cfg.num_class * c_in)?,
            fc_b: w.get("fc.bias", cfg.num_class)?,
            pool: Mutex::new(Vec::new()),
            clock: Clock::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Multiply-accumulates of a forward pass over `n` windows of `t`
    /// frames (the same count as the candle model's).
    pub fn macs(&self, n: usize, t: usize) -> u64 {
        let cfg = &self.cfg;
        let mut total = 0u64;
        let mut tc = t;
        for b in &self.blocks {
            total += b.macs(self.subsets, tc, cfg.num_point);
            tc = tc.div_ceil(b.stride);
        }
        let c_last = self.blocks.last().map_or(cfg.in_channels, |b| b.c_out);
        (n * cfg.num_person) as u64 * total + (n * c_last * cfg.num_class) as u64
    }

    /// Runs `x` `runs` times with the stage clocks on and returns each
    /// stage of [`STAGES`] with its milliseconds per run (summed over the
    /// threads that worked on it), then the wall time per run.
    pub fn profile(&self, x: &Tensor, runs: usize) -> Result<(Vec<(&'static str, f64)>, f64)> {
        use std::sync::atomic::Ordering;
        self.forward(x)?; // warm the scratch buffers
        self.clock
            .ns
            .iter()
            .for_each(|n| n.store(0, Ordering::Relaxed));
        self.clock.on.store(true, Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        for _ in 0..runs.max(1) {
            self.forward(x)?;
        }
        let wall = t0.elapsed().as_secs_f64() * 1e3 / runs.max(1) as f64;
        self.clock.on.store(false, Ordering::Relaxed);
        let stages = STAGES
            .iter()
            .zip(&self.clock.ns)
            .map(|(name, ns)| {
                (
                    *name,
                    ns.load(Ordering::Relaxed) as f64 / 1e6 / runs.max(1) as f64,
                )
            })
            .collect();
        Ok((stages, wall))
    }

    /// Logits `(N, K)` (f32, CPU) for `x: (N, C, T, V, M)` of any float
    /// dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dims();
        let cfg = &self.cfg;
        if d.len() != 5
            || d[1] != cfg.in_channels
            || d[3] != cfg.num_point
            || d[4] != cfg.num_person
            || d[0] == 0
            || d[2] == 0
        {
            return Err(Error::shape(
                "CTR-GCN input",
                format!(
                    "(N, {}, T, {}, {})",
                    cfg.in_channels, cfg.num_point, cfg.num_person
                ),
                d,
            ));
        }
        let (n, t) = (d[0], d[2]);
        let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        crate::model::flops::add(self.macs(n, t));
        let mut out = vec![0f32; n * cfg.num_class];
        self.forward_slice(&xs, n, t, &mut out);
        Ok(Tensor::from_vec(out, (n, cfg.num_class), &Device::Cpu)?)
    }

    /// The forward pass on raw buffers: `x` is `(N, C, T, V, M)` row-major,
    /// `out` receives `(N, K)`. Panics if the buffer sizes disagree with
    /// `n` and `t` (use [`Self::forward`] for checked input).
    pub fn forward_slice(&self, x: &[f32], n: usize, t: usize, out: &mut [f32]) {
        let cfg = &self.cfg;
        let (c, v, m) = (cfg.in_channels, cfg.num_point, cfg.num_person);
        assert_eq!(x.len(), n * c * t * v * m, "CpuCtrGcn input size");
        assert_eq!(out.len(), n * cfg.num_class, "CpuCtrGcn output size");
        let c_last = self.blocks.last().map_or(c, |b| b.c_out);
        let samples = n * m;
        let threads = rayon::current_num_threads().max(1);
        let mut pooled = vec![0f32; samples * c_last];
        if samples >= threads && threads > 1 {
            pooled
                .par_chunks_mut(c_last)
                .enumerate()
                .for_each(|(s, p)| self.sample(x, s / m, s % m, t, p, 1));
        } else {
            for (s, p) in pooled.chunks_mut(c_last).enumerate() {
                self.sample(x, s / m, s % m, t, p, threads);
            }
        }
        // Mean over persons, then the classifier.
        let k = cfg.num_class;
        for b in 0..n {
            let mut feat = vec![0f32; c_last];
            for p in 0..m {
                for (f, x) in feat.iter_mut().zip(&pooled[(b * m + p) * c_last..]) {
                    *f += x / m as f32;
                }
            }
            for j in 0..k {
                let w = &self.fc_w[j * c_last..(j + 1) * c_last];
                out[b * k + j] =
                    self.fc_b[j] + w.iter().zip(&feat).map(|(a, b)| a * b).sum::<f32>();
            }
        }
    }

    fn take_scratch(&self) -> Scratch {
        self.pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default()
    }

    fn put_scratch(&self, s: Scratch) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(s);
        }
    }

    /// One sample (batch index `b`, person `p`) through the backbone;
    /// writes the mean over time and joints of the last block into
    /// `pooled: (C_last,)`.
    fn sample(&self, x: &[f32], b: usize, p: usize, t: usize, pooled: &mut [f32], threads: usize) {
        let cfg = &self.cfg;
        let (c, v, m) = (cfg.in_channels, cfg.num_point, cfg.num_person);
        let mut s = self.take_scratch();
        // Input BN: x[b, c, t, v, p] -> a[c, t, v].
        {
            let a = grow(&mut s.a, c * t * v);
            for ci in 0..c {
                for ti in 0..t {
                    for vi in 0..v {
                        let ch = p * v * c + vi * c + ci;
                        let xi = (((b * c + ci) * t + ti) * v + vi) * m + p;
                        a[(ci * t + ti) * v + vi] = x[xi] * self.in_scale[ch] + self.in_shift[ch];
                    }
                }
            }
        }
        let mut t_cur = t;
        for blk in &self.blocks {
            t_cur = self.block(blk, &mut s, t_cur, threads);
            std::mem::swap(&mut s.a, &mut s.b);
        }
        let c_last = pooled.len();
        let tv = t_cur * v;
        for (o, dst) in pooled.iter_mut().enumerate() {
            *dst = s.a[o * tv..(o + 1) * tv].iter().sum::<f32>() / tv as f32;
        }
        debug_assert_eq!(c_last, self.blocks.last().map_or(c, |b| b.c_out));
        self.put_scratch(s);
    }

    /// One block: reads `s.a` `(I, T, V)`, writes `s.b` `(O, T', V)`;
    /// returns `T'`.
    fn block(&self, blk: &BlockPlan, s: &mut Scratch, t: usize, threads: usize) -> usize {
        let v = self.cfg.num_point;
        let ns = self.subsets;
        let (ci, co, r) = (blk.c_in, blk.c_out, blk.rel);
        let tv = t * v;
        let w = padded_width(v);
        let a = &s.a[..ci * tv];

        let mut clk = self.clock.start();
        // 1. Every 1x1 conv of the input in one product: (rows, I)·(I, T·V).
        let rows = blk.x_rows(ns);
        let big = grow(&mut s.big, rows * tv);
        matmul(
            MatMut::dense(big, rows, tv),
            MatRef::dense(&blk.wx, rows, ci),
            MatRef::dense(a, ci, tv),
            false,
            threads,
        );
        add_row_bias(big, &blk.bx, tv);
        self.clock.lap(0, &mut clk);

        // 2. Topology refinement on the time average.
        let xm = grow(&mut s.xm, ci * v);
        for (i, dst) in xm.chunks_mut(v).enumerate() {
            dst.fill(0.0);
            for frame in a[i * tv..(i + 1) * tv].chunks(v) {
                for (d, x) in dst.iter_mut().zip(frame) {
                    *d += x;
                }
            }
            dst.iter_mut().for_each(|d| *d /= t as f32);
        }
        let qk = grow(&mut s.qk, ns * 2 * r * v);
        matmul(
            MatMut::dense(qk, ns * 2 * r, v),
            MatRef::dense(&blk.w12, ns * 2 * r, ci),
            MatRef::dense(xm, ci, v),
            false,
            1,
        );
        add_row_bias(qk, &blk.b12, v);
        // adj[o][(i, v)][u], rows padded to w: PA_i[u, v] + alpha·b4 first,
        // then alpha·conv4(rel) accumulated onto it by one product whose
        // columns are already in (v, u) order.
        let adj = grow(&mut s.adj, co * ns * v * w);
        for i in 0..ns {
            // rel[r][v][u] = tanh(q[r][u] - k[r][v]), u padded to w with 0.
            let rel = grow(&mut s.rel, r * v * w);
            let q = &qk[(2 * i) * r * v..(2 * i + 1) * r * v];
            let k = &qk[(2 * i + 1) * r * v..(2 * i + 2) * r * v];
            for rr in 0..r {
                let qr = &q[rr * v..(rr + 1) * v];
                for vv in 0..v {
                    let kv = k[rr * v + vv];
                    let dst = &mut rel[(rr * v + vv) * w..(rr * v + vv + 1) * w];
                    for (d, qu) in dst.iter_mut().zip(qr) {
                        *d = qu - kv;
                    }
                    dst[v..].fill(0.0);
                }
            }
            tanh_inplace(rel);
            let pa_t = &blk.pa_t[i * v * w..(i + 1) * v * w];
            for o in 0..co {
                let c4 = blk.c4[i * co + o];
                let dst = &mut adj[(o * ns + i) * v * w..(o * ns + i + 1) * v * w];
                for (d, p) in dst.iter_mut().zip(pa_t) {
                    *d = p + c4;
                }
            }
            matmul(
                MatMut::new(&mut adj[i * v * w..], co, v * w, ns * v * w, 1),
                MatRef::dense(&blk.w4[i * co * r..(i + 1) * co * r], co, r),
                MatRef::dense(rel, r, v * w),
                true,
                threads,
            );
        }

        self.clock.lap(1, &mut clk);
        // 3. Aggregation over joints, summed over subsets, + shift + residual, ReLU.
        let g = grow(&mut s.g, co * tv);
        let big = &s.big[..rows * tv];
        let adj = &s.adj[..co * ns * v * w];
        let down_row = ns * co;
        let unit = |o: usize, y: &mut [f32]| {
            let mut subs: [&[f32]; 8] = [&[]; 8];
            for (i, sub) in subs.iter_mut().enumerate().take(ns) {
                *sub = &big[(i * co + o) * tv..(i * co + o + 1) * tv];
            }
            aggregate(
                &subs[..ns],
                &adj[o * ns * v * w..(o + 1) * ns * v * w],
                t,
                v,
                w,
                y,
            );
            let res = if blk.down {
                &big[(down_row + o) * tv..(down_row + o + 1) * tv]
            } else {
                &a[o * tv..(o + 1) * tv]
            };
            let sh = blk.gshift[o];
            for (y, r) in y.iter_mut().zip(res) {
                *y = (*y + r + sh).max(0.0);
            }
        };
        if threads > 1 {
            g.par_chunks_mut(tv)
                .enumerate()
                .for_each(|(o, y)| unit(o, y));
        } else {
            g.chunks_mut(tv).enumerate().for_each(|(o, y)| unit(o, y));
        }

        self.clock.lap(2, &mut clk);
        // 4. Temporal unit.
        let (nb, bc, st) = (blk.nb, blk.bc, blk.stride);
        let h = grow(&mut s.h, co * tv);
        matmul(
            MatMut::dense(h, co, tv),
            MatRef::dense(&blk.wb, co, co),
            MatRef::dense(&s.g[..co * tv], co, tv),
            false,
            threads,
        );
        add_row_bias(h, &blk.bb, tv);
        for x in &mut h[..(nb - 1) * bc * tv] {
            *x = x.max(0.0);
        }
        self.clock.lap(3, &mut clk);
        let t2 = t.div_ceil(st);
        let t2v = t2 * v;
        let out = grow(&mut s.b, co * t2v);
        let h = &s.h[..co * tv];
        let kt = blk.kt;
        for (j, &d) in blk.dilations.iter().enumerate() {
            let pad = (kt - 1) * d / 2;
            let col = grow(&mut s.col, kt * bc * t2v);
            for tap in 0..kt {
                for cc in 0..bc {
                    let src = &h[(j * bc + cc) * tv..(j * bc + cc + 1) * tv];
                    let dst = &mut col[(tap * bc + cc) * t2v..(tap * bc + cc + 1) * t2v];
                    for (to, frame) in dst.chunks_mut(v).enumerate() {
                        let ti = (to * st + tap * d) as isize - pad as isize;
                        if ti >= 0 && (ti as usize) < t {
                            let ti = ti as usize;
                            frame.copy_from_slice(&src[ti * v..(ti + 1) * v]);
                        } else {
                            frame.fill(0.0);
                        }
                    }
                }
            }
            let dst = &mut out[j * bc * t2v..(j + 1) * bc * t2v];
            matmul(
                MatMut::dense(dst, bc, t2v),
                MatRef::dense(&blk.wt[j], bc, kt * bc),
                MatRef::dense(col, kt * bc, t2v),
                false,
                threads,
            );
            add_row_bias(dst, &blk.bt[j], t2v);
        }
        self.clock.lap(4, &mut clk);
        // Max-pool branch (3 frames, stride st; inputs are >= 0 after the
        // ReLU, so zero padding equals -inf padding), then its BN.
        let jp = blk.dilations.len();
        for cc in 0..bc {
            let src = &h[(jp * bc + cc) * tv..(jp * bc + cc + 1) * tv];
            let dst = &mut out[(jp * bc + cc) * t2v..(jp * bc + cc + 1) * t2v];
            let (sc, sh) = (blk.pool_scale[cc], blk.pool_shift[cc]);
            for (to, frame) in dst.chunks_mut(v).enumerate() {
                let tc = to * st;
                for (vi, d) in frame.iter_mut().enumerate() {
                    let mut mx = src[tc * v + vi];
                    if tc > 0 {
                        mx = mx.max(src[(tc - 1) * v + vi]);
                    }
                    if tc + 1 < t {
                        mx = mx.max(src[(tc + 1) * v + vi]);
                    }
                    *d = mx * sc + sh;
                }
            }
        }
        // Strided 1x1 branch: every st-th frame of its rows.
        let jw = jp + 1;
        for cc in 0..bc {
            let src = &h[(jw * bc + cc) * tv..(jw * bc + cc + 1) * tv];
            let dst = &mut out[(jw * bc + cc) * t2v..(jw * bc + cc + 1) * t2v];
            for (to, frame) in dst.chunks_mut(v).enumerate() {
                frame.copy_from_slice(&src[to * st * v..(to * st + 1) * v]);
            }
        }
        // Block residual and ReLU.
        match blk.residual {
            Residual::None => out.iter_mut().for_each(|x| *x = x.max(0.0)),
            Residual::Identity => {
                for (x, r) in out.iter_mut().zip(a) {
                    *x = (*x + r).max(0.0);
                }
            }
            Residual::Conv => {
                let row0 = ns * co + blk.down as usize * co;
                for o in 0..co {
                    let src = &big[(row0 + o) * tv..(row0 + o + 1) * tv];
                    let dst = &mut out[o * t2v..(o + 1) * t2v];
                    for (to, frame) in dst.chunks_mut(v).enumerate() {
                        let sf = &src[to * st * v..(to * st + 1) * v];
                        for (x, r) in frame.iter_mut().zip(sf) {
                            *x = (*x + r).max(0.0);
                        }
                    }
                }
            }
        }
        self.clock.lap(5, &mut clk);
        t2
    }
}

/// `m[row, :] += bias[row]` for a row-major `(rows, cols)` matrix.
fn add_row_bias(m: &mut [f32], bias: &[f32], cols: usize) {
    for (row, b) in m.chunks_mut(cols).zip(bias) {
        row.iter_mut().for_each(|x| *x += b);
    }
}
