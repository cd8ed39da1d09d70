//! A recording read sensor by sensor, every frame, in file order.
//!
//! The SDK's pipeline starts a file in real-time mode, and only once it runs
//! can its device be switched to non-real-time; frames read in between may
//! be dropped when the CPU is busy (a one-colour-frame recording then gives
//! no frame at all). [`Playback`] does what the pipeline does, in an order
//! that cannot race:
//!
//! 1. the file becomes a playback device of skelact's own context, with
//!    real-time mode off and **paused**;
//! 2. the wanted profiles of every sensor are opened and each sensor starts
//!    with a callback that sends its frames into one bounded channel; the
//!    send blocks while the reader is behind, which is what holds the
//!    file's reader back (non-real-time), so no frame is lost;
//! 3. once every sensor runs, the playback resumes: the file is read from
//!    its start with all streams listening (frames the reader handed out
//!    before the pause took hold are kept in order, see `Playback::start`).
//!
//! The reading thread takes frames from the channel in file order and
//! either hands them out as they are ([`Playback::next_raw`], for counting
//! a file's frames) or pairs each colour frame with the depth frame nearest
//! in time ([`super::pair`]) and hands the pair out as one SDK frameset
//! ([`Playback::wait`]), built by a small processing block of skelact's
//! own so that the SDK's align block can take it. A file that loops
//! restarts its sensors, and its pairing, at each end.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use realsense_sys as sys;

use super::ffi::{
    c_path, call, non_null, Context, Device, FrameQueue, FrameRef, ProcessingBlock, Sensor,
    StreamProfileList,
};
use super::pair::{Pairer, Share};
use super::session::Wait;
use super::stream::{profile_data, ProfileData, StreamInfo};
use crate::{Error, Result};

/// How long frames may still arrive after the playback reports `STOPPED`
/// (frames in the SDK's per-stream dispatchers reach the callback late when
/// the CPU is busy).
pub(crate) const END_GRACE: Duration = Duration::from_millis(1000);

/// How often a wait for frames looks at the playback status.
const STATUS_POLL: Duration = Duration::from_millis(10);

/// Frames in flight between the SDK's dispatch threads and the reader.
const CHANNEL_FRAMES: usize = 4;

/// Which profiles of a recording to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Streams {
    /// Depth (z16) and colour: what capture pairs and aligns.
    DepthAndColor,
    /// Every recorded profile (a summary of the file).
    All,
}

/// An open sensor, the profile list its opened profiles belong to, and
/// those profiles.
struct OpenSensor {
    sensor: Sensor,
    _profiles: StreamProfileList,
    /// Pointers into `_profiles`.
    chosen: Vec<*const sys::rs2_stream_profile>,
}

impl OpenSensor {
    /// Opens the chosen profiles.
    fn open(&self) -> Result<()> {
        let mut chosen = self.chosen.clone();
        // SAFETY: live sensor; the profiles belong to `_profiles`.
        call("rs2_open_multiple", |e| unsafe {
            sys::rs2_open_multiple(
                self.sensor.ptr(),
                chosen.as_mut_ptr(),
                chosen.len() as i32,
                e,
            )
        })
    }

    /// Closes the sensor (stopped before); an error is ignored.
    fn close(&self) {
        // SAFETY: live sensor.
        let _ = call("rs2_close", |e| unsafe {
            sys::rs2_close(self.sensor.ptr(), e)
        });
    }
}

/// A sensor handle lent to the thread that closes it.
struct SensorPtr(*mut sys::rs2_sensor);

// SAFETY: librealsense sensors may be used from any thread; the owner joins
// the borrowing thread before it uses or frees the sensor again.
unsafe impl Send for SensorPtr {}

/// The playback device lent to the thread that resumes it.
struct DevicePtr(*mut sys::rs2_device);

// SAFETY: as for `SensorPtr`: the owner joins the thread before it uses or
// frees the device again.
unsafe impl Send for DevicePtr {}

/// A running playback (see the module docs).
pub(crate) struct Playback {
    /// `None` once dropping: blocked senders then give up.
    frames: Option<Receiver<FrameRef>>,
    /// Frames taken off the channel while the playback resumed (see
    /// `start`), handed out before the channel's.
    early: VecDeque<FrameRef>,
    /// Owned by this value; handed to the SDK as the callbacks' `user`
    /// pointer, freed in `Drop` after every sensor stopped.
    sender: NonNull<Sender<FrameRef>>,
    sensors: Vec<OpenSensor>,
    /// Pairing of colour and depth into framesets (`None` for raw reading).
    pairing: Option<Pairing>,
    pub(crate) device: Device,
    _context: Context,
    pub(crate) streams: Vec<StreamInfo>,
    /// Stream ids (`unique_id`) in `streams` order.
    uids: Vec<i32>,
    path: PathBuf,
    repeat: bool,
    stopped_at: Option<Instant>,
    /// Closes the sensors once the file has stopped (see `ended`).
    closer: Option<std::thread::JoinHandle<()>>,
    /// Frames received in this pass over the file.
    pass_frames: u64,
    /// Frames of one whole pass, known after the first (a looped file).
    frames_per_pass: Option<u64>,
}

