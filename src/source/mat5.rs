//! A small, strict reader for MATLAB v5 MAT-files (the format of `save` up
//! to `-v7`), enough for the numeric arrays that data sets such as UTD-MHAD
//! ship.
//!
//! It follows MathWorks' "MAT-File Format" (version 5) document: a 128-byte
//! header (text, subsystem offset, version `0x0100`, endian indicator `IM`
//! or `MI`), then tagged data elements. Supported: `miMATRIX` elements of
//! the numeric classes (double, single, int8..uint64, logical as uint8), in
//! either byte order, stored plainly or inside `miCOMPRESSED` (zlib)
//! elements; the small-data-element tag form; real parts stored in a
//! narrower type than the array's class (MATLAB writes a double array of
//! small integers as `miUINT16` or `miUINT8`, as UTD-MHAD's depth files do).
//! Cell, struct, object, char, sparse and complex arrays are listed by name
//! in [`MatFile::skipped`] but not decoded. MAT v4 and v7.3 (HDF5) files are
//! refused with a clear error.
//!
//! Data are in MATLAB's column-major order: element `(i, j, k)` of an array
//! with dims `(d0, d1, d2)` is at `i + d0 * (j + d1 * k)`.
//!
//! Why not the `matfile` crate (0.5): it panics on some corrupt inputs (an
//! `i32` product of dimensions that can overflow, an `unwrap` on the array
//! class), prints to stderr from library code, and inflates compressed
//! elements without a size limit. Here every length read from the file is
//! checked against the bytes that are there, and decompression stops at
//! [`MAX_ELEMENT_BYTES`] (or the limit given to [`MatFile::parse_with_limit`]).

use std::io::Read;
use std::path::Path;

use super::malformed;
use crate::Result;

/// The format name in errors.
pub const FORMAT: &str = "MATLAB v5";

/// The largest decompressed element accepted by [`MatFile::parse`]
/// (256 MiB). A 240x320 uint16 depth video of 1,000 frames is 154 MB.
pub const MAX_ELEMENT_BYTES: usize = 256 << 20;

const HEADER_BYTES: usize = 128;

// Data types (MAT-File Format, table 1-1).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;

/// The MATLAB class of a numeric array (the `mxCLASS` in its array flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `double` (mxDOUBLE_CLASS, 6).
    Double,
    /// `single` (mxSINGLE_CLASS, 7).
    Single,
    /// `int8` (8).
    Int8,
    /// `uint8` (9), also `logical` arrays.
    UInt8,
    /// `int16` (10).
    Int16,
    /// `uint16` (11).
    UInt16,
    /// `int32` (12).
    Int32,
    /// `uint32` (13).
    UInt32,
    /// `int64` (14).
    Int64,
    /// `uint64` (15).
    UInt64,
}

impl Class {
    fn from_code(code: u32) -> Option<Class> {
        Some(match code {
            6 => Class::Double,
            7 => Class::Single,
            8 => Class::Int8,
            9 => Class::UInt8,
            10 => Class::Int16,
            11 => Class::UInt16,
            12 => Class::Int32,
            13 => Class::UInt32,
            14 => Class::Int64,
            15 => Class::UInt64,
            _ => return None,
        })
    }
}

/// The values of an array as they were stored in the file (which may be a
/// narrower type than the array's [`Class`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `miDOUBLE`.
    F64(Vec<f64>),
    /// `miSINGLE`.
    F32(Vec<f32>),
    /// `miINT8`.
    I8(Vec<i8>),
    /// `miUINT8`.
    U8(Vec<u8>),
    /// `miINT16`.
    I16(Vec<i16>),
    /// `miUINT16`.
    U16(Vec<u16>),
    /// `miINT32`.
    I32(Vec<i32>),
    /// `miUINT32`.
    U32(Vec<u32>),
    /// `miINT64`.
    I64(Vec<i64>),
    /// `miUINT64`.
    U64(Vec<u64>),
}

