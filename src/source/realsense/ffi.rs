//! Owned handles over librealsense2's C API (through `realsense-sys`) and
//! the translation of its errors into [`crate::Error::RealSense`].
//!
//! realsense-rust 1.3 keeps the raw handles of its pipeline and devices
//! crate-private, so the capture path cannot switch a playback device's
//! real-time mode off or ask whether it has reached the end of its file.
//! This file wraps the few C objects that path needs, each freed by its
//! `Drop` exactly once. Every call goes through [`call`], which turns the
//! SDK's `rs2_error` into a typed error, so a failure never panics.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

use realsense_sys as sys;

use crate::{Error, Result};

/// Runs an SDK call with an error slot and turns a set error into
/// [`Error::RealSense`] (freeing the SDK's error object).
pub(crate) fn call<T>(what: &str, f: impl FnOnce(*mut *mut sys::rs2_error) -> T) -> Result<T> {
    let mut err: *mut sys::rs2_error = std::ptr::null_mut();
    let out = f(&mut err);
    if err.is_null() {
        return Ok(out);
    }
    // SAFETY: `err` is a live rs2_error the SDK just created; its strings
    // are valid until rs2_free_error, which is called once, last.
    let (function, message) = unsafe {
        let text = |p: *const std::os::raw::c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let function = text(sys::rs2_get_failed_function(err));
        let message = text(sys::rs2_get_error_message(err));
        sys::rs2_free_error(err);
        (function, message)
    };
    Err(Error::RealSense {
        function: if function.is_empty() {
            what.to_string()
        } else {
            function
        },
        message,
    })
}

/// A pointer the SDK returned, refusing null (which the SDK documents as
/// impossible without an error, but is not worth a panic).
pub(crate) fn non_null<T>(what: &str, p: *mut T) -> Result<NonNull<T>> {
    NonNull::new(p).ok_or_else(|| Error::RealSense {
        function: what.to_string(),
        message: "returned a null handle".to_string(),
    })
}

/// A C string for a path.
pub(crate) fn c_path(path: &Path) -> Result<CString> {
    let s = path
        .to_str()
        .ok_or_else(|| Error::config("path", format!("{} is not valid UTF-8", path.display())))?;
    CString::new(s).map_err(|_| Error::config("path", format!("{s:?} contains a NUL byte")))
}

/// A C string the SDK owns, copied (empty for null).
pub(crate) fn sdk_string(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: the SDK returns NUL-terminated strings that live at least
        // as long as the object they describe; we copy at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $raw:ty, $free:expr) => {
        $(#[$doc])*
        pub(crate) struct $name(pub(crate) NonNull<$raw>);

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: the handle was returned by the SDK, is owned by
                // this value alone and is freed here once.
                unsafe { ($free)(self.0.as_ptr()) }
            }
        }

        // SAFETY: librealsense objects may be used from any thread (the SDK
        // locks internally); each handle has one owner that moves with it.
        unsafe impl Send for $name {}

        impl $name {
            pub(crate) fn ptr(&self) -> *mut $raw {
                self.0.as_ptr()
            }
        }
    };
}

handle!(
    /// `rs2_context`.
    Context, sys::rs2_context, sys::rs2_delete_context
);
handle!(
    /// `rs2_device_list`.
    DeviceList, sys::rs2_device_list, sys::rs2_delete_device_list
);
handle!(
    /// `rs2_config`.
    Config, sys::rs2_config, sys::rs2_delete_config
);
handle!(
    /// `rs2_pipeline` (stopped by its owner before it is dropped).
    Pipeline, sys::rs2_pipeline, sys::rs2_delete_pipeline
);
handle!(
    /// `rs2_pipeline_profile`.
    PipelineProfile, sys::rs2_pipeline_profile, sys::rs2_delete_pipeline_profile
);
handle!(
    /// `rs2_device`.
    Device, sys::rs2_device, sys::rs2_delete_device
);
handle!(
    /// `rs2_sensor_list`.
    SensorList, sys::rs2_sensor_list, sys::rs2_delete_sensor_list
);
handle!(
    /// `rs2_sensor`.
    Sensor, sys::rs2_sensor, sys::rs2_delete_sensor
);
handle!(
    /// `rs2_stream_profile_list` (its profiles belong to it).
    StreamProfileList, sys::rs2_stream_profile_list, sys::rs2_delete_stream_profiles_list
);
handle!(
    /// `rs2_frame`, one reference.
    FrameRef, sys::rs2_frame, sys::rs2_release_frame
);
handle!(
    /// `rs2_processing_block`.
    ProcessingBlock, sys::rs2_processing_block, sys::rs2_delete_processing_block
);
handle!(
    /// `rs2_frame_queue`.
    FrameQueue, sys::rs2_frame_queue, sys::rs2_delete_frame_queue
);

impl Context {
    /// A new SDK context.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: plain constructor; the error slot is checked by `call`.
        let p = call("rs2_create_context", |e| unsafe {
            sys::rs2_create_context(sys::RS2_API_VERSION as i32, e)
        })?;
        Ok(Self(non_null("rs2_create_context", p)?))
    }
}

impl Context {
    /// How many cameras the context sees.
    pub(crate) fn device_count(&self) -> Result<i32> {
        // SAFETY: live context; the list is owned by the handle.
        let list = call("rs2_query_devices", |e| unsafe {
            sys::rs2_query_devices(self.ptr(), e)
        })?;
        let list = DeviceList(non_null("rs2_query_devices", list)?);
        call("rs2_get_device_count", |e| unsafe {
            sys::rs2_get_device_count(list.ptr(), e)
        })
    }
}

