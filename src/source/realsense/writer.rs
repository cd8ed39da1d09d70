//! Aligned colour + depth frames written to a RealSense recording by the
//! SDK's own recorder.
//!
//! librealsense records devices, not frames: its recorder wraps a device
//! and writes what the device's sensors stream. It cannot wrap a playback
//! (`rs2_create_record_device_ex` on a file aborts inside the SDK), so a
//! recording cannot be re-recorded directly. [`RgbdWriter`] builds a
//! *software device* (`rs_internal.h`: a device whose frames the caller
//! injects) with a depth sensor (z16, with the depth units as a read-only
//! option, so playback reports it as a depth sensor with that scale) and a
//! colour sensor (RGB8), wraps it in the SDK's recorder and injects every
//! [`RgbdFrame`] with its timestamps (kept to the nanosecond, the file's
//! resolution), timestamp domain and frame numbers.
//! The file is what the SDK writes when it records a camera: librealsense
//! 2.59 writes ROS 2 `.db3` (it refuses any other extension), and any
//! RealSense tool, [`super::Capture`] included, plays it back.
//!
//! The depth written is the frame's depth as it is, aligned to colour: the
//! depth stream carries the colour intrinsics and identity extrinsics to
//! the colour stream, so aligning it again on playback maps every pixel to
//! itself.
//!
//! Uses: converting a ROS 1 `.bag` into the current format
//! (`skelact realsense convert`), cutting a recording, and writing test
//! recordings whose every pixel is known.

use std::alloc::{alloc, dealloc, Layout};
use std::ffi::{c_void, CString};
use std::os::raw::{c_char, c_int};
use std::path::{Path, PathBuf};

use realsense_sys as sys;

use super::ffi::{c_path, call, non_null, Device, Sensor, StreamProfileList};
use super::rgbd::RgbdFrame;
use super::stream::intrinsics_to_rs2;
use crate::lift::Intrinsics;
use crate::{Error, Result};

/// `rs2_video_stream` (`rs_internal.h`, unchanged from 2.10 to 2.59).
#[repr(C)]
struct VideoStream {
    kind: sys::rs2_stream,
    index: c_int,
    uid: c_int,
    width: c_int,
    height: c_int,
    fps: c_int,
    bpp: c_int,
    format: sys::rs2_format,
    intrinsics: sys::rs2_intrinsics,
}

/// `rs2_software_video_frame` (`rs_internal.h`; `depth_units` was added
/// after 2.10 and is the last field in 2.59, as pyrealsense2 2.59's
/// `software_video_frame` fields show).
#[repr(C)]
struct SoftwareVideoFrame {
    pixels: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut c_void)>,
    stride: c_int,
    bpp: c_int,
    timestamp: f64,
    domain: sys::rs2_timestamp_domain,
    frame_number: c_int,
    profile: *const sys::rs2_stream_profile,
    depth_units: f32,
}

// The software device API is exported by librealsense2 but not part of
// realsense-sys's bindings (they cover `rs.h`, not `rs_internal.h`).
extern "C" {
    fn rs2_create_software_device(error: *mut *mut sys::rs2_error) -> *mut sys::rs2_device;
    fn rs2_software_device_add_sensor(
        dev: *mut sys::rs2_device,
        name: *const c_char,
        error: *mut *mut sys::rs2_error,
    ) -> *mut sys::rs2_sensor;
    fn rs2_software_device_register_info(
        dev: *mut sys::rs2_device,
        info: sys::rs2_camera_info,
        val: *const c_char,
        error: *mut *mut sys::rs2_error,
    );
    fn rs2_software_sensor_add_video_stream_ex(
        sensor: *mut sys::rs2_sensor,
        stream: VideoStream,
        is_default: c_int,
        error: *mut *mut sys::rs2_error,
    ) -> *mut sys::rs2_stream_profile;
    fn rs2_software_sensor_add_read_only_option(
        sensor: *mut sys::rs2_sensor,
        option: sys::rs2_option,
        val: f32,
        error: *mut *mut sys::rs2_error,
    );
    fn rs2_software_sensor_on_video_frame(
        sensor: *mut sys::rs2_sensor,
        frame: SoftwareVideoFrame,
        error: *mut *mut sys::rs2_error,
    );
}