impl Data {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Data::F64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::I16(v) => v.len(),
            Data::U16(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::U32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::U64(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One numeric variable of a MAT-file.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The variable name.
    pub name: String,
    /// The MATLAB class.
    pub class: Class,
    /// The dimensions, as stored (at least two; MATLAB drops trailing
    /// singleton dimensions beyond the second).
    pub dims: Vec<usize>,
    /// The real part, column-major, `dims.iter().product()` values.
    pub data: Data,
}

impl Array {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The dimensions as exactly `N` values, padding trailing singleton
    /// dimensions that MATLAB drops (a `20x3x1` array is stored as `20x3`),
    /// or `None` when the array has more than `N` non-singleton trailing
    /// dimensions.
    pub fn dims_as<const N: usize>(&self) -> Option<[usize; N]> {
        let mut out = [1usize; N];
        for (i, &d) in self.dims.iter().enumerate() {
            match out.get_mut(i) {
                Some(o) => *o = d,
                None if d == 1 => {}
                None => return None,
            }
        }
        Some(out)
    }

    /// The values converted to f64 (exact for every stored type but
    /// 64-bit integers beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F64(v) => v.clone(),
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::U16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::U32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::U64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// [`Array::to_u16`] without a copy when the values are stored as
    /// uint16 (as MATLAB stores depth maps).
    pub fn into_u16(self) -> Option<Vec<u16>> {
        match self.data {
            Data::U16(v) => Some(v),
            data => Array { data, ..self }.to_u16(),
        }
    }

    /// The values as u16 when every one of them is exactly a u16 (an
    /// integer in 0..=65535), else `None`.
    pub fn to_u16(&self) -> Option<Vec<u16>> {
        match &self.data {
            Data::U16(v) => Some(v.clone()),
            Data::U8(v) => Some(v.iter().map(|&x| u16::from(x)).collect()),
            _ => self
                .to_f64()
                .into_iter()
                .map(|x| {
                    if x.fract() == 0.0 && (0.0..=65535.0).contains(&x) {
                        Some(x as u16)
                    } else {
                        None
                    }
                })
                .collect(),
        }
    }
}

/// The numeric variables of a MAT-file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatFile {
    /// The numeric arrays, in file order.
    pub arrays: Vec<Array>,
    /// Variables that were present but not decoded, with the reason
    /// ("struct", "complex", ...).
    pub skipped: Vec<(String, &'static str)>,
}

impl MatFile {
    /// Reads and parses the MAT-file at `path`.
    pub fn read(path: &Path) -> Result<MatFile> {
        let bytes = super::read_capped(path, FORMAT, super::MAX_FILE_BYTES)?;
        MatFile::parse(&bytes, path)
    }

    /// Parses a MAT-file held in memory; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<MatFile> {
        MatFile::parse_with_limit(bytes, path, MAX_ELEMENT_BYTES)
    }

    /// [`MatFile::parse`] with a limit on the size of one decompressed
    /// element, in bytes.
    pub fn parse_with_limit(
        bytes: &[u8],
        path: &Path,
        max_element_bytes: usize,
    ) -> Result<MatFile> {
        parse_file(bytes, max_element_bytes).map_err(|reason| malformed(FORMAT, path, reason))
    }

    /// The numeric variable called `name`.
    pub fn get(&self, name: &str) -> Option<&Array> {
        self.arrays.iter().find(|a| a.name == name)
    }

    /// Removes and returns the numeric variable called `name`, or an
    /// [`Error::Format`](crate::Error::Format) that lists what the file holds.
    pub fn take(&mut self, name: &str, path: &Path) -> Result<Array> {
        match self.arrays.iter().position(|a| a.name == name) {
            Some(i) => Ok(self.arrays.swap_remove(i)),
            None => {
                let mut present: Vec<String> = self.arrays.iter().map(|a| a.name.clone()).collect();
                present.extend(self.skipped.iter().map(|(n, why)| format!("{n} ({why})")));
                Err(malformed(
                    FORMAT,
                    path,
                    format!("no numeric variable `{name}` (variables: {present:?})"),
                ))
            }
        }
    }
}

/// What a variable is, read from its header only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarInfo {
    /// The variable name.
    pub name: String,
    /// The MATLAB class name (`"double"`, `"uint16"`, `"struct"`, ...).
    pub class: &'static str,
    /// Whether the array has an imaginary part.
    pub complex: bool,
    /// The dimensions, as stored.
    pub dims: Vec<usize>,
}

