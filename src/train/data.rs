//! Datasets and their standard splits, read with [`crate::source`].
//!
//! - NW-UCLA cross-view (Wang et al., CVPR 2014): views 1 and 2 train
//!   (1,020 clips), view 3 tests (464 clips).
//! - UTD-MHAD cross-subject (Chen et al., ICIP 2015): odd subjects train,
//!   even subjects test.
//!
//! The data root is a folder holding `nw-ucla/all_sqe/` and
//! `utd-mhad/skeleton/` (the layout of `../shared/data`).

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::source::{nwucla, utd, Clip};
use crate::{Error, Result};

/// A data set and split that `skelact train` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    /// NW-UCLA cross-view: train views 1 + 2, test view 3.
    NwuclaCrossView,
    /// UTD-MHAD cross-subject: train subjects 1, 3, 5, 7; test 2, 4, 6, 8.
    UtdCrossSubject,
}

impl Benchmark {
    /// Parses `nwucla` / `nw-ucla` / `utd` / `utd-mhad`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "nwucla" | "nw-ucla" | "nwucla-xview" => Ok(Benchmark::NwuclaCrossView),
            "utd" | "utd-mhad" | "utd-xsub" => Ok(Benchmark::UtdCrossSubject),
            other => Err(Error::config(
                "dataset",
                format!("unknown data set `{other}` (nwucla, utd)"),
            )),
        }
    }

    /// The folder of clip files under the data root.
    pub fn folder(self, root: &Path) -> PathBuf {
        match self {
            Benchmark::NwuclaCrossView => root.join("nw-ucla").join("all_sqe"),
            Benchmark::UtdCrossSubject => root.join("utd-mhad").join("skeleton"),
        }
    }

    /// A one-line description of data and split, for the model card.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Benchmark::NwuclaCrossView => (
                "Northwestern-UCLA Multiview Action 3D, skeletons (CTR-GCN's all_sqe JSON)",
                "cross-view: train views 1 + 2, test view 3",
            ),
            Benchmark::UtdCrossSubject => (
                "UTD-MHAD skeletons (Kinect v1, 20 joints)",
                "cross-subject: train subjects 1, 3, 5, 7; test subjects 2, 4, 6, 8",
            ),
        }
    }

    /// Layout name of the clips.
    pub fn layout(self) -> &'static str {
        match self {
            Benchmark::NwuclaCrossView => "kinect20-ucla",
            Benchmark::UtdCrossSubject => "kinect20-utd",
        }
    }

    /// The class names.
    pub fn classes(self) -> Vec<String> {
        match self {
            Benchmark::NwuclaCrossView => nwucla::CLASSES.iter().map(|s| s.to_string()).collect(),
            Benchmark::UtdCrossSubject => utd::CLASSES.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn is_train(self, clip: &Clip) -> bool {
        match self {
            Benchmark::NwuclaCrossView => nwucla::is_train_cross_view(&clip.meta),
            Benchmark::UtdCrossSubject => utd::is_train_cross_subject(&clip.meta),
        }
    }
}

/// The clips of one benchmark, split.
#[derive(Debug, Clone)]
pub struct Split {
    /// Training clips.
    pub train: Vec<Clip>,
    /// Test clips.
    pub test: Vec<Clip>,
}

/// Reads the benchmark's clips under `root` and splits them. With `limit`,
/// only a fixed pseudo-random subset of `limit` files is read (for quick
/// runs and tests).
pub fn load(bench: Benchmark, root: &Path, limit: Option<usize>) -> Result<Split> {
    let dir = bench.folder(root);
    let files = match bench {
        Benchmark::NwuclaCrossView => nwucla::list(&dir)?,
        Benchmark::UtdCrossSubject => utd::list(&dir, utd::Modality::Skeleton)?,
    };
    if files.is_empty() {
        return Err(Error::config(
            "data",
            format!("no clip files in {}", dir.display()),
        ));
    }
    let files = match limit {
        Some(l) if l < files.len() => {
            // A fixed pseudo-random subset, so that it mixes views and
            // subjects (file order groups them).
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let mut pick = rand::seq::index::sample(&mut rng, files.len(), l).into_vec();
            pick.sort_unstable();
            pick.into_iter().map(|i| files[i].clone()).collect()
        }
        _ => files,
    };
    let mut split = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    for path in &files {
        let clip = match bench {
            Benchmark::NwuclaCrossView => nwucla::read_clip(path)?,
            Benchmark::UtdCrossSubject => utd::read_skeleton(path)?,
        };
        if bench.is_train(&clip) {
            split.train.push(clip);
        } else {
            split.test.push(clip);
        }
    }
    Ok(split)
}