/// What a recording written by [`RgbdWriter`] holds: the image size
/// and calibration every frame must share.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbdSpec {
    /// Colour intrinsics, valid for the aligned depth too (size included).
    pub intrinsics: Intrinsics,
    /// Metres per depth unit.
    pub depth_scale_m: f32,
    /// Nominal frame rate of both streams, Hz.
    pub fps: u32,
    /// The device name recorded (`skelact realsense info` shows it).
    pub device_name: String,
    /// The serial number recorded.
    pub serial: String,
}

impl RgbdSpec {
    /// The spec of a stream of frames like `frame`, at `fps`.
    pub fn of_frame(frame: &RgbdFrame, fps: u32, device_name: &str, serial: &str) -> Result<Self> {
        let intrinsics = frame
            .intrinsics
            .ok_or_else(|| Error::mismatch("frame to record", "colour intrinsics", "none"))?;
        Ok(Self {
            intrinsics,
            depth_scale_m: frame.depth_scale_m,
            fps,
            device_name: device_name.to_string(),
            serial: serial.to_string(),
        })
    }

    fn validate(&self) -> Result<()> {
        let i = &self.intrinsics;
        if i.width == 0 || i.height == 0 || i.width > 1 << 14 || i.height > 1 << 14 {
            return Err(Error::config(
                "recording size",
                format!("{}x{} is not an image size", i.width, i.height),
            ));
        }
        if !(self.depth_scale_m.is_finite() && self.depth_scale_m > 0.0) {
            return Err(Error::config(
                "depth scale",
                format!("{} m per unit", self.depth_scale_m),
            ));
        }
        if self.fps == 0 || self.fps > 1000 {
            return Err(Error::config("fps", format!("{} Hz", self.fps)));
        }
        Ok(())
    }
}

/// The bytes before the pixels of a buffer handed to the SDK: its length,
/// so that the SDK's deleter, which gets only the pixel pointer, can free
/// it.
const HEADER: usize = 16;

/// A copy of `bytes` the SDK owns until it calls [`free_pixels`].
fn alloc_pixels(bytes: &[u8]) -> Result<*mut c_void> {
    let layout = Layout::from_size_align(HEADER + bytes.len(), HEADER)
        .map_err(|_| Error::config("frame", format!("{} bytes", bytes.len())))?;
    // SAFETY: the layout has a non-zero size; the header holds a usize
    // (16-aligned base), the pixels fit behind it.
    unsafe {
        let base = alloc(layout);
        if base.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        (base as *mut usize).write(bytes.len());
        let pixels = base.add(HEADER);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), pixels, bytes.len());
        Ok(pixels as *mut c_void)
    }
}

/// The SDK's deleter for buffers from [`alloc_pixels`].
unsafe extern "C" fn free_pixels(pixels: *mut c_void) {
    if pixels.is_null() {
        return;
    }
    // SAFETY: `pixels` came from `alloc_pixels`, whose header holds the
    // length the layout was made with; the SDK calls this once per frame.
    unsafe {
        let base = (pixels as *mut u8).sub(HEADER);
        let len = (base as *const usize).read();
        dealloc(
            base,
            Layout::from_size_align_unchecked(HEADER + len, HEADER),
        );
    }
}

/// A frame callback that lets recorded frames go (the recorder writes them
/// before the callback runs).
unsafe extern "C" fn discard(frame: *mut sys::rs2_frame, _user: *mut c_void) {
    if !frame.is_null() {
        // SAFETY: the callback owns the frame reference it is given.
        unsafe { sys::rs2_release_frame(frame) };
    }
}