/// The variables of a MAT-file held in memory, from their headers only:
/// each compressed element is inflated just far enough to read its array
/// flags, dimensions and name, so this is fast on large files, but it does
/// not check the data (a file whose headers read may still fail
/// [`MatFile::parse`]). `path` only names the file in errors.
pub fn variables(bytes: &[u8], path: &Path) -> Result<Vec<VarInfo>> {
    parse_headers(bytes).map_err(|reason| malformed(FORMAT, path, reason))
}

/// Reads the numeric variable `name` from the MAT-file at `path`.
pub fn read_variable(path: &Path, name: &str) -> Result<Array> {
    MatFile::read(path)?.take(name, path)
}

type Parse<T> = std::result::Result<T, String>;

#[derive(Debug, Clone, Copy)]
struct Tag {
    ty: u32,
    /// Bytes of data.
    len: usize,
    /// Offset of the data.
    data: usize,
    /// Offset of the next element (after padding; may pass the end of the
    /// buffer when the final padding is missing).
    next: usize,
}

fn u16_at(buf: &[u8], at: usize, big: bool) -> Option<u16> {
    let b: [u8; 2] = buf.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

fn u32_at(buf: &[u8], at: usize, big: bool) -> Option<u32> {
    let b: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// Reads the tag at `at` (either form) and checks that its data fit in
/// `buf`. Compressed elements are not padded; others are padded to 8 bytes.
fn read_tag(buf: &[u8], at: usize, big: bool) -> Parse<Tag> {
    let first =
        u32_at(buf, at, big).ok_or_else(|| format!("truncated data element tag at byte {at}"))?;
    let (ty, len, data, padded) = if first >> 16 != 0 {
        // Small data element: 2 bytes of length, 2 of type, 4 of data.
        let len = (first >> 16) as usize;
        if len > 4 {
            return Err(format!(
                "small data element at byte {at} claims {len} bytes (at most 4)"
            ));
        }
        (first & 0xffff, len, at + 4, 4)
    } else {
        let len = u32_at(buf, at + 4, big)
            .ok_or_else(|| format!("truncated data element tag at byte {at}"))?
            as usize;
        let padded = if first == MI_COMPRESSED {
            len
        } else {
            len.checked_add(7).map(|x| x & !7).unwrap_or(usize::MAX)
        };
        (first, len, at + 8, padded)
    };
    let end = data
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| {
            format!(
                "data element at byte {at} (type {ty}) claims {len} bytes, but only {} remain",
                buf.len().saturating_sub(data)
            )
        })?;
    let next = data.saturating_add(padded).max(end);
    Ok(Tag {
        ty,
        len,
        data,
        next,
    })
}

/// Checks the 128-byte header; returns whether the file is big-endian.
fn check_header(bytes: &[u8]) -> Parse<bool> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    if bytes[..4].contains(&0) {
        return Err("no text header: a MAT v4 file or not a MAT-file".into());
    }
    let big = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => {
            return Err(format!(
                "bad endian indicator {other:?} at byte 126 (not a MAT v5 file)"
            ))
        }
    };
    let version = u16_at(bytes, 124, big).unwrap_or(0);
    if version != 0x0100 {
        return Err(format!(
            "version {version:#06x} at byte 124; only 0x0100 (v5..v7) is supported \
             (0x0200 is v7.3, HDF5)"
        ));
    }
    Ok(big)
}

