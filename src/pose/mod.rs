//! 2D human body landmarks from colour images: MediaPipe BlazePose (pose
//! detector + full landmark model) run on the CPU from MediaPipe's own
//! TFLite files.
//!
//! Usage: fetch the two networks once (`.ci/fetch-blazepose.sh DIR`, from
//! the PyPI wheel `mediapipe==0.10.21`), then
//!
//! ```no_run
//! # fn main() -> skelact::Result<()> {
//! use skelact::pose::BlazePose;
//! let mut pose = BlazePose::load(std::path::Path::new("/path/to/blazepose"))?;
//! let (width, height) = (640, 480);
//! let rgb = vec![0u8; width * height * 3];
//! for person in pose.estimate(&rgb, width, height)? {
//!     println!("nose at {:?}, presence {}", person.pixels[0], person.presence);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Types: [`BlazePose`] (the pipeline and its tracking state),
//! [`PoseLandmarks`] (33 landmarks in image pixels, MediaPipe's topology,
//! [`crate::skeleton::Layout`]'s BlazePose-33), [`tflite::Model`] (a TFLite
//! file read into an owned graph), [`interpreter::Interpreter`] (that graph
//! on planned CPU buffers).
//!
//! Implementation: [`tflite`] reads the FlatBuffer with a verifying reader
//! generated from TensorFlow Lite's schema; [`interpreter`] plans buffers
//! and runs the twelve operators the two graphs use (fp16 weights behind
//! DEQUANTIZE and CSR weights behind DENSIFY are expanded at load) with the
//! slice kernels of [`ops`] and [`depthwise`]; [`anchor`] and [`roi`]
//! are MediaPipe's pre- and post-processing; [`blazepose`] joins them as
//! MediaPipe's `pose_landmark_cpu` graph does.

pub mod anchor;
pub mod blazepose;
pub mod depthwise;
pub mod detector;
pub mod image;
pub mod interpreter;
pub mod ops;
pub mod roi;
pub mod tflite;

pub use blazepose::{BlazePose, PoseLandmarks, StageTimes};

/// Environment variable naming the folder with the two `.tflite` files.
pub const POSE_MODEL_ENV: &str = "SKELACT_POSE_MODEL";