/// One of the software device's two sensors and the profile it streams.
struct SoftwareSensor {
    sensor: Sensor,
    /// Owned by the sensor.
    profile: *const sys::rs2_stream_profile,
}

/// A sensor of the recording device, opened and streaming.
struct RecordingSensor {
    sensor: Sensor,
    _profiles: StreamProfileList,
}

/// Writes [`RgbdFrame`]s to a RealSense recording (see the module docs).
pub struct RgbdWriter {
    // Field order is drop order: the recorder's sensors stop first, then
    // the recorder (which closes the file), then the software device.
    recording: Vec<RecordingSensor>,
    recorder: Option<Device>,
    depth: SoftwareSensor,
    color: SoftwareSensor,
    _device: Device,
    spec: RgbdSpec,
    domain: sys::rs2_timestamp_domain,
    path: PathBuf,
    frames: u64,
    /// Depth as bytes, reused from frame to frame.
    depth_bytes: Vec<u8>,
}

// SAFETY: SDK handles may be used from any thread; the profile pointers
// belong to sensors owned by this value and move with it.
unsafe impl Send for RgbdWriter {}

impl std::fmt::Debug for RgbdWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RgbdWriter")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("frames", &self.frames)
            .finish()
    }
}

impl RgbdWriter {
    /// Creates `path` (`.db3`) for frames of `spec`.
    pub fn create(path: &Path, spec: RgbdSpec) -> Result<Self> {
        spec.validate()?;
        if path.extension().and_then(|e| e.to_str()) != Some("db3") {
            return Err(Error::config(
                "recording",
                format!(
                    "{}: librealsense 2.59 writes ROS 2 recordings, named .db3",
                    path.display()
                ),
            ));
        }
        let c_file = c_path(path)?;
        // SAFETY: constructors and calls on live handles, each owned by a
        // value that frees it once; strings outlive the calls (the SDK
        // copies them).
        unsafe {
            let d = call("rs2_create_software_device", |e| {
                rs2_create_software_device(e)
            })?;
            let device = Device(non_null("rs2_create_software_device", d)?);
            for (info, value) in [
                (sys::rs2_camera_info_RS2_CAMERA_INFO_NAME, &spec.device_name),
                (
                    sys::rs2_camera_info_RS2_CAMERA_INFO_SERIAL_NUMBER,
                    &spec.serial,
                ),
            ] {
                let v = CString::new(value.as_str())
                    .map_err(|_| Error::config("device info", "contains a NUL byte"))?;
                call("rs2_software_device_register_info", |e| {
                    rs2_software_device_register_info(device.ptr(), info, v.as_ptr(), e)
                })?;
            }
            let intrinsics = intrinsics_to_rs2(&spec.intrinsics);
            let stream = |kind, uid, bpp, format| VideoStream {
                kind,
                index: 0,
                uid,
                width: spec.intrinsics.width as c_int,
                height: spec.intrinsics.height as c_int,
                fps: spec.fps as c_int,
                bpp,
                format,
                intrinsics,
            };
            let depth = add_sensor(
                &device,
                c"Stereo Module",
                stream(
                    sys::rs2_stream_RS2_STREAM_DEPTH,
                    0,
                    2,
                    sys::rs2_format_RS2_FORMAT_Z16,
                ),
            )?;
            call("rs2_software_sensor_add_read_only_option", |e| {
                rs2_software_sensor_add_read_only_option(
                    depth.sensor.ptr(),
                    sys::rs2_option_RS2_OPTION_DEPTH_UNITS,
                    spec.depth_scale_m,
                    e,
                )
            })?;
            let color = add_sensor(
                &device,
                c"RGB Camera",
                stream(
                    sys::rs2_stream_RS2_STREAM_COLOR,
                    1,
                    3,
                    sys::rs2_format_RS2_FORMAT_RGB8,
                ),
            )?;
            let identity = sys::rs2_extrinsics {
                rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                translation: [0.0; 3],
            };
            call("rs2_register_extrinsics", |e| {
                sys::rs2_register_extrinsics(depth.profile, color.profile, identity, e)
            })?;
            let r = call("rs2_create_record_device_ex", |e| {
                sys::rs2_create_record_device_ex(device.ptr(), c_file.as_ptr(), 0, e)
            })?;
            let recorder = Device(non_null("rs2_create_record_device_ex", r)?);
            let mut writer = Self {
                recording: Vec::new(),
                recorder: Some(recorder),
                depth,
                color,
                _device: device,
                spec,
                domain: sys::rs2_timestamp_domain_RS2_TIMESTAMP_DOMAIN_HARDWARE_CLOCK,
                path: path.to_path_buf(),
                frames: 0,
                depth_bytes: Vec::new(),
            };
            writer.start_recording()?;
            Ok(writer)
        }
    }