fn parse_file(bytes: &[u8], limit: usize) -> Parse<MatFile> {
    let big = check_header(bytes)?;
    let mut out = MatFile::default();
    let mut at = HEADER_BYTES;
    while at < bytes.len() {
        let tag = read_tag(bytes, at, big)?;
        let body = &bytes[tag.data..tag.data + tag.len];
        match tag.ty {
            MI_MATRIX => parse_matrix(body, big, &mut out)
                .map_err(|e| format!("in the matrix element at byte {at}: {e}"))?,
            MI_COMPRESSED => {
                let inflated = inflate(body, limit)
                    .map_err(|e| format!("in the compressed element at byte {at}: {e}"))?;
                parse_inflated(&inflated, big, &mut out).map_err(|e| {
                    format!("in the compressed element at byte {at}, decompressed {e}")
                })?;
            }
            other => {
                return Err(format!(
                    "unexpected top-level data element of type {other} at byte {at}"
                ))
            }
        }
        at = tag.next;
    }
    Ok(out)
}

/// How much of a compressed element [`variables`] inflates to read the
/// array header (flags, dimensions, name).
const HEADER_PREFIX_BYTES: u64 = 4096;

fn parse_headers(bytes: &[u8]) -> Parse<Vec<VarInfo>> {
    let big = check_header(bytes)?;
    let mut out = Vec::new();
    let mut at = HEADER_BYTES;
    while at < bytes.len() {
        let tag = read_tag(bytes, at, big)?;
        let body = &bytes[tag.data..tag.data + tag.len];
        let header = match tag.ty {
            MI_MATRIX => matrix_header(body, big),
            MI_COMPRESSED => {
                let mut prefix = Vec::new();
                flate2::read::ZlibDecoder::new(body)
                    .take(HEADER_PREFIX_BYTES)
                    .read_to_end(&mut prefix)
                    .map_err(|e| format!("zlib: {e}"))
                    .and_then(|_| match (u32_at(&prefix, 0, big), prefix.get(8..)) {
                        (Some(MI_MATRIX), Some(body)) => matrix_header(body, big),
                        (Some(ty), Some(_)) => Err(format!("data hold type {ty}, not a matrix")),
                        _ => Err("decompressed data too short for a tag".into()),
                    })
            }
            other => Err(format!("unexpected top-level data element of type {other}")),
        }
        .map_err(|e| format!("in the element at byte {at}: {e}"))?;
        if let Some(h) = header {
            out.push(VarInfo {
                name: h.name,
                class: class_name(h.class_code),
                complex: h.complex,
                dims: h.dims,
            });
        }
        at = tag.next;
    }
    Ok(out)
}

/// Inflates a zlib stream, refusing more than `limit` bytes of output.
fn inflate(data: &[u8], limit: usize) -> Parse<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("zlib: {e}"))?;
    if out.len() > limit {
        return Err(format!("inflates to more than the {limit}-byte limit"));
    }
    Ok(out)
}

fn parse_inflated(buf: &[u8], big: bool, out: &mut MatFile) -> Parse<()> {
    let tag = read_tag(buf, 0, big).map_err(|e| format!("data: {e}"))?;
    if tag.ty != MI_MATRIX {
        return Err(format!("data hold type {}, not a matrix", tag.ty));
    }
    parse_matrix(&buf[tag.data..tag.data + tag.len], big, out)
        .map_err(|e| format!("matrix (offsets from its data): {e}"))
}

/// The array header of one `miMATRIX`: everything before its data.
struct Header {
    class_code: u32,
    complex: bool,
    dims: Vec<usize>,
    numel: usize,
    name: String,
    /// Offset of the real part's tag.
    data_at: usize,
}

