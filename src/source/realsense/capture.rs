//! Aligned colour + depth frames from a RealSense camera or a recording.
//!
//! [`Capture`] starts the SDK's pipeline on a camera with a depth (z16) and
//! a colour (RGB8) stream, or reads a recording's depth and colour frames
//! in file order and pairs them with the SDK's sync block
//! (`playback.rs`); it aligns depth to colour with the SDK's `align`
//! block (so a landmark found in the colour image reads its depth at the
//! same pixel),
//! and copies each frameset into a reusable [`RgbdFrame`] with the colour
//! intrinsics, the depth scale, hardware timestamps and frame numbers.
//! Framesets lacking one of the two streams (the SDK's syncer emits them at
//! the start of a recording) are skipped and counted.

use std::path::PathBuf;

use realsense_sys as sys;

use super::ffi::{call, non_null, sdk_string, FrameQueue, FrameRef, ProcessingBlock};
use super::ffi::{Config, Device};
use super::playback::{Playback, Streams};
use super::rgbd::RgbdFrame;
use super::session::{Session, Wait};
use super::stream::{frame_profile, intrinsics_from_rs2, ProfileData, StreamInfo};
use crate::{Error, Result};

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A connected camera, the first one or the one with this serial number.
    Camera {
        /// Serial number (`skelact realsense list` shows it).
        serial: Option<String>,
    },
    /// A recording (`.bag`, or `.db3` from librealsense 2.57 on), played
    /// once with real-time mode off.
    File(PathBuf),
}

/// How to open a [`Capture`].
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    /// Camera or file.
    pub input: Input,
    /// Colour and depth width for a camera (a file has its own).
    pub width: usize,
    /// Colour and depth height for a camera.
    pub height: usize,
    /// Frame rate for a camera, Hz.
    pub fps: u32,
    /// Also record the camera's streams to this file (librealsense 2.59
    /// writes ROS 2 `.db3` only; older SDKs ROS 1 `.bag`).
    pub record_to: Option<PathBuf>,
    /// How long one wait for a frameset may take, ms.
    pub wait_ms: u32,
    /// Play a file over and over (benchmarks): the stream never ends.
    pub loop_file: bool,
}

impl CaptureConfig {
    /// The first camera, 640 x 480 at 30 Hz (a D400's native colour mode).
    pub fn camera() -> Self {
        Self {
            input: Input::Camera { serial: None },
            width: 640,
            height: 480,
            fps: 30,
            record_to: None,
            wait_ms: 100,
            loop_file: false,
        }
    }

    /// A recording.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            input: Input::File(path.into()),
            ..Self::camera()
        }
    }
}

/// What [`Capture::next_frame`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The frame was filled.
    Frame,
    /// No frameset within the wait (a camera between frames; never for a
    /// file).
    Pending,
    /// The recording ended or the camera was disconnected.
    End,
}

/// Where framesets come from: the SDK's pipeline on a camera, skelact's
/// own sensor-by-sensor reading of a file.
enum Feed {
    Camera(Session),
    File(Box<Playback>),
}

impl Feed {
    fn device(&self) -> &Device {
        match self {
            Feed::Camera(s) => &s.device,
            Feed::File(p) => &p.device,
        }
    }
}

/// A running capture (see the module docs).
pub struct Capture {
    // Dropped before the feed: the align block holds frames of it.
    align: (ProcessingBlock, FrameQueue),
    feed: Feed,
    depth_scale_m: f32,
    wait_ms: u32,
    incomplete: u64,
    frames: u64,
    ended: bool,
    /// Whether the depth stream is already aligned to colour (known from
    /// the first frameset; see [`Capture::needs_align`]).
    depth_is_aligned: Option<bool>,
    describe: String,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("source", &self.describe)
            .field("streams", &self.streams())
            .field("depth_scale_m", &self.depth_scale_m)
            .finish()
    }
}

