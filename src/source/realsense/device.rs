//! Connected RealSense cameras, listed through realsense-rust.

use std::collections::HashSet;

use realsense_rust::context::Context;
use realsense_rust::kind::Rs2CameraInfo;

use crate::{Error, Result};

/// One connected camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Product name (`Intel RealSense D435`).
    pub name: String,
    /// Serial number (what `--source realsense:SERIAL` style selection and
    /// [`super::Input::Camera`] take).
    pub serial: String,
    /// Firmware version.
    pub firmware: String,
    /// USB type the camera is connected with (`3.2`), when reported.
    pub usb: Option<String>,
}

/// The cameras connected now (empty when there are none).
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    let context = Context::new().map_err(|e| Error::RealSense {
        function: "rs2_create_context".to_string(),
        message: e.to_string(),
    })?;
    let text = |d: &realsense_rust::device::Device, what| {
        d.info(what).map(|s| s.to_string_lossy().into_owned())
    };
    Ok(context
        .query_devices(HashSet::new())
        .iter()
        .map(|d| DeviceInfo {
            name: text(d, Rs2CameraInfo::Name).unwrap_or_default(),
            serial: text(d, Rs2CameraInfo::SerialNumber).unwrap_or_default(),
            firmware: text(d, Rs2CameraInfo::FirmwareVersion).unwrap_or_default(),
            usb: text(d, Rs2CameraInfo::UsbTypeDescriptor),
        })
        .collect())
}
