//! Action descriptions for GAP: per class a name, synonyms, one sentence
//! for the whole action and one for each of GAP's four body parts (head,
//! hands/arms, hip, legs).
//!
//! GAP (Xiang et al., ICCV 2023) had a large language model write them; the
//! ones shipped here were written for skelact and live as TOML data files
//! beside this module (`descriptions/{nwucla,utd,ntu120}.toml`), compiled
//! in with `include_str!`. The texts the loss sees follow GAP's prompt
//! pools: the global text of a sample is drawn at random from the class
//! name, its synonyms and its action sentence; the text of part `p` is
//! `"{name}, {part sentence}"` (GAP: label, comma, part description).

use serde::Deserialize;

use crate::model::efficientgcn::{NTU120_EXTRA_CLASSES, NTU60_CLASSES};
use crate::skeleton::layout::{fnv1a, FNV_OFFSET};
use crate::skeleton::part::GAP_PART_NAMES;
use crate::train::Benchmark;
use crate::{Error, Result};

/// One class's texts (a `[[class]]` table).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassText {
    /// The class name, exactly as the crate's class list spells it.
    pub name: String,
    /// Other ways to say the action.
    pub synonyms: Vec<String>,
    /// One sentence for the whole action.
    pub action: String,
    /// What the head does.
    pub head: String,
    /// What the hands and arms do.
    pub arms: String,
    /// What the hips do.
    pub hip: String,
    /// What the legs and feet do.
    pub legs: String,
}