impl Capture {
    /// Opens the camera or file and starts streaming.
    pub fn open(cfg: &CaptureConfig) -> Result<Self> {
        let feed = match &cfg.input {
            Input::File(path) => {
                if cfg.record_to.is_some() {
                    return Err(Error::config(
                        "record_to",
                        "the SDK records cameras, not playbacks",
                    ));
                }
                Feed::File(Box::new(Playback::open(
                    path,
                    Streams::DepthAndColor,
                    cfg.loop_file,
                )?))
            }
            Input::Camera { serial } => Feed::Camera(open_camera(cfg, serial.as_deref())?),
        };
        let depth_scale_m = feed
            .device()
            .depth_scale_m()?
            .ok_or_else(|| Error::mismatch("RealSense device", "a depth sensor", "none"))?;
        // SAFETY: constructor; error checked.
        let b = call("rs2_create_align", |e| unsafe {
            sys::rs2_create_align(sys::rs2_stream_RS2_STREAM_COLOR, e)
        })?;
        let block = ProcessingBlock(non_null("rs2_create_align", b)?);
        let queue = block.output_queue(1)?;
        let align = (block, queue);
        let name = feed
            .device()
            .info(sys::rs2_camera_info_RS2_CAMERA_INFO_NAME)
            .unwrap_or_else(|| "RealSense".to_string());
        let describe = match &cfg.input {
            Input::File(p) => format!("realsense playback {} ({name})", p.display()),
            Input::Camera { .. } => format!(
                "realsense {name} {}",
                feed.device()
                    .info(sys::rs2_camera_info_RS2_CAMERA_INFO_SERIAL_NUMBER)
                    .unwrap_or_default()
            ),
        };
        Ok(Self {
            align,
            feed,
            depth_scale_m,
            wait_ms: cfg.wait_ms.max(1),
            incomplete: 0,
            frames: 0,
            ended: false,
            depth_is_aligned: None,
            describe,
        })
    }

    /// The streams of the running pipeline.
    pub fn streams(&self) -> &[StreamInfo] {
        match &self.feed {
            Feed::Camera(s) => &s.streams,
            Feed::File(p) => &p.streams,
        }
    }

    /// The colour stream of the running capture.
    pub fn color_stream(&self) -> Option<&StreamInfo> {
        self.streams()
            .iter()
            .find(|s| s.kind_id == sys::rs2_stream_RS2_STREAM_COLOR)
    }

    /// The device's depth scale, metres per z16 unit.
    pub fn depth_scale_m(&self) -> f32 {
        self.depth_scale_m
    }

    /// Whether frames come from a recording.
    pub fn is_playback(&self) -> bool {
        matches!(self.feed, Feed::File(_))
    }

    /// Framesets skipped for lacking colour or depth (for a recording:
    /// colour frames with no depth frame within one frame period).
    pub fn incomplete(&self) -> u64 {
        match &self.feed {
            Feed::Camera(_) => self.incomplete,
            Feed::File(p) => self.incomplete + p.unpaired(),
        }
    }

    /// Frames delivered so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The device's (or the recorded device's) name and serial number;
    /// empty where it reports none.
    pub fn device_name_and_serial(&self) -> (String, String) {
        let d = self.feed.device();
        let info = |i| d.info(i).unwrap_or_default();
        (
            info(sys::rs2_camera_info_RS2_CAMERA_INFO_NAME),
            info(sys::rs2_camera_info_RS2_CAMERA_INFO_SERIAL_NUMBER),
        )
    }

    /// A short description for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Fills `out` with the next aligned frame.
    pub fn next_frame(&mut self, out: &mut RgbdFrame) -> Result<Next> {
        if self.ended {
            return Ok(Next::End);
        }
        loop {
            let wait = match &mut self.feed {
                Feed::Camera(s) => s.wait(self.wait_ms)?,
                Feed::File(p) => p.wait(self.wait_ms)?,
            };
            let frameset = match wait {
                Wait::Frames(f) => f,
                // A file read without real-time always has a next frame
                // or an end: wait for it.
                Wait::Pending if self.is_playback() => continue,
                Wait::Pending => return Ok(Next::Pending),
                Wait::End => {
                    self.ended = true;
                    return Ok(Next::End);
                }
            };
            let aligned = if self.needs_align(&frameset)? {
                self.align(frameset)?
            } else {
                frameset
            };
            if self.copy_out(&aligned, out)? {
                self.frames += 1;
                return Ok(Next::Frame);
            }
            self.incomplete += 1;
        }
    }

    /// Whether depth must be aligned to colour: not when the recording's
    /// depth stream already is (a recording written by
    /// [`super::RgbdWriter`]: the colour stream's intrinsics and
    /// identity extrinsics), since aligning again is not the identity (the
    /// SDK's align fills each pixel's footprint, rounded outwards, with the
    /// nearest depth, which thickens every edge by a pixel). Decided on the
    /// first frameset with both streams.
    fn needs_align(&mut self, fs: &FrameRef) -> Result<bool> {
        if let Some(aligned) = self.depth_is_aligned {
            return Ok(!aligned);
        }
        let (Some((_cf, cp, _)), Some((_df, dp, _))) = split(fs)? else {
            return Ok(true); // incomplete: align, then counted
        };
        // SAFETY: the profiles belong to the frames, held until the end.
        unsafe {
            let intrinsics = |p| {
                let mut raw = std::mem::zeroed::<sys::rs2_intrinsics>();
                call("rs2_get_video_stream_intrinsics", |e| {
                    sys::rs2_get_video_stream_intrinsics(p, &mut raw, e)
                })
                .and_then(|()| intrinsics_from_rs2(&raw))
            };
            let mut ext = std::mem::zeroed::<sys::rs2_extrinsics>();
            let same = match (intrinsics(dp), intrinsics(cp)) {
                (Ok(d), Ok(c)) if d == c => {
                    call("rs2_get_extrinsics", |e| {
                        sys::rs2_get_extrinsics(dp, cp, &mut ext, e)
                    })
                    .is_ok()
                        && ext.rotation == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
                        && ext.translation == [0.0; 3]
                }
                _ => false,
            };
            self.depth_is_aligned = Some(same);
            Ok(!same)
        }
    }

