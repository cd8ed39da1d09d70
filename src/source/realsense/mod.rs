//! Intel RealSense depth cameras and their recordings (feature
//! `realsense`).
//!
//! - [`list_devices`]: connected cameras (name, serial, firmware), through
//!   realsense-rust.
//! - [`Capture`]: colour (RGB8) + depth (z16) from a camera or a recorded
//!   `.bag` / `.db3` file, depth aligned to colour by the SDK, with the
//!   colour intrinsics, depth scale, hardware timestamps and frame numbers;
//!   files are read by skelact itself, not the SDK pipeline (every frame,
//!   as fast as the caller reads, each colour frame paired with the depth
//!   frame nearest in time: `playback.rs`, `pair.rs`); the end of a file
//!   or an unplugged camera ends the stream;
//!   optional recording of a camera to a file.
//! - [`RealSenseSource`]: the runtime's [`crate::source::JointSource`]:
//!   capture, 2D landmarks from a [`crate::lift::LandmarkDetector`],
//!   lifting to 3D with [`crate::lift::Lifter`].
//! - [`RgbdWriter`]: aligned frames written to a `.db3` recording by
//!   the SDK's recorder, through a software device (`writer.rs`); from a
//!   file or a camera with [`rerecord`] (`skelact realsense convert` and
//!   `record`).
//! - [`summarize_file`]: streams, intrinsics, duration and frame counts of a
//!   recording (`skelact realsense info`).
//!
//! Build: librealsense2 must be found by pkg-config;
//! `.ci/setup-librealsense.sh PREFIX` installs it from the PyPI
//! `pyrealsense2` wheel, and skelact's build script writes its directory
//! into the rpath. The capture path calls the C API through
//! `realsense-sys` (`ffi.rs` says why).

pub mod capture;
pub mod convert;
pub mod device;
pub(crate) mod ffi;
pub mod file;
pub(crate) mod pair;
pub(crate) mod playback;
pub mod rgbd;
pub(crate) mod session;
pub mod source;
pub mod stream;
pub mod writer;

pub use capture::{Capture, CaptureConfig, Input, Next};
pub use convert::{convert, rerecord, Rerecorded};
pub use device::{list_devices, DeviceInfo};
pub use file::{summarize_file, FileSummary, StreamCount};
pub use rgbd::RgbdFrame;
pub use source::RealSenseSource;
pub use stream::{intrinsics_from_rs2, intrinsics_to_rs2, StreamInfo};
pub use writer::{RgbdSpec, RgbdWriter};