// SAFETY: the sender pointer is owned by this value (a Box) and only
// dereferenced by the SDK's callbacks, which end before it is freed; every
// other field is Send.
unsafe impl Send for Playback {}

/// The sensors' frame callback: moves the frame into the channel, waiting
/// while the channel is full; once the reader is gone the send fails and
/// the frame is released here.
unsafe extern "C" fn on_frame(frame: *mut sys::rs2_frame, user: *mut c_void) {
    let Some(frame) = NonNull::new(frame) else {
        return;
    };
    let frame = FrameRef(frame);
    // SAFETY: `user` is the Playback's boxed sender, alive until every
    // sensor has stopped (see `Drop for Playback`).
    let tx = unsafe { &*(user as *const Sender<FrameRef>) };
    let _ = tx.send(frame);
}

impl Playback {
    /// Opens `path` and starts reading it (`repeat`: over and over);
    /// [`Streams::DepthAndColor`] pairs its frames into framesets for
    /// [`Playback::wait`].
    pub(crate) fn open(path: &Path, streams: Streams, repeat: bool) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such recording"),
            ));
        }
        let context = Context::new()?;
        let c = c_path(path)?;
        // SAFETY: live context; the device is owned by the returned handle.
        let device = unsafe {
            let d = call("rs2_context_add_device", |e| {
                sys::rs2_context_add_device(context.ptr(), c.as_ptr(), e)
            })?;
            Device(non_null("rs2_context_add_device", d)?)
        };
        let (tx, rx) = bounded(CHANNEL_FRAMES);
        let mut playback = Self {
            frames: Some(rx),
            early: VecDeque::new(),
            sender: NonNull::from(Box::leak(Box::new(tx))),
            sensors: Vec::new(),
            pairing: None,
            device,
            _context: context,
            streams: Vec::new(),
            uids: Vec::new(),
            path: path.to_path_buf(),
            repeat,
            stopped_at: None,
            closer: None,
            pass_frames: 0,
            frames_per_pass: None,
        };
        // SAFETY: live playback device.
        unsafe {
            call("rs2_playback_device_set_real_time", |e| {
                sys::rs2_playback_device_set_real_time(playback.device.ptr(), 0, e)
            })?;
        }
        playback.open_sensors(streams)?;
        if streams == Streams::DepthAndColor {
            playback.pairing = Some(Pairing::new(&playback.streams)?);
        }
        playback.start()?;
        Ok(playback)
    }

    /// Opens the wanted profiles of every sensor (not started yet).
    fn open_sensors(&mut self, want: Streams) -> Result<()> {
        // SAFETY: every handle is owned by a value that frees it once;
        // profile pointers belong to their list, kept with the sensor.
        unsafe {
            let (mut depth, mut color) = (false, false);
            for sensor in self.device.sensors()? {
                let profiles = sensor.stream_profiles()?;
                let mut chosen = Vec::new();
                for p in profiles.profiles()? {
                    let ProfileData { stream, format, .. } = profile_data(p)?;
                    let take = match want {
                        Streams::All => true,
                        Streams::DepthAndColor => {
                            if stream == sys::rs2_stream_RS2_STREAM_DEPTH
                                && format == sys::rs2_format_RS2_FORMAT_Z16
                                && !depth
                            {
                                depth = true;
                                true
                            } else if stream == sys::rs2_stream_RS2_STREAM_COLOR && !color {
                                color = true;
                                true
                            } else {
                                false
                            }
                        }
                    };
                    if take {
                        let info = StreamInfo::from_profile(p)?;
                        self.uids.push(info.unique_id);
                        self.streams.push(info);
                        chosen.push(p);
                    }
                }
                if chosen.is_empty() {
                    continue;
                }
                let open = OpenSensor {
                    sensor,
                    _profiles: profiles,
                    chosen,
                };
                open.open()?;
                self.sensors.push(open);
            }
            if want == Streams::DepthAndColor && !(depth && color) {
                return Err(Error::mismatch(
                    format!("recording {}", self.path.display()),
                    "a depth (Z16) and a colour stream",
                    self.streams
                        .iter()
                        .map(|s| format!("{} {}", s.kind, s.format))
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
        }
        Ok(())
    }

    /// Starts every open sensor while the playback is paused, then resumes
    /// it: the file is read from its start with every stream listening.
    ///
    /// The file's reader may have handed frames to the sensors' dispatch
    /// queues before the pause took hold (librealsense 2.59's `.db3` reader
    /// does), and `resume` waits for those queues to drain (`flush`, up to
    /// 10 s). Their callbacks block on the bounded channel while this thread
    /// is inside `resume`, so it runs on a helper thread while this one
    /// takes the early frames off the channel into `early`.
    fn start(&mut self) -> Result<()> {
        let user = self.sender.as_ptr() as *mut c_void;
        // SAFETY: live device and sensors; `user` outlives the callbacks
        // (freed in Drop after the sensors stop).
        unsafe {
            call("rs2_playback_device_pause", |e| {
                sys::rs2_playback_device_pause(self.device.ptr(), e)
            })?;
            for s in &self.sensors {
                call("rs2_start", |e| {
                    sys::rs2_start(s.sensor.ptr(), Some(on_frame), user, e)
                })?;
            }
        }
        let device = DevicePtr(self.device.ptr());
        let resume = std::thread::spawn(move || {
            let device = device;
            // SAFETY: the device outlives this thread, joined below.
            call("rs2_playback_device_resume", |e| unsafe {
                sys::rs2_playback_device_resume(device.0, e)
            })
        });
        while !resume.is_finished() {
            if let Some(rx) = &self.frames {
                if let Ok(f) = rx.recv_timeout(Duration::from_millis(1)) {
                    self.early.push_back(f);
                }
            }
        }
        resume.join().map_err(|_| Error::RealSense {
            function: "rs2_playback_device_resume".to_string(),
            message: "the resuming thread panicked".to_string(),
        })??;
        self.stopped_at = None;
        self.pass_frames = 0;
        Ok(())
    }

    /// Stops every sensor (a sensor the file's end already stopped gives an
    /// error, which is ignored).
    fn stop_sensors(&self) {
        for s in &self.sensors {
            // SAFETY: live sensor.
            let _ = call("rs2_stop", |e| unsafe { sys::rs2_stop(s.sensor.ptr(), e) });
        }
    }

    /// The index in `streams` of a frame's stream, `None` for a stream not
    /// played.
    pub(crate) fn stream_of(&self, frame: &FrameRef) -> Result<Option<usize>> {
        // SAFETY: live frame.
        let (_, ProfileData { uid, .. }) = unsafe { super::stream::frame_profile(frame.ptr())? };
        Ok(self.uids.iter().position(|&u| u == uid))
    }

    /// The next frame as read from the file: `Ok(None)` at its end, an
    /// error when it has not ended by `deadline`.
    pub(crate) fn next_raw(&mut self, deadline: Instant) -> Result<Option<FrameRef>> {
        loop {
            match self.recv(STATUS_POLL)? {
                Some(f) => return Ok(Some(f)),
                None if self.ended()? => return Ok(None),
                None if Instant::now() > deadline => {
                    return Err(Error::RealSense {
                        function: "playback".to_string(),
                        message: format!("{} did not finish playing", self.path.display()),
                    })
                }
                None => {}
            }
        }
    }

    /// Waits up to `timeout_ms` for the next paired frameset.
    pub(crate) fn wait(&mut self, timeout_ms: u32) -> Result<Wait> {
        let until = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        loop {
            if let Some(fs) = pairing_of(&mut self.pairing)?.next_frameset()? {
                return Ok(Wait::Frames(fs));
            }
            // A looped file's pass is over once it gave what the first gave.
            let end = if self.pass_complete() {
                true
            } else {
                // Short slices: the end shows as a status, not as a frame.
                let left = until.saturating_duration_since(Instant::now());
                match self.recv(left.min(STATUS_POLL))? {
                    Some(frame) => {
                        pairing_of(&mut self.pairing)?.push(frame)?;
                        continue;
                    }
                    None if self.ended()? => true,
                    None if Instant::now() >= until => return Ok(Wait::Pending),
                    None => false,
                }
            };
            if end {
                let pairing = pairing_of(&mut self.pairing)?;
                pairing.pairer.finish()?;
                if let Some(fs) = pairing.next_frameset()? {
                    return Ok(Wait::Frames(fs));
                }
                if !self.repeat {
                    return Ok(Wait::End);
                }
                self.restart()?;
            }
        }
    }

    /// Colour frames that found no depth frame near them.
    pub(crate) fn unpaired(&self) -> u64 {
        self.pairing.as_ref().map_or(0, |p| p.pairer.unpaired())
    }

    /// One frame from the channel within `timeout`.
    fn recv(&mut self, timeout: Duration) -> Result<Option<FrameRef>> {
        let Some(rx) = &self.frames else {
            return Ok(None);
        };
        let next = match self.early.pop_front() {
            Some(f) => Ok(f),
            None => rx.recv_timeout(timeout),
        };
        match next {
            Ok(f) => {
                self.pass_frames += 1;
                if self.stopped_at.is_some() {
                    self.stopped_at = Some(Instant::now());
                }
                Ok(Some(f))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            // The sender lives as long as self: cannot happen.
            Err(RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    /// Whether the file has ended. The playback reports `STOPPED` once its
    /// reader has handed every frame to the sensors' dispatch queues; a
    /// helper thread then closes the sensors, which returns once those
    /// queues have run every callback, so when it is done and the channel
    /// is empty, every frame has been received. [`END_GRACE`] without a
    /// frame ends it too, should closing take longer. From the second pass
    /// over a looped file on, the pass ends as soon as it has given as many
    /// frames as the first.
    fn ended(&mut self) -> Result<bool> {
        if self.pass_complete() {
            return Ok(true);
        }
        if let Some(since) = self.stopped_at {
            let drained = self.closer.as_ref().is_some_and(|c| c.is_finished())
                && self.early.is_empty()
                && self.frames.as_ref().is_none_or(|rx| rx.is_empty());
            return Ok(drained || since.elapsed() >= END_GRACE);
        }
        // SAFETY: live playback device.
        let status = call("rs2_playback_device_get_current_status", |e| unsafe {
            sys::rs2_playback_device_get_current_status(self.device.ptr(), e)
        })?;
        if status == sys::rs2_playback_status_RS2_PLAYBACK_STATUS_STOPPED {
            self.stopped_at = Some(Instant::now());
            let sensors: Vec<SensorPtr> = self
                .sensors
                .iter()
                .map(|s| SensorPtr(s.sensor.ptr()))
                .collect();
            self.closer = Some(std::thread::spawn(move || {
                for s in sensors {
                    // SAFETY: the sensor outlives this thread, which is
                    // joined before the sensors are touched again or
                    // dropped (`join_closer`).
                    let _ = call("rs2_close", |e| unsafe { sys::rs2_close(s.0, e) });
                }
            }));
        }
        Ok(false)
    }

    /// Whether a later pass over a looped file has given as many frames as
    /// the first.
    fn pass_complete(&self) -> bool {
        self.frames_per_pass == Some(self.pass_frames)
    }

    /// Waits for the thread closing the sensors at the end of a file,
    /// taking frames off the channel meanwhile so that no callback waits on
    /// it (frames that come this late, after the end was declared, are
    /// dropped, as they would be without the thread).
    fn join_closer(&mut self) {
        while let Some(c) = &self.closer {
            if c.is_finished() {
                if let Some(c) = self.closer.take() {
                    let _ = c.join();
                }
                return;
            }
            match &self.frames {
                Some(rx) => drop(rx.recv_timeout(STATUS_POLL)),
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Plays the file again from its start, pairing afresh (timestamps
    /// start over). The file's reader forgets its streams at the end, so
    /// the sensors are closed and opened again.
    fn restart(&mut self) -> Result<()> {
        if self.frames_per_pass.is_none() {
            self.frames_per_pass = Some(self.pass_frames);
        }
        self.join_closer();
        self.stop_sensors();
        for s in &self.sensors {
            s.close();
            s.open()?;
        }
        if let Some(p) = self.pairing.as_mut() {
            p.pairer.restart();
        }
        self.start()
    }
}

impl Share for FrameRef {
    fn share(&self) -> Result<Self> {
        // SAFETY: live frame; the new reference is owned by the result.
        call("rs2_frame_add_ref", |e| unsafe {
            sys::rs2_frame_add_ref(self.ptr(), e)
        })?;
        Ok(FrameRef(self.0))
    }
}

/// The pairing of a playback opened for framesets.
fn pairing_of(p: &mut Option<Pairing>) -> Result<&mut Pairing> {
    p.as_mut().ok_or_else(|| Error::RealSense {
        function: "playback".to_string(),
        message: "opened without pairing".to_string(),
    })
}

/// Colour and depth of a recording paired into SDK framesets.
struct Pairing {
    depth_uid: i32,
    color_uid: i32,
    pairer: Pairer<FrameRef>,
    /// Builds the frameset of a pair (see [`compose`]).
    block: ProcessingBlock,
    queue: FrameQueue,
    /// The depth frame [`compose`] puts beside the colour frame it gets.
    slot: Box<Mutex<Option<FrameRef>>>,
}

impl Pairing {
    fn new(streams: &[StreamInfo]) -> Result<Self> {
        let find = |kind: u32| {
            streams
                .iter()
                .find(|s| s.kind_id == kind)
                .ok_or_else(|| Error::mismatch("recording", "a depth and a colour stream", "one"))
        };
        let depth = find(sys::rs2_stream_RS2_STREAM_DEPTH)?;
        let color = find(sys::rs2_stream_RS2_STREAM_COLOR)?;
        // One colour frame period: a pair further apart is not made.
        let gap_ms = 1000.0 / f64::from(color.fps.max(1));
        let slot: Box<Mutex<Option<FrameRef>>> = Box::new(Mutex::new(None));
        let ctx = &*slot as *const Mutex<Option<FrameRef>> as *mut c_void;
        // SAFETY: constructor; `ctx` points into `slot`, a Box owned by
        // the Pairing beside the block and dropped after it (field order).
        let b = call("rs2_create_processing_block_fptr", |e| unsafe {
            sys::rs2_create_processing_block_fptr(Some(compose), ctx, e)
        })?;
        let block = ProcessingBlock(non_null("rs2_create_processing_block_fptr", b)?);
        let queue = block.output_queue(4)?;
        Ok(Self {
            depth_uid: depth.unique_id,
            color_uid: color.unique_id,
            pairer: Pairer::new(gap_ms),
            block,
            queue,
            slot,
        })
    }

    /// A frame read from the file.
    fn push(&mut self, frame: FrameRef) -> Result<()> {
        // SAFETY: live frame.
        let (_, ProfileData { uid, .. }) = unsafe { super::stream::frame_profile(frame.ptr())? };
        let t = call("rs2_get_frame_timestamp", |e| unsafe {
            sys::rs2_get_frame_timestamp(frame.ptr(), e)
        })?;
        if uid == self.depth_uid {
            self.pairer.depth(frame, t)
        } else if uid == self.color_uid {
            self.pairer.color(frame, t)
        } else {
            Ok(())
        }
    }

    /// The next pair as one frameset.
    fn next_frameset(&mut self) -> Result<Option<FrameRef>> {
        let Some((depth, color)) = self.pairer.pop() else {
            return Ok(None);
        };
        *self.slot.lock().map_err(|_| Error::RealSense {
            function: "compose".to_string(),
            message: "pairing slot poisoned".to_string(),
        })? = Some(depth);
        // The block runs `compose` on this thread before it returns.
        let fs = self.block.process(&self.queue, color, 0)?;
        fs.map(Some).ok_or_else(|| Error::RealSense {
            function: "compose".to_string(),
            message: "no frameset for a colour/depth pair".to_string(),
        })
    }
}

/// The pairing block's callback: the colour frame it gets and the depth
/// frame waiting in the slot become one composite frame (which owns both).
unsafe extern "C" fn compose(
    frame: *mut sys::rs2_frame,
    source: *mut sys::rs2_source,
    ctx: *mut c_void,
) {
    let Some(color) = NonNull::new(frame).map(FrameRef) else {
        return;
    };
    // SAFETY: `ctx` is the Pairing's slot, alive while its block is.
    let slot = unsafe { &*(ctx as *const Mutex<Option<FrameRef>>) };
    let Some(depth) = slot.lock().ok().and_then(|mut s| s.take()) else {
        return; // the colour frame is released
    };
    let mut frames = [depth.ptr(), color.ptr()];
    // SAFETY: `source` is the block's frame source for this call; on
    // success the composite owns both references.
    let composite = call("rs2_allocate_composite_frame", |e| unsafe {
        sys::rs2_allocate_composite_frame(source, frames.as_mut_ptr(), 2, e)
    });
    if let Ok(c) = composite {
        if !c.is_null() {
            std::mem::forget(depth);
            std::mem::forget(color);
            // SAFETY: hands the composite's ownership to the block's output.
            let _ = call("rs2_synthetic_frame_ready", |e| unsafe {
                sys::rs2_synthetic_frame_ready(source, c, e)
            });
        }
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        // A callback blocked on a full channel returns once the receiver
        // is gone, so stopping the sensors cannot wait on it forever.
        self.frames = None;
        self.join_closer();
        self.stop_sensors();
        for s in &self.sensors {
            s.close();
        }
        // SAFETY: allocated by Box::leak in `open`; no callback runs any
        // more (every sensor is stopped), so nothing else refers to it.
        drop(unsafe { Box::from_raw(self.sender.as_ptr()) });
    }
}
