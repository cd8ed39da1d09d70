//! MoCo's queue of negative keys (He et al., CVPR 2020), as SCD-Net keeps
//! three of them (temporal, spatial, instance): a ring of `K` unit vectors
//! of width `D`; each step's keys overwrite the oldest entries, wrapping at
//! the end, so the queue always holds the latest `K` keys.
//!
//! The ring lives in host memory (`Vec<f32>`) and is copied into a tensor
//! for the loss; at the queue sizes a CPU run uses (a few thousand keys of
//! 128 values) the copy costs less than the step.

use candle_core::{Device, Tensor};
use rand::Rng;

use crate::{Error, Result};

/// A ring of `len` keys of width `dim`.
#[derive(Debug, Clone)]
pub struct Queue {
    data: Vec<f32>,
    dim: usize,
    ptr: usize,
}

impl Queue {
    /// `len` random unit vectors (MoCo's initialisation: normal draws,
    /// normalised).
    pub fn random<R: Rng + ?Sized>(len: usize, dim: usize, rng: &mut R) -> Result<Self> {
        if len == 0 || dim == 0 {
            return Err(Error::config(
                "queue",
                "length and width must be at least 1",
            ));
        }
        // Box-Muller normal draws.
        let mut data: Vec<f32> = (0..len * dim)
            .map(|_| {
                let u1: f32 = rng.random_range(f32::EPSILON..1.0);
                let u2: f32 = rng.random();
                (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        for row in data.chunks_exact_mut(dim) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= n);
        }
        Ok(Self { data, dim, ptr: 0 })
    }

    /// A queue holding `rows` (`len * dim` values) with the write position at 0.
    pub fn from_rows(data: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 || data.is_empty() || data.len() % dim != 0 {
            return Err(Error::config(
                "queue",
                "rows must be a non-empty multiple of the width",
            ));
        }
        Ok(Self { data, dim, ptr: 0 })
    }

    /// Keys held (`K`).
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether the queue holds no key (never, once built).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Where the next key goes.
    pub fn position(&self) -> usize {
        self.ptr
    }

    /// Overwrites the oldest entries with `keys: (B, D)`, wrapping at the end;
    /// with more keys than the queue holds, only the last `K` stay.
    pub fn enqueue(&mut self, keys: &Tensor) -> Result<()> {
        // keys: (B, D)
        let (b, d) = keys.dims2()?;
        if d != self.dim {
            return Err(Error::mismatch("queue key width", self.dim, d));
        }
        let k = self.len();
        let rows: Vec<f32> = keys
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let skip = b.saturating_sub(k);
        for row in rows.chunks_exact(d).skip(skip) {
            self.data[self.ptr * d..(self.ptr + 1) * d].copy_from_slice(row);
            self.ptr = (self.ptr + 1) % k;
        }
        Ok(())
    }

    /// The keys as a tensor `(K, D)`.
    pub fn tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.data,
            (self.len(), self.dim),
            device,
        )?)
    }
}