    /// Runs the align block on a frameset.
    fn align(&mut self, frameset: FrameRef) -> Result<FrameRef> {
        let (block, queue) = &self.align;
        block
            .process(queue, frameset, 5000)?
            .ok_or_else(|| Error::RealSense {
                function: "align".to_string(),
                message: "no aligned frameset within 5 s".to_string(),
            })
    }

    /// Copies colour and depth of `fs` into `out`; `false` when the
    /// frameset lacks one of them.
    fn copy_out(&self, fs: &FrameRef, out: &mut RgbdFrame) -> Result<bool> {
        let (Some((cf, cp, cfmt)), Some((df, _, dfmt))) = split(fs)? else {
            return Ok(false);
        };
        // SAFETY: the frames are owned references released on drop; data
        // pointers are read within the frames' lifetime and bounded by
        // stride x height, which the SDK guarantees to be the buffer size.
        unsafe {
            let size = |f: &FrameRef| -> Result<(usize, usize, usize)> {
                let w = call("rs2_get_frame_width", |e| {
                    sys::rs2_get_frame_width(f.ptr(), e)
                })?;
                let h = call("rs2_get_frame_height", |e| {
                    sys::rs2_get_frame_height(f.ptr(), e)
                })?;
                let s = call("rs2_get_frame_stride_in_bytes", |e| {
                    sys::rs2_get_frame_stride_in_bytes(f.ptr(), e)
                })?;
                let size = call("rs2_get_frame_data_size", |e| {
                    sys::rs2_get_frame_data_size(f.ptr(), e)
                })?;
                let (w, h, s) = (w.max(0) as usize, h.max(0) as usize, s.max(0) as usize);
                if (size.max(0) as usize) < s * h {
                    return Err(Error::RealSense {
                        function: "frame".to_string(),
                        message: format!("data of {size} bytes for {h} rows of {s}"),
                    });
                }
                Ok((w, h, s))
            };
            let data = |f: &FrameRef, len: usize| -> Result<&[u8]> {
                let p = call("rs2_get_frame_data", |e| {
                    sys::rs2_get_frame_data(f.ptr(), e)
                })?;
                let p = non_null("rs2_get_frame_data", p as *mut u8)?;
                Ok(std::slice::from_raw_parts(p.as_ptr(), len))
            };
            let (w, h, cs) = size(&cf)?;
            let (dw, dh, ds) = size(&df)?;
            if (dw, dh) != (w, h) {
                return Err(Error::mismatch(
                    "aligned depth size",
                    format!("{w}x{h}"),
                    format!("{dw}x{dh}"),
                ));
            }
            if dfmt != sys::rs2_format_RS2_FORMAT_Z16 || ds < 2 * w {
                return Err(Error::mismatch(
                    "depth format",
                    "Z16",
                    super::ffi::format_name(dfmt),
                ));
            }
            let bgr = match cfmt {
                f if f == sys::rs2_format_RS2_FORMAT_RGB8 => false,
                f if f == sys::rs2_format_RS2_FORMAT_BGR8 => true,
                f => {
                    return Err(Error::mismatch(
                        "colour format",
                        "RGB8 or BGR8",
                        super::ffi::format_name(f),
                    ))
                }
            };
            if cs < 3 * w {
                return Err(Error::mismatch(
                    "colour stride",
                    format!(">= {}", 3 * w),
                    cs,
                ));
            }
            out.width = w;
            out.height = h;
            out.rgb.resize(w * h * 3, 0);
            let cbytes = data(&cf, cs * h)?;
            for (dst, src) in out.rgb.chunks_exact_mut(3 * w).zip(cbytes.chunks_exact(cs)) {
                dst.copy_from_slice(&src[..3 * w]);
                if bgr {
                    dst.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
                }
            }
            out.depth.resize(w * h, 0);
            let dbytes = data(&df, ds * h)?;
            for (dst, src) in out.depth.chunks_exact_mut(w).zip(dbytes.chunks_exact(ds)) {
                for (d, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *d = u16::from_ne_bytes([b[0], b[1]]);
                }
            }
            let mut raw = std::mem::zeroed::<sys::rs2_intrinsics>();
            call("rs2_get_video_stream_intrinsics", |e| {
                sys::rs2_get_video_stream_intrinsics(cp, &mut raw, e)
            })?;
            out.intrinsics = Some(intrinsics_from_rs2(&raw)?);
            out.depth_scale_m = match call("rs2_depth_frame_get_units", |e| {
                sys::rs2_depth_frame_get_units(df.ptr(), e)
            }) {
                Ok(u) if u.is_finite() && u > 0.0 => u,
                _ => self.depth_scale_m,
            };
            out.color_timestamp_ms = call("rs2_get_frame_timestamp", |e| {
                sys::rs2_get_frame_timestamp(cf.ptr(), e)
            })?;
            out.depth_timestamp_ms = call("rs2_get_frame_timestamp", |e| {
                sys::rs2_get_frame_timestamp(df.ptr(), e)
            })?;
            let domain = call("rs2_get_frame_timestamp_domain", |e| {
                sys::rs2_get_frame_timestamp_domain(cf.ptr(), e)
            })?;
            out.timestamp_domain = sdk_string(sys::rs2_timestamp_domain_to_string(domain));
            out.color_frame_number = call("rs2_get_frame_number", |e| {
                sys::rs2_get_frame_number(cf.ptr(), e)
            })?;
            out.depth_frame_number = call("rs2_get_frame_number", |e| {
                sys::rs2_get_frame_number(df.ptr(), e)
            })?;
        }
        Ok(true)
    }
}

