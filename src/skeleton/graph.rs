//! Adjacency stacks that graph convolutions aggregate joints with.
//!
//! Each function here reproduces a reference implementation bit for bit (up
//! to the final cast to `f32`), so that weights trained in PyTorch see the
//! same graph in skelact:
//!
//! - [`ctrgcn_spatial`]: CTR-GCN's `graph/tools.py` `get_spatial_graph`
//!   (identity, normalized inward, normalized outward).
//! - [`stgcn_spatial`]: ST-GCN's `net/utils/graph.py` `Graph` with the
//!   `spatial` partition strategy (hop distance, normalized hop adjacency,
//!   root / centripetal / centrifugal split).
//! - [`normalize_digraph`]: both repositories' `normalize_digraph`,
//!   `A @ diag(1 / column sums)`, zero columns left at zero.
//!
//! The edge direction convention is the references' too: for an inward edge
//! `(i, j)` (child `i`, parent `j`) the matrix gets `A[j, i] = 1`, so that
//! row `j` gathers from its children. Arithmetic is done in `f64`, as numpy
//! does, and rounded to `f32` at the end, as the references' models do when
//! they turn the arrays into tensors.

use candle_core::{Device, Tensor};

use super::Layout;

/// A stack of `K` adjacency matrices over `V` joints, row-major:
/// `data[k * v * v + i * v + j]` is numpy's `A[k, i, j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Adjacency {
    /// Number of matrices (partition subsets).
    pub k: usize,
    /// Number of joints.
    pub v: usize,
    /// `k * v * v` weights, row-major.
    pub data: Vec<f32>,
}

impl Adjacency {
    /// The `k`-th matrix, `v * v` row-major.
    ///
    /// # Panics
    ///
    /// If `k >= self.k`, like slice indexing.
    pub fn matrix(&self, k: usize) -> &[f32] {
        let n = self.v * self.v;
        &self.data[k * n..(k + 1) * n]
    }

    /// The weight `A[k, i, j]`.
    ///
    /// # Panics
    ///
    /// If an index is out of range, like slice indexing.
    pub fn get(&self, k: usize, i: usize, j: usize) -> f32 {
        self.data[(k * self.v + i) * self.v + j]
    }

    /// The stack as an `f32` tensor of shape `(K, V, V)` on `dev`.
    pub fn to_tensor(&self, dev: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_slice(&self.data, (self.k, self.v, self.v), dev)
    }
}

/// `V * V` (row-major, `f64`) matrix with `A[parent, child] = 1` for every
/// edge of `l` (the references' `edge2mat(inward)`); transposed when
/// `outward`.
fn edge_matrix(l: &Layout, outward: bool) -> Vec<f64> {
    let v = l.num_joints();
    let mut a = vec![0.0; v * v];
    for (child, parent) in l.edges() {
        let (row, col) = if outward {
            (child, parent)
        } else {
            (parent, child)
        };
        a[row * v + col] = 1.0;
    }
    a
}

/// `A @ diag(1 / colsum)` in `f64`; columns summing to zero stay zero.
fn normalize_digraph_f64(a: &[f64], v: usize) -> Vec<f64> {
    let inv: Vec<f64> = (0..v)
        .map(|j| {
            let s: f64 = (0..v).map(|i| a[i * v + j]).sum();
            if s > 0.0 {
                s.powi(-1)
            } else {
                0.0
            }
        })
        .collect();
    a.iter()
        .enumerate()
        .map(|(idx, &x)| x * inv[idx % v])
        .collect()
}

/// Column-normalizes a `v * v` row-major matrix: `A @ diag(1 / colsum)`
/// where the column sum is positive, the column left at zero otherwise
/// (CTR-GCN's and ST-GCN's `normalize_digraph`).
///
/// # Panics
///
/// If `a.len() != v * v`.
pub fn normalize_digraph(a: &[f32], v: usize) -> Vec<f32> {
    assert_eq!(
        a.len(),
        v * v,
        "normalize_digraph: expected a {v}x{v} matrix"
    );
    let a64: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
    to_f32(&normalize_digraph_f64(&a64, v))
}

fn to_f32(a: &[f64]) -> Vec<f32> {
    a.iter().map(|&x| x as f32).collect()
}

/// CTR-GCN's spatial graph, `K = 3`: identity, normalized inward (row =
/// parent, column = child), normalized outward.
pub fn ctrgcn_spatial(l: &Layout) -> Adjacency {
    let v = l.num_joints();
    let mut data = Vec::with_capacity(3 * v * v);
    for i in 0..v {
        data.extend((0..v).map(|j| if i == j { 1.0 } else { 0.0 }));
    }
    data.extend(to_f32(&normalize_digraph_f64(&edge_matrix(l, false), v)));
    data.extend(to_f32(&normalize_digraph_f64(&edge_matrix(l, true), v)));
    Adjacency { k: 3, v, data }
}

/// Undirected 0/1 adjacency of the tree, `K = 1`, with ones on the diagonal
/// when `self_loops` (the graph SCD-Net's structure-guided mask walks and
/// SkeletonMAE's GIN layers aggregate over).
pub fn undirected(l: &Layout, self_loops: bool) -> Adjacency {
    let v = l.num_joints();
    let mut data = vec![0.0; v * v];
    for (a, b) in l.edges() {
        data[a * v + b] = 1.0;
        data[b * v + a] = 1.0;
    }
    if self_loops {
        for i in 0..v {
            data[i * v + i] = 1.0;
        }
    }
    Adjacency { k: 1, v, data }
}