impl StreamProfileList {
    /// The list's profiles (pointers owned by the list).
    pub(crate) fn profiles(&self) -> Result<Vec<*const sys::rs2_stream_profile>> {
        // SAFETY: live list; the profiles it returns belong to it.
        let n = call("rs2_get_stream_profiles_count", |e| unsafe {
            sys::rs2_get_stream_profiles_count(self.ptr(), e)
        })?;
        (0..n)
            .map(|i| {
                call("rs2_get_stream_profile", |e| unsafe {
                    sys::rs2_get_stream_profile(self.ptr(), i, e)
                })
            })
            .collect()
    }
}

impl ProcessingBlock {
    /// Sends the block's output to a new queue of `capacity` frames.
    pub(crate) fn output_queue(&self, capacity: i32) -> Result<FrameQueue> {
        // SAFETY: constructor, then a live block and queue.
        let q = call("rs2_create_frame_queue", |e| unsafe {
            sys::rs2_create_frame_queue(capacity, e)
        })?;
        let queue = FrameQueue(non_null("rs2_create_frame_queue", q)?);
        call("rs2_start_processing_queue", |e| unsafe {
            sys::rs2_start_processing_queue(self.ptr(), queue.ptr(), e)
        })?;
        Ok(queue)
    }

    /// Hands `frame` to the block (which takes it) and waits up to
    /// `wait_ms` for an output frame on `queue`.
    pub(crate) fn process(
        &self,
        queue: &FrameQueue,
        frame: FrameRef,
        wait_ms: u32,
    ) -> Result<Option<FrameRef>> {
        let raw = frame.ptr();
        std::mem::forget(frame); // the block takes ownership
                                 // SAFETY: `raw` is an owned frame reference handed to the block;
                                 // an output frame is owned by the returned FrameRef.
        call("rs2_process_frame", |e| unsafe {
            sys::rs2_process_frame(self.ptr(), raw, e)
        })?;
        let mut out: *mut sys::rs2_frame = std::ptr::null_mut();
        let got = call("rs2_try_wait_for_frame", |e| unsafe {
            sys::rs2_try_wait_for_frame(queue.ptr(), wait_ms, &mut out, e)
        })?;
        if got == 0 {
            return Ok(None);
        }
        Ok(Some(FrameRef(non_null("rs2_try_wait_for_frame", out)?)))
    }
}

impl Device {
    /// A camera-info string (`RS2_CAMERA_INFO_*`), `None` when the device
    /// does not report it.
    pub(crate) fn info(&self, info: sys::rs2_camera_info) -> Option<String> {
        // SAFETY: the device handle is live; both calls only read.
        let supported = call("rs2_supports_device_info", |e| unsafe {
            sys::rs2_supports_device_info(self.ptr(), info, e)
        })
        .ok()?;
        if supported == 0 {
            return None;
        }
        let p = call("rs2_get_device_info", |e| unsafe {
            sys::rs2_get_device_info(self.ptr(), info, e)
        })
        .ok()?;
        Some(sdk_string(p))
    }

    /// The device's sensors, each an owned handle.
    pub(crate) fn sensors(&self) -> Result<Vec<Sensor>> {
        // SAFETY: live device; the list and each sensor are owned handles
        // freed on drop (a sensor keeps its device alive).
        let list = call("rs2_query_sensors", |e| unsafe {
            sys::rs2_query_sensors(self.ptr(), e)
        })?;
        let list = SensorList(non_null("rs2_query_sensors", list)?);
        let n = call("rs2_get_sensors_count", |e| unsafe {
            sys::rs2_get_sensors_count(list.ptr(), e)
        })?;
        (0..n)
            .map(|i| {
                let s = call("rs2_create_sensor", |e| unsafe {
                    sys::rs2_create_sensor(list.ptr(), i, e)
                })?;
                Ok(Sensor(non_null("rs2_create_sensor", s)?))
            })
            .collect()
    }

    /// The depth scale (metres per z16 unit) of the device's first depth
    /// sensor, `None` when it has none.
    pub(crate) fn depth_scale_m(&self) -> Result<Option<f32>> {
        for s in self.sensors()? {
            // SAFETY: live sensor.
            let depth = call("rs2_is_sensor_extendable_to", |e| unsafe {
                sys::rs2_is_sensor_extendable_to(
                    s.ptr(),
                    sys::rs2_extension_RS2_EXTENSION_DEPTH_SENSOR,
                    e,
                )
            })?;
            if depth != 0 {
                let scale = call("rs2_get_depth_scale", |e| unsafe {
                    sys::rs2_get_depth_scale(s.ptr(), e)
                })?;
                return Ok(Some(scale));
            }
        }
        Ok(None)
    }
}

impl Sensor {
    /// The sensor's stream profiles (the list owns them).
    pub(crate) fn stream_profiles(&self) -> Result<StreamProfileList> {
        // SAFETY: live sensor; the list is an owned handle.
        let pl = call("rs2_get_stream_profiles", |e| unsafe {
            sys::rs2_get_stream_profiles(self.ptr(), e)
        })?;
        Ok(StreamProfileList(non_null("rs2_get_stream_profiles", pl)?))
    }
}

/// The SDK's name of a stream type (`Depth`, `Color`, ...).
pub(crate) fn stream_name(stream: sys::rs2_stream) -> String {
    // SAFETY: pure function of an enum value.
    sdk_string(unsafe { sys::rs2_stream_to_string(stream) })
}

/// The SDK's name of a pixel format (`Z16`, `RGB8`, ...).
pub(crate) fn format_name(format: sys::rs2_format) -> String {
    // SAFETY: pure function of an enum value.
    sdk_string(unsafe { sys::rs2_format_to_string(format) })
}
