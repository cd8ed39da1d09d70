//! One error type for the whole crate.
//!
//! Variants are named after what went wrong, so that a caller can match on
//! them (a refused model directory is not the same situation as a corrupt
//! weight file). Underlying errors are kept as `#[source]`, never flattened
//! into strings.

use std::path::PathBuf;

/// Result alias used throughout skelact.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in skelact's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),

    /// Reading or writing a file failed.
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A TOML document (model card, board profile, config) did not parse,
    /// or named a key that does not exist.
    #[error("invalid TOML in {path}: {source}")]
    Toml {
        /// The file that was parsed.
        path: PathBuf,
        /// The parser's message, which names the offending key and line.
        #[source]
        source: toml::de::Error,
    },

    /// A tensor had a shape other than the one an operation requires.
    #[error("shape mismatch for {what}: expected {expected}, got {got:?}")]
    Shape {
        /// What the tensor is (for example "model input").
        what: String,
        /// The expected shape, in words or dims.
        expected: String,
        /// The dims that were found.
        got: Vec<usize>,
    },

    /// Input values that cannot be processed (NaN, infinity).
    #[error("non-finite values in {what}: {count} of {total} elements")]
    NonFinite {
        /// What the tensor is.
        what: String,
        /// How many elements were NaN or infinite.
        count: usize,
        /// How many elements there were.
        total: usize,
    },

    /// A model directory (or checkpoint) does not match what it is loaded
    /// against; `field` names the card field or tensor that disagrees.
    #[error("model mismatch in `{field}`: expected {expected}, found {found}")]
    Mismatch {
        /// The card field or tensor name that disagrees.
        field: String,
        /// What the caller or the card expected.
        expected: String,
        /// What was found.
        found: String,
    },

    /// A weight the model needs is absent from its weight file.
    #[error("missing weight `{name}` in {path}")]
    MissingWeight {
        /// The state-dict style name of the tensor.
        name: String,
        /// The weight file.
        path: PathBuf,
    },

    /// A weight file (safetensors, PyTorch checkpoint) could not be read.
    #[error("corrupt weight file {path}: {reason}")]
    CorruptWeights {
        /// The weight file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// A skeleton layout name, joint name or mapping that skelact does not
    /// know.
    #[error("unknown {kind} `{name}`")]
    Unknown {
        /// What kind of thing was looked up ("layout", "joint", ...).
        kind: &'static str,
        /// The name that was asked for.
        name: String,
    },

    /// A configuration value outside its valid range.
    #[error("invalid configuration `{field}`: {reason}")]
    Config {
        /// The configuration key.
        field: String,
        /// Why the value is refused.
        reason: String,
    },

    /// A device (CUDA) was asked for in a build or on a machine without it.
    #[error("device unavailable: {0}")]
    Device(String),

    /// A data file (dataset clip, recording, datagram) is malformed.
    #[error("malformed {format} data in {path}: {reason}")]
    Format {
        /// The format being read ("NW-UCLA JSON", "MATLAB v5", "NTU .skeleton", ...).
        format: &'static str,
        /// The file (or source) it came from.
        path: std::path::PathBuf,
        /// What is wrong, with the byte offset or line where known.
        reason: String,
    },

    /// Drawing or writing a plot failed.
    #[error("plot {path}: {source}")]
    Plot {
        /// The image being written.
        path: PathBuf,
        /// What the plotting backend said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The Intel RealSense SDK (librealsense2) reported an error: a camera
    /// that cannot be opened, a stream configuration the device does not
    /// offer, an unreadable recording.
    #[error("RealSense {function}: {message}")]
    RealSense {
        /// The SDK function (or skelact operation) that failed.
        function: String,
        /// The SDK's message.
        message: String,
    },

    /// A TFLite model file is not a valid TFLite FlatBuffer (verification
    /// failed), or its graph is inconsistent (an index out of range, a
    /// buffer too short for its tensor, a sparse tensor whose index arrays
    /// do not fit its shape).
    #[error("invalid TFLite model: {reason}")]
    Tflite {
        /// What is wrong, naming the tensor or operator where known.
        reason: String,
        /// The FlatBuffer verifier's error, when it was the verifier that refused.
        #[source]
        source: Option<planus::Error>,
    },

    /// A TFLite graph uses an operator (or an operator option) that
    /// skelact's interpreter does not implement.
    #[error("unsupported TFLite operator {name} (builtin code {code}){detail}")]
    TfliteUnsupported {
        /// The operator's name in TensorFlow Lite's schema.
        name: String,
        /// Its builtin code.
        code: i32,
        /// What about it is unsupported, when the operator itself is known.
        detail: String,
    },

    /// A tokenizer file did not load, or a text did not tokenize (GAP's
    /// sentence encoder, feature `train`).
    #[error("tokenizer {path}: {source}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What the tokenizer library said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A TFLite format error that the verifier did not raise.
    pub fn tflite(reason: impl Into<String>) -> Self {
        Self::Tflite {
            reason: reason.into(),
            source: None,
        }
    }

    /// A shape error for `what`.
    pub fn shape(what: impl Into<String>, expected: impl Into<String>, got: &[usize]) -> Self {
        Self::Shape {
            what: what.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    /// A configuration error on `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A mismatch on `field`.
    pub fn mismatch(
        field: impl Into<String>,
        expected: impl std::fmt::Display,
        found: impl std::fmt::Display,
    ) -> Self {
        Self::Mismatch {
            field: field.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}