/// Hop distance between every pair of joints, `V * V` row-major, as ST-GCN's
/// `get_hop_distance`: the number of edges on the path when it is at most
/// `max_hop`, `usize::MAX` (the reference's `inf`) otherwise.
pub fn hop_distance(l: &Layout, max_hop: usize) -> Vec<usize> {
    let v = l.num_joints();
    let mut neighbours = vec![Vec::new(); v];
    for (a, b) in l.edges() {
        neighbours[a].push(b);
        neighbours[b].push(a);
    }
    let mut hop = vec![usize::MAX; v * v];
    let mut frontier = Vec::with_capacity(v);
    let mut next = Vec::with_capacity(v);
    for s in 0..v {
        let row = &mut hop[s * v..(s + 1) * v];
        row[s] = 0;
        frontier.clear();
        frontier.push(s);
        let mut d = 0;
        while !frontier.is_empty() && d < max_hop {
            d += 1;
            next.clear();
            for &u in &frontier {
                for &w in &neighbours[u] {
                    if row[w] == usize::MAX {
                        row[w] = d;
                        next.push(w);
                    }
                }
            }
            std::mem::swap(&mut frontier, &mut next);
        }
    }
    hop
}

/// ST-GCN's `spatial` partition: for each hop in `0, dilation, 2 dilation,
/// ... <= max_hop`, the normalized hop adjacency split by distance to
/// `center`; hop 0 gives one matrix (root), every further hop two (root +
/// centripetal, centrifugal). `K = 1 + 2 * (number of hops - 1)`.
///
/// As in the reference, distances to `center` are the `max_hop`-limited hop
/// distances, so joints farther than `max_hop` from the centre compare as
/// equal (`inf == inf`) and land in the root subset. `dilation = 0` is taken
/// as 1 (the reference would raise).
///
/// # Panics
///
/// If `center >= l.num_joints()`.
pub fn stgcn_spatial(l: &Layout, center: usize, max_hop: usize, dilation: usize) -> Adjacency {
    let v = l.num_joints();
    assert!(
        center < v,
        "stgcn_spatial: center {center} out of range ({v} joints)"
    );
    let hop = hop_distance(l, max_hop);
    let valid: Vec<usize> = (0..=max_hop).step_by(dilation.max(1)).collect();
    let mut adjacency = vec![0.0f64; v * v];
    for (a, &h) in adjacency.iter_mut().zip(&hop) {
        if valid.contains(&h) {
            *a = 1.0;
        }
    }
    let norm = normalize_digraph_f64(&adjacency, v);

    let mut data = Vec::new();
    for &h in &valid {
        let mut root = vec![0.0f64; v * v];
        let mut close = vec![0.0f64; v * v];
        let mut further = vec![0.0f64; v * v];
        for i in 0..v {
            for j in 0..v {
                if hop[j * v + i] != h {
                    continue;
                }
                let (dj, di) = (hop[j * v + center], hop[i * v + center]);
                let idx = j * v + i;
                if dj == di {
                    root[idx] = norm[idx];
                } else if dj > di {
                    close[idx] = norm[idx];
                } else {
                    further[idx] = norm[idx];
                }
            }
        }
        if h == 0 {
            data.extend(to_f32(&root));
        } else {
            let rc: Vec<f64> = root.iter().zip(&close).map(|(a, b)| a + b).collect();
            data.extend(to_f32(&rc));
            data.extend(to_f32(&further));
        }
    }
    let k = data.len() / (v * v).max(1);
    Adjacency { k, v, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_digraph_divides_columns() {
        // [[1, 1], [0, 1]] -> column sums 1, 2.
        let a = [1.0, 1.0, 0.0, 1.0];
        assert_eq!(normalize_digraph(&a, 2), vec![1.0, 0.5, 0.0, 0.5]);
        // A zero column stays zero.
        assert_eq!(
            normalize_digraph(&[0.0, 1.0, 0.0, 1.0], 2),
            vec![0.0, 0.5, 0.0, 0.5]
        );
    }

    #[test]
    fn hop_distance_on_a_chain() {
        // kinect20-ucla: hip_center(0) - spine(1) - shoulder_center(2) - head(3).
        let l = Layout::kinect20_ucla();
        let v = l.num_joints();
        let h = hop_distance(l, 3);
        assert_eq!(h[0], 0);
        assert_eq!(h[1], 1);
        assert_eq!(h[2], 2);
        assert_eq!(h[3], 3);
        assert_eq!(h[3 * v], 3);
        assert_eq!(h[4], 3);
        assert_eq!(h[5], usize::MAX);
        let h1 = hop_distance(l, 1);
        assert_eq!(h1[2], usize::MAX);
    }

    #[test]
    fn undirected_is_symmetric() {
        let a = undirected(Layout::ntu25(), true);
        for i in 0..a.v {
            for j in 0..a.v {
                assert_eq!(a.get(0, i, j), a.get(0, j, i));
            }
            assert_eq!(a.get(0, i, i), 1.0);
        }
    }
}