    /// Opens and starts every sensor of the recorder: from then on, what
    /// the software sensors are given is written.
    fn start_recording(&mut self) -> Result<()> {
        let recorder = self
            .recorder
            .as_ref()
            .ok_or_else(|| Error::config("recording", "already finished"))?;
        // SAFETY: live recorder; each sensor and profile list is owned by a
        // value kept in `self.recording` until the recording ends.
        unsafe {
            for sensor in recorder.sensors()? {
                let profiles = sensor.stream_profiles()?;
                let mut all = profiles.profiles()?;
                call("rs2_open_multiple", |e| {
                    sys::rs2_open_multiple(sensor.ptr(), all.as_mut_ptr(), all.len() as i32, e)
                })?;
                call("rs2_start", |e| {
                    sys::rs2_start(sensor.ptr(), Some(discard), std::ptr::null_mut(), e)
                })?;
                self.recording.push(RecordingSensor {
                    sensor,
                    _profiles: profiles,
                });
            }
        }
        Ok(())
    }

    /// The recording's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far (colour + depth pairs).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Writes one aligned frame: its depth and colour images, timestamps
    /// and frame numbers. A frame of another size or calibration than the
    /// recording's is refused.
    pub fn write(&mut self, frame: &RgbdFrame) -> Result<()> {
        let (w, h) = (self.spec.intrinsics.width, self.spec.intrinsics.height);
        if (frame.width, frame.height) != (w, h)
            || frame.rgb.len() != w * h * 3
            || frame.depth.len() != w * h
        {
            return Err(Error::mismatch(
                "frame to record",
                format!("{w}x{h}"),
                format!(
                    "{}x{} ({} colour bytes, {} depth values)",
                    frame.width,
                    frame.height,
                    frame.rgb.len(),
                    frame.depth.len()
                ),
            ));
        }
        if frame.intrinsics.as_ref() != Some(&self.spec.intrinsics) {
            return Err(Error::mismatch(
                "frame to record",
                "the recording's intrinsics",
                format!("{:?}", frame.intrinsics),
            ));
        }
        if frame.depth_scale_m != self.spec.depth_scale_m {
            return Err(Error::mismatch(
                "frame to record",
                format!("depth scale {} m", self.spec.depth_scale_m),
                frame.depth_scale_m,
            ));
        }
        let number = |n: u64| {
            c_int::try_from(n)
                .map_err(|_| Error::config("frame number", format!("{n} is beyond 2^31")))
        };
        let (depth_number, color_number) = (
            number(frame.depth_frame_number)?,
            number(frame.color_frame_number)?,
        );
        self.domain = domain_from_name(&frame.timestamp_domain);
        self.depth_bytes.clear();
        self.depth_bytes
            .extend(frame.depth.iter().flat_map(|d| d.to_ne_bytes()));
        let depth_bytes = std::mem::take(&mut self.depth_bytes);
        let written = self.inject(
            &self.depth,
            &depth_bytes,
            2,
            w,
            frame.depth_timestamp_ms,
            depth_number,
        );
        self.depth_bytes = depth_bytes;
        written?;
        self.inject(
            &self.color,
            &frame.rgb,
            3,
            w,
            frame.color_timestamp_ms,
            color_number,
        )?;
        self.frames += 1;
        Ok(())
    }

