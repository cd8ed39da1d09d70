//! PNG images as RGB8 for the pose pipeline.
//!
//! Why: `skelact pose IMAGE.png` and the landmark tests read photographs;
//! the `png` crate decodes, this file turns every PNG colour type (grey,
//! grey + alpha, palette, RGB, RGBA; 1 to 16 bits) into interleaved RGB8,
//! alpha dropped. Corrupt or truncated files are [`Error::Format`].

use std::path::Path;

use crate::{Error, Result};

/// The most pixels an image may have (a 16k x 16k frame).
pub const MAX_PIXELS: usize = 1 << 28;

/// An RGB8 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Interleaved RGB bytes, row-major, `width * height * 3`.
    pub rgb: Vec<u8>,
    /// Width, pixels.
    pub width: usize,
    /// Height, pixels.
    pub height: usize,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        format: "PNG",
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a PNG file as RGB8.
pub fn read_png(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_png(&bytes, path)
}

/// Decodes PNG bytes as RGB8; `path` only names the source in errors.
pub fn decode_png(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| bad(path, e.to_string()))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    if w == 0 || h == 0 || w.saturating_mul(h) > MAX_PIXELS {
        return Err(bad(path, format!("unsupported size {w}x{h}")));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(path, e.to_string()))?;
    let data = &buf[..frame.buffer_size()];
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(bad(path, "palette not expanded")),
    };
    let stride = frame.line_size;
    if frame.bit_depth != png::BitDepth::Eight
        || stride < w * channels
        || data.len() < stride * (h - 1) + w * channels
    {
        return Err(bad(path, "unexpected decoded layout"));
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let row = &data[y * stride..y * stride + w * channels];
        for px in row.chunks_exact(channels) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
    }
    Ok(RgbImage {
        rgb,
        width: w,
        height: h,
    })
}