/// Parses flags, dimensions and name of one `miMATRIX` (`body` is its
/// data, or a prefix of it). `None` for an empty array.
fn matrix_header(body: &[u8], big: bool) -> Parse<Option<Header>> {
    if body.is_empty() {
        // An empty, unnamed array (used inside cells and structs).
        return Ok(None);
    }
    // Array flags: miUINT32, 8 bytes; class in the low byte of the first.
    let flags = read_tag(body, 0, big)?;
    if flags.ty != MI_UINT32 || flags.len != 8 {
        return Err(format!(
            "array flags at byte 0 have type {} and {} bytes (want miUINT32, 8)",
            flags.ty, flags.len
        ));
    }
    let word = u32_at(body, flags.data, big).ok_or("truncated array flags")?;
    let class_code = word & 0xff;
    let complex = word & 0x0800 != 0;
    if class_code == 16 || class_code == 17 {
        // Function handles and opaque objects have another layout.
        return Ok(Some(Header {
            class_code,
            complex,
            dims: Vec::new(),
            numel: 0,
            name: String::new(),
            data_at: body.len(),
        }));
    }
    if !(1..=15).contains(&class_code) {
        return Err(format!("unknown array class {class_code}"));
    }

    // Dimensions: miINT32, at least two.
    let dtag = read_tag(body, flags.next, big)?;
    if dtag.ty != MI_INT32 || dtag.len < 8 || dtag.len % 4 != 0 {
        return Err(format!(
            "dimensions at byte {} have type {} and {} bytes (want miINT32, 4n >= 8)",
            flags.next, dtag.ty, dtag.len
        ));
    }
    let mut dims = Vec::with_capacity(dtag.len / 4);
    let mut numel: usize = 1;
    for i in 0..dtag.len / 4 {
        let d = u32_at(body, dtag.data + 4 * i, big).ok_or("truncated dimensions")? as i32;
        if d < 0 {
            return Err(format!("negative dimension {d}"));
        }
        let d = d as usize;
        numel = numel
            .checked_mul(d)
            .ok_or_else(|| format!("dimensions {dims:?}x{d}... overflow"))?;
        dims.push(d);
    }

    // Name: miINT8 (or miUTF8), may be empty.
    let ntag = read_tag(body, dtag.next, big)?;
    if ntag.ty != MI_INT8 && ntag.ty != MI_UTF8 && ntag.ty != MI_UINT8 {
        return Err(format!(
            "array name at byte {} has type {} (want miINT8)",
            dtag.next, ntag.ty
        ));
    }
    let name = std::str::from_utf8(&body[ntag.data..ntag.data + ntag.len])
        .map_err(|e| format!("array name at byte {} is not UTF-8: {e}", dtag.next))?
        .to_string();
    Ok(Some(Header {
        class_code,
        complex,
        dims,
        numel,
        name,
        data_at: ntag.next,
    }))
}

fn class_name(code: u32) -> &'static str {
    match code {
        1 => "cell",
        2 => "struct",
        3 => "object",
        4 => "char",
        5 => "sparse",
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        16 => "function",
        _ => "opaque",
    }
}

/// Parses the sub-elements of one `miMATRIX` (`body` is its data).
fn parse_matrix(body: &[u8], big: bool, out: &mut MatFile) -> Parse<()> {
    let Some(Header {
        class_code,
        complex,
        dims,
        numel,
        name,
        data_at,
    }) = matrix_header(body, big)?
    else {
        return Ok(());
    };
    let Some(class) = Class::from_code(class_code) else {
        out.skipped.push((name, class_name(class_code)));
        return Ok(());
    };

    // Real part.
    let rtag = read_tag(body, data_at, big).map_err(|e| format!("real part of `{name}`: {e}"))?;
    let data = decode_numeric(&body[rtag.data..rtag.data + rtag.len], rtag.ty, big)
        .map_err(|e| format!("real part of `{name}` at byte {data_at}: {e}"))?;
    if data.len() != numel {
        return Err(format!(
            "`{name}` has dims {dims:?} ({numel} elements) but its real part holds {}",
            data.len()
        ));
    }
    if complex {
        out.skipped.push((name, "complex"));
        return Ok(());
    }
    out.arrays.push(Array {
        name,
        class,
        dims,
        data,
    });
    Ok(())
}

