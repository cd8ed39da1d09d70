//! A run's per-epoch history: the records of `metrics.csv` (written by
//! the trainer after every epoch, read back on resume and by `skelact
//! plot`), and the PNG plots drawn from them into a model directory.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::metrics::Evaluation;
use crate::{Error, Result};

/// Per-epoch records, in the work directory and the model directory.
pub const METRICS: &str = "metrics.csv";

/// One line of `metrics.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training top-1 (augmented samples).
    pub train_top1: f64,
    /// Test loss (NaN when not evaluated).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_loss: f64,
    /// Test top-1 (NaN when not evaluated).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_top1: f64,
    /// Test top-5 (NaN when not evaluated).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_top5: f64,
    /// Wall time of the training part of the epoch.
    pub train_s: f64,
    /// Training throughput.
    pub samples_per_s: f64,
}

/// JSON has no NaN: `serde_json` writes it as `null`, read back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::io(path, e))
}

/// Reads a `metrics.csv` written by the trainer (`NaN` where an epoch was
/// not evaluated).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = io(path, std::fs::read_to_string(path))?;
    let bad = |line: usize, reason: String| Error::Format {
        format: "metrics CSV",
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return Err(bad(i + 1, format!("{} fields, expected 9", f.len())));
        }
        let num = |k: usize| -> Result<f64> {
            f[k].trim()
                .parse::<f64>()
                .map_err(|e| bad(i + 1, format!("field {}: {e}", k + 1)))
        };
        out.push(EpochRecord {
            epoch: f[0]
                .trim()
                .parse()
                .map_err(|e| bad(i + 1, format!("epoch: {e}")))?,
            lr: num(1)?,
            train_loss: num(2)?,
            train_top1: num(3)?,
            test_loss: num(4)?,
            test_top1: num(5)?,
            test_top5: num(6)?,
            train_s: num(7)?,
            samples_per_s: num(8)?,
        });
    }
    Ok(out)
}

/// Writes `curves.png` (from `history`) and `confusion.png` (from
/// `evaluation`) into `dir`, titled with the model's name.
pub fn write_plots(
    dir: &Path,
    name: &str,
    history: &[EpochRecord],
    evaluation: &Evaluation,
    classes: &[String],
) -> Result<()> {
    super::plot::curves(
        history,
        &format!("{name}: training curves"),
        &dir.join(CURVES_PNG),
    )?;
    super::plot::confusion(
        &evaluation.confusion,
        classes,
        &format!(
            "{name}: top-1 {:.2} % on {} test clips",
            evaluation.top1 * 100.0,
            evaluation.samples
        ),
        &dir.join(CONFUSION_PNG),
    )
}

/// The curves image in a model directory.
pub const CURVES_PNG: &str = "curves.png";
/// The confusion-matrix image in a model directory.
pub const CONFUSION_PNG: &str = "confusion.png";

/// Writes `history` as `metrics.csv` rows to `path`.
pub(super) fn write_metrics(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut f = io(path, std::fs::File::create(path))?;
    io(
        path,
        writeln!(
            f,
            "epoch,lr,train_loss,train_top1,test_loss,test_top1,test_top5,train_s,samples_per_s"
        ),
    )?;
    for r in history {
        io(
            path,
            writeln!(
                f,
                "{},{:.6},{:.5},{:.5},{:.5},{:.5},{:.5},{:.2},{:.2}",
                r.epoch,
                r.lr,
                r.train_loss,
                r.train_top1,
                r.test_loss,
                r.test_top1,
                r.test_top5,
                r.train_s,
                r.samples_per_s
            ),
        )?;
    }
    Ok(())
}