impl ClassText {
    /// The sentence for GAP part `p` (0 head, 1 arms, 2 hip, 3 legs, the
    /// order of [`GAP_PART_NAMES`]).
    pub fn part(&self, p: usize) -> &str {
        match p {
            0 => &self.head,
            1 => &self.arms,
            2 => &self.hip,
            _ => &self.legs,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    class: Vec<ClassText>,
}

/// The descriptions of one data set's classes, in label order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptions {
    /// Where they came from (a file name), for messages.
    pub origin: String,
    /// One entry per class, in label order.
    pub classes: Vec<ClassText>,
}

const NWUCLA: &str = include_str!("descriptions/nwucla.toml");
const UTD: &str = include_str!("descriptions/utd.toml");
const NTU120: &str = include_str!("descriptions/ntu120.toml");

/// NTU RGB+D 120's class names in label order (the first 60 are NTU-60's).
pub fn ntu120_classes() -> Vec<String> {
    NTU60_CLASSES
        .iter()
        .chain(NTU120_EXTRA_CLASSES.iter())
        .map(|s| s.to_string())
        .collect()
}

impl Descriptions {
    /// Parses a descriptions TOML document; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let file: File = toml::from_str(text).map_err(|source| Error::Toml {
            path: origin.into(),
            source,
        })?;
        let d = Self {
            origin: origin.to_string(),
            classes: file.class,
        };
        for c in &d.classes {
            let fields = [
                ("action", c.action.as_str()),
                ("head", &c.head),
                ("arms", &c.arms),
                ("hip", &c.hip),
                ("legs", &c.legs),
            ];
            for (field, value) in fields {
                if value.trim().is_empty() {
                    return Err(Error::config(
                        format!("{origin}: `{}`.{field}", c.name),
                        "is empty",
                    ));
                }
            }
            if c.synonyms.iter().any(|s| s.trim().is_empty()) {
                return Err(Error::config(
                    format!("{origin}: `{}`.synonyms", c.name),
                    "has an empty entry",
                ));
            }
        }
        Ok(d)
    }

    /// The built-in descriptions for a data set: `nwucla`, `utd`, `ntu120`
    /// (whose first 60 classes are NTU-60's, so `ntu60` takes those).
    pub fn builtin(name: &str) -> Result<Self> {
        match name {
            "nwucla" => Self::parse(NWUCLA, "descriptions/nwucla.toml"),
            "utd" => Self::parse(UTD, "descriptions/utd.toml"),
            "ntu120" => Self::parse(NTU120, "descriptions/ntu120.toml"),
            "ntu60" => {
                let mut d = Self::parse(NTU120, "descriptions/ntu120.toml")?;
                d.classes.truncate(NTU60_CLASSES.len());
                Ok(d)
            }
            other => Err(Error::config(
                "descriptions",
                format!("no built-in GAP descriptions for `{other}` (nwucla, utd, ntu60, ntu120)"),
            )),
        }
    }

    /// The built-in descriptions for a benchmark's classes.
    pub fn for_benchmark(bench: Benchmark) -> Result<Self> {
        let d = Self::builtin(match bench {
            Benchmark::NwuclaCrossView => "nwucla",
            Benchmark::UtdCrossSubject => "utd",
        })?;
        d.check(&bench.classes())?;
        Ok(d)
    }

    /// Checks that the descriptions name exactly `classes`, in order.
    pub fn check(&self, classes: &[String]) -> Result<()> {
        if self.classes.len() != classes.len() {
            return Err(Error::mismatch(
                format!("{}: number of classes", self.origin),
                classes.len(),
                self.classes.len(),
            ));
        }
        for (k, (c, want)) in self.classes.iter().zip(classes).enumerate() {
            if &c.name != want {
                return Err(Error::mismatch(
                    format!("{}: class {k}", self.origin),
                    want,
                    &c.name,
                ));
            }
        }
        Ok(())
    }

    /// The global text pool of class `k`: its name, synonyms and action
    /// sentence (GAP draws one at random per sample).
    pub fn global_texts(&self, k: usize) -> Vec<String> {
        let c = &self.classes[k];
        std::iter::once(c.name.clone())
            .chain(c.synonyms.iter().cloned())
            .chain(std::iter::once(c.action.clone()))
            .collect()
    }

    /// The text of part `p` of class `k`: `"{name}, {sentence}"`.
    pub fn part_text(&self, k: usize, p: usize) -> String {
        let c = &self.classes[k];
        format!("{}, {}", c.name, c.part(p))
    }

    /// Every text the loss uses, in a fixed order: each class's global
    /// pool, then each class's four part texts.
    pub fn all_texts(&self) -> Vec<String> {
        let k = self.classes.len();
        let mut out: Vec<String> = (0..k).flat_map(|c| self.global_texts(c)).collect();
        for c in 0..k {
            for p in 0..GAP_PART_NAMES.len() {
                out.push(self.part_text(c, p));
            }
        }
        out
    }

    /// A stable FNV-1a 64 digest of [`Self::all_texts`] (keys the cache of
    /// text embeddings).
    pub fn digest(&self) -> u64 {
        self.all_texts().iter().fold(FNV_OFFSET, |h, t| {
            fnv1a(fnv1a(h, &(t.len() as u64).to_le_bytes()), t.as_bytes())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_descriptions_cover_every_class_with_every_part() {
        for bench in [Benchmark::NwuclaCrossView, Benchmark::UtdCrossSubject] {
            let d = Descriptions::for_benchmark(bench).unwrap();
            assert_eq!(d.classes.len(), bench.classes().len());
            for c in &d.classes {
                assert!(!c.synonyms.is_empty(), "{} has no synonyms", c.name);
                for p in 0..4 {
                    assert!(!c.part(p).trim().is_empty());
                }
            }
        }
    }

    #[test]
    fn ntu_descriptions_cover_ntu60_and_ntu120() {
        let d = Descriptions::builtin("ntu120").unwrap();
        d.check(&ntu120_classes()).unwrap();
        let d60 = Descriptions::builtin("ntu60").unwrap();
        let names: Vec<String> = NTU60_CLASSES.iter().map(|s| s.to_string()).collect();
        d60.check(&names).unwrap();
        assert!(d.classes.iter().all(|c| !c.synonyms.is_empty()));
    }

    #[test]
    fn part_text_is_label_comma_sentence() {
        let d = Descriptions::builtin("nwucla").unwrap();
        assert!(d.part_text(0, 1).starts_with("pick up with one hand, "));
        assert_eq!(d.global_texts(0)[0], "pick up with one hand");
    }

    #[test]
    fn wrong_class_order_is_refused() {
        let d = Descriptions::builtin("nwucla").unwrap();
        let mut classes = Benchmark::NwuclaCrossView.classes();
        classes.swap(0, 1);
        assert!(matches!(d.check(&classes), Err(Error::Mismatch { .. })));
    }
}