macro_rules! decode_as {
    ($bytes:expr, $big:expr, $t:ty, $n:expr) => {
        $bytes
            .chunks_exact($n)
            .map(|c| {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                if $big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            })
            .collect()
    };
}

fn decode_numeric(bytes: &[u8], ty: u32, big: bool) -> Parse<Data> {
    let size = match ty {
        MI_INT8 | MI_UINT8 => 1,
        MI_INT16 | MI_UINT16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        other => return Err(format!("type {other} is not numeric")),
    };
    if bytes.len() % size != 0 {
        return Err(format!(
            "{} bytes is not a whole number of {size}-byte values",
            bytes.len()
        ));
    }
    Ok(match ty {
        MI_INT8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
        MI_UINT8 => Data::U8(bytes.to_vec()),
        MI_INT16 => Data::I16(decode_as!(bytes, big, i16, 2)),
        MI_UINT16 => Data::U16(decode_as!(bytes, big, u16, 2)),
        MI_INT32 => Data::I32(decode_as!(bytes, big, i32, 4)),
        MI_UINT32 => Data::U32(decode_as!(bytes, big, u32, 4)),
        MI_SINGLE => Data::F32(decode_as!(bytes, big, f32, 4)),
        MI_DOUBLE => Data::F64(decode_as!(bytes, big, f64, 8)),
        MI_INT64 => Data::I64(decode_as!(bytes, big, i64, 8)),
        _ => Data::U64(decode_as!(bytes, big, u64, 8)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian MAT v5 file with one uncompressed double matrix.
    fn tiny(name: &str, dims: &[i32], values: &[f64]) -> Vec<u8> {
        let mut f = vec![b' '; 116];
        f[..19].copy_from_slice(b"MATLAB 5.0 MAT-file");
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&0x0100u16.to_le_bytes());
        f.extend_from_slice(b"IM");
        let mut body = Vec::new();
        let push = |body: &mut Vec<u8>, ty: u32, data: &[u8]| {
            body.extend_from_slice(&ty.to_le_bytes());
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            while body.len() % 8 != 0 {
                body.push(0);
            }
        };
        push(&mut body, MI_UINT32, &[6, 0, 0, 0, 0, 0, 0, 0]);
        let d: Vec<u8> = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
        push(&mut body, MI_INT32, &d);
        push(&mut body, MI_INT8, name.as_bytes());
        let v: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        push(&mut body, MI_DOUBLE, &v);
        f.extend_from_slice(&MI_MATRIX.to_le_bytes());
        f.extend_from_slice(&(body.len() as u32).to_le_bytes());
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn reads_a_plain_double_matrix() {
        let bytes = tiny("x", &[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let m = MatFile::parse(&bytes, Path::new("t.mat")).unwrap();
        let a = m.get("x").unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.class, Class::Double);
        assert_eq!(a.to_f64(), vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(a.dims_as::<3>(), Some([2, 3, 1]));
        assert_eq!(a.dims_as::<1>(), None);
        assert_eq!(a.to_u16().unwrap(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn refuses_element_count_mismatch_and_overflow() {
        let bytes = tiny("x", &[2, 4], &[1., 2., 3.]);
        assert!(MatFile::parse(&bytes, Path::new("t.mat")).is_err());
        let bytes = tiny("x", &[i32::MAX, i32::MAX, i32::MAX], &[]);
        assert!(MatFile::parse(&bytes, Path::new("t.mat")).is_err());
        let bytes = tiny("x", &[-1, 2], &[]);
        assert!(MatFile::parse(&bytes, Path::new("t.mat")).is_err());
    }
}
