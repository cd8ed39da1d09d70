//! 3D body joints from an RGB-D camera: 2D landmarks in the colour image,
//! depth at each landmark, deprojection with the camera's intrinsics, and
//! the mapping to the layout a model was trained on.
//!
//! A depth camera such as an Intel RealSense gives aligned colour and depth
//! images, not joints. skelact finds 2D landmarks with a network (any
//! [`LandmarkDetector`], such as BlazePose) and lifts them here:
//!
//! - [`Intrinsics`]: pinhole intrinsics with librealsense's distortion
//!   models, [`Intrinsics::deproject`] and [`Intrinsics::project`] equal to
//!   `rs2_deproject_pixel_to_point` and `rs2_project_point_to_pixel`;
//! - [`DepthLookup`]: a depth per landmark that survives holes and
//!   silhouette edges (nearest substantial depth cluster in a window);
//! - [`Lifter`]: per-joint confidence (visibility x depth validity) and the
//!   MediaPipe-33 to NTU-25 / Kinect-20 mapping, into the runtime's
//!   [`crate::source::Pose`].
//!
//! All of it is pure Rust and available without the `realsense` feature,
//! so it can be tested on synthetic RGB-D scenes and fed by other cameras.

pub mod depth;
pub mod intrinsics;
pub mod landmarks;
pub mod lifter;

pub use depth::{DepthImage, DepthLookup, DepthSample};
pub use intrinsics::{Distortion, Intrinsics};
pub use landmarks::{LandmarkDetector, Landmarks2d};
pub use lifter::Lifter;