    /// Hands one image to a software sensor (the SDK owns the copy).
    fn inject(
        &self,
        to: &SoftwareSensor,
        bytes: &[u8],
        bpp: usize,
        width: usize,
        timestamp_ms: f64,
        frame_number: c_int,
    ) -> Result<()> {
        let pixels = alloc_pixels(bytes)?;
        let frame = SoftwareVideoFrame {
            pixels,
            deleter: Some(free_pixels),
            stride: (bpp * width) as c_int,
            bpp: bpp as c_int,
            timestamp: timestamp_ms,
            domain: self.domain,
            frame_number,
            profile: to.profile,
            depth_units: self.spec.depth_scale_m,
        };
        // SAFETY: live sensor and profile; the SDK takes the pixels and
        // frees them with the deleter once the frame is released.
        call("rs2_software_sensor_on_video_frame", |e| unsafe {
            rs2_software_sensor_on_video_frame(to.sensor.ptr(), frame, e)
        })
    }

    /// Stops recording and closes the file; returns the frames written.
    pub fn finish(mut self) -> Result<u64> {
        self.stop()?;
        Ok(self.frames)
    }

    /// Stops and closes the recorder's sensors, then the recorder, which
    /// writes the file's end.
    fn stop(&mut self) -> Result<()> {
        let mut first_err = None;
        for s in self.recording.drain(..) {
            // SAFETY: live, started sensor.
            let stopped = call("rs2_stop", |e| unsafe { sys::rs2_stop(s.sensor.ptr(), e) })
                .and_then(|()| {
                    call("rs2_close", |e| unsafe {
                        sys::rs2_close(s.sensor.ptr(), e)
                    })
                });
            if let Err(err) = stopped {
                first_err.get_or_insert(err);
            }
        }
        self.recorder = None;
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for RgbdWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Adds a sensor with one video stream to the software device.
///
/// # Safety
/// `device` must be a live software device.
unsafe fn add_sensor(
    device: &Device,
    name: &std::ffi::CStr,
    stream: VideoStream,
) -> Result<SoftwareSensor> {
    let s = call("rs2_software_device_add_sensor", |e| {
        rs2_software_device_add_sensor(device.ptr(), name.as_ptr(), e)
    })?;
    let sensor = Sensor(non_null("rs2_software_device_add_sensor", s)?);
    let p = call("rs2_software_sensor_add_video_stream_ex", |e| {
        rs2_software_sensor_add_video_stream_ex(sensor.ptr(), stream, 1, e)
    })?;
    let profile = non_null("rs2_software_sensor_add_video_stream_ex", p)?.as_ptr() as *const _;
    Ok(SoftwareSensor { sensor, profile })
}

/// The SDK's timestamp domain for its name (what [`RgbdFrame`] keeps);
/// unknown names are the camera's hardware clock.
fn domain_from_name(name: &str) -> sys::rs2_timestamp_domain {
    [
        sys::rs2_timestamp_domain_RS2_TIMESTAMP_DOMAIN_HARDWARE_CLOCK,
        sys::rs2_timestamp_domain_RS2_TIMESTAMP_DOMAIN_SYSTEM_TIME,
        sys::rs2_timestamp_domain_RS2_TIMESTAMP_DOMAIN_GLOBAL_TIME,
    ]
    .into_iter()
    .find(|&d| {
        // SAFETY: pure function of an enum value.
        super::ffi::sdk_string(unsafe { sys::rs2_timestamp_domain_to_string(d) }) == name
    })
    .unwrap_or(sys::rs2_timestamp_domain_RS2_TIMESTAMP_DOMAIN_HARDWARE_CLOCK)
}