/// One frame of a frameset, its stream profile (owned by the frame) and
/// its pixel format.
type Part = (FrameRef, *const sys::rs2_stream_profile, sys::rs2_format);

/// A frameset's first colour frame and first depth frame.
fn split(fs: &FrameRef) -> Result<(Option<Part>, Option<Part>)> {
    let (mut color, mut depth) = (None, None);
    // SAFETY: `fs` is a live composite frame; each extracted frame is an
    // owned reference, released on drop.
    unsafe {
        let n = call("rs2_embedded_frames_count", |e| {
            sys::rs2_embedded_frames_count(fs.ptr(), e)
        })?;
        for i in 0..n {
            let f = call("rs2_extract_frame", |e| {
                sys::rs2_extract_frame(fs.ptr(), i, e)
            })?;
            let f = FrameRef(non_null("rs2_extract_frame", f)?);
            let (p, ProfileData { stream, format, .. }) = frame_profile(f.ptr())?;
            let slot = match stream {
                sys::rs2_stream_RS2_STREAM_COLOR => &mut color,
                sys::rs2_stream_RS2_STREAM_DEPTH => &mut depth,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some((f, p, format));
            }
        }
    }
    Ok((color, depth))
}

/// Starts the SDK's pipeline on a camera (the first one, or `serial`) with
/// depth z16 and colour RGB8 at the configured size and rate, recording
/// to `cfg.record_to` when asked.
fn open_camera(cfg: &CaptureConfig, serial: Option<&str>) -> Result<Session> {
    let (context, config): (_, Config) = Session::config()?;
    // Without a camera the pipeline would wait 15 s before saying so.
    if context.device_count()? == 0 {
        return Err(Error::RealSense {
            function: "rs2_query_devices".to_string(),
            message: "no RealSense camera connected".to_string(),
        });
    }
    let (w, h, fps) = (cfg.width as i32, cfg.height as i32, cfg.fps as i32);
    // SAFETY: live config; strings are copied by the SDK.
    unsafe {
        if let Some(s) = serial {
            let c = std::ffi::CString::new(s)
                .map_err(|_| Error::config("serial", "contains a NUL byte"))?;
            call("rs2_config_enable_device", |e| {
                sys::rs2_config_enable_device(config.ptr(), c.as_ptr(), e)
            })?;
        }
        for (what, stream, format) in [
            (
                "rs2_config_enable_stream(depth)",
                sys::rs2_stream_RS2_STREAM_DEPTH,
                sys::rs2_format_RS2_FORMAT_Z16,
            ),
            (
                "rs2_config_enable_stream(color)",
                sys::rs2_stream_RS2_STREAM_COLOR,
                sys::rs2_format_RS2_FORMAT_RGB8,
            ),
        ] {
            call(what, |e| {
                sys::rs2_config_enable_stream(config.ptr(), stream, -1, w, h, format, fps, e)
            })?;
        }
        if let Some(out) = &cfg.record_to {
            let c = super::ffi::c_path(out)?;
            call("rs2_config_enable_record_to_file", |e| {
                sys::rs2_config_enable_record_to_file(config.ptr(), c.as_ptr(), e)
            })?;
        }
    }
    Session::start(context, config)
}
