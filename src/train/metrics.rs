//! Evaluation: top-1 / top-5 accuracy, per-class accuracy and the confusion
//! matrix, computed from class scores.

use serde::Serialize;

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Samples scored.
    pub samples: usize,
    /// Fraction whose top class is the label.
    pub top1: f64,
    /// Fraction whose label is among the 5 top classes.
    pub top5: f64,
    /// Mean loss, when one was computed.
    pub loss: Option<f64>,
    /// Per class: fraction of its samples classified correctly (NaN for a
    /// class without samples).
    pub per_class: Vec<f64>,
    /// `confusion[label][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Accumulates scores batch by batch.
#[derive(Debug, Clone)]
pub struct Accumulator {
    num_class: usize,
    samples: usize,
    top1: usize,
    top5: usize,
    loss_sum: f64,
    loss_n: usize,
    confusion: Vec<Vec<usize>>,
}

impl Accumulator {
    /// An empty accumulator for `num_class` classes.
    pub fn new(num_class: usize) -> Self {
        Self {
            num_class,
            samples: 0,
            top1: 0,
            top5: 0,
            loss_sum: 0.0,
            loss_n: 0,
            confusion: vec![vec![0; num_class]; num_class],
        }
    }

    /// Adds one sample's class scores (any monotone score: logits,
    /// probabilities) and its label.
    pub fn add(&mut self, scores: &[f32], label: usize) {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let pred = order.first().copied().unwrap_or(0);
        self.samples += 1;
        if pred == label {
            self.top1 += 1;
        }
        if order.iter().take(5).any(|&k| k == label) {
            self.top5 += 1;
        }
        if label < self.num_class && pred < self.num_class {
            self.confusion[label][pred] += 1;
        }
    }

    /// Adds a batch loss (mean over `n` samples).
    pub fn add_loss(&mut self, loss: f64, n: usize) {
        self.loss_sum += loss * n as f64;
        self.loss_n += n;
    }

    /// The metrics so far.
    pub fn finish(&self) -> Evaluation {
        let n = self.samples.max(1) as f64;
        let per_class = self
            .confusion
            .iter()
            .enumerate()
            .map(|(k, row)| {
                let total: usize = row.iter().sum();
                if total == 0 {
                    f64::NAN
                } else {
                    row[k] as f64 / total as f64
                }
            })
            .collect();
        Evaluation {
            samples: self.samples,
            top1: self.top1 as f64 / n,
            top5: self.top5 as f64 / n,
            loss: (self.loss_n > 0).then(|| self.loss_sum / self.loss_n as f64),
            per_class,
            confusion: self.confusion.clone(),
        }
    }
}

impl Evaluation {
    /// A plain-text report: accuracies, per-class accuracy, confusion
    /// matrix, with class names.
    pub fn report(&self, classes: &[String]) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "samples {}  top-1 {:.2} %  top-5 {:.2} %",
            self.samples,
            self.top1 * 100.0,
            self.top5 * 100.0
        );
        if let Some(l) = self.loss {
            let _ = writeln!(s, "loss {l:.4}");
        }
        let _ = writeln!(s, "per-class accuracy:");
        for (k, acc) in self.per_class.iter().enumerate() {
            let name = classes.get(k).map_or("?", |c| c.as_str());
            let _ = writeln!(s, "  {k:>3} {name:<28} {:6.2} %", acc * 100.0);
        }
        let _ = writeln!(s, "confusion (rows: label, columns: predicted):");
        for (k, row) in self.confusion.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| format!("{c:>4}")).collect();
            let _ = writeln!(s, "  {k:>3} {}", cells.join(""));
        }
        s
    }
}

/// The confusion matrix of a report written by [`Evaluation::report`] (an
/// `evaluation.txt`): the rows after the `confusion` header; `None` when the
/// text has none or a row is not `index count count ...` with as many
/// counts as rows.
pub fn parse_confusion(report: &str) -> Option<Vec<Vec<usize>>> {
    let mut lines = report.lines().skip_while(|l| !l.starts_with("confusion"));
    lines.next()?;
    let rows: Vec<Vec<usize>> = lines
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|c| c.parse().ok())
                .collect::<Option<Vec<usize>>>()
        })
        .collect::<Option<_>>()?;
    let k = rows.len();
    (k > 0 && rows.iter().all(|r| r.len() == k)).then_some(rows)
}

/// Writes the loss history of a pretraining run to `path`: a header
/// `epoch,<columns>`, then one row per epoch (from 1), each with one value
/// per column.
pub fn write_epoch_losses(
    path: &std::path::Path,
    columns: &[&str],
    rows: &[Vec<f64>],
) -> crate::Result<()> {
    use std::io::Write;
    let io = |e| crate::Error::io(path, e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    writeln!(f, "epoch,{}", columns.join(",")).map_err(io)?;
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|l| format!("{l:.6}")).collect();
        writeln!(f, "{},{}", i + 1, cells.join(",")).map_err(io)?;
    }
    f.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_confusion_round_trips() {
        let mut a = Accumulator::new(3);
        a.add(&[0.1, 0.7, 0.2], 1);
        a.add(&[0.5, 0.4, 0.1], 1);
        a.add(&[0.1, 0.2, 0.7], 2);
        let e = a.finish();
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(parse_confusion(&e.report(&classes)), Some(e.confusion));
        assert_eq!(parse_confusion("samples 3"), None);
    }

    #[test]
    fn top_k_and_confusion() {
        let mut a = Accumulator::new(3);
        a.add(&[0.1, 0.7, 0.2], 1);
        a.add(&[0.5, 0.4, 0.1], 1);
        let e = a.finish();
        assert_eq!(e.top1, 0.5);
        assert_eq!(e.top5, 1.0);
        assert_eq!(e.confusion[1], vec![1, 1, 0]);
        assert_eq!(e.per_class[1], 0.5);
        assert!(e.per_class[0].is_nan());
    }
}
