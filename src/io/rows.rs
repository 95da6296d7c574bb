//! Row-by-row codecs for streaming renders: rows go in and out in order, so neither the whole
//! decoded source nor the whole output needs to be in memory.
//!
//! - PNG in: the `png` crate (the decoder `image` uses), non-interlaced files; palette, tRNS and
//!   low bit depths expanded to 8 bit, 16-bit kept.
//! - JPEG in: libjpeg-turbo (mozjpeg) scanlines, for images too large to decode whole; a file
//!   whose entropy data ends without an EOI marker is refused as truncated first, because
//!   libjpeg would otherwise fill the missing rows with grey and only warn.
//! - PNG out: `png` stream writer (8 or 16 bit, RGB or RGBA, ICC kept).
//! - JPEG out: libjpeg-turbo scanlines, baseline libjpeg-turbo settings at the chosen quality.
//!
//! libjpeg reports fatal errors by unwinding; every call into it is wrapped in `catch_unwind`.

use std::fs::File;
use std::io::{BufReader, Read as _, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crate::engine::geom::Size;
use crate::error::{Error, Result};

/// How decoded rows are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLayout {
    /// Samples per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
    pub channels: usize,
    /// 16-bit samples (else 8-bit).
    pub high_bit_depth: bool,
}

/// One row's worth of samples to fill.
pub enum RowOut<'a> {
    /// 8-bit samples.
    U8(&'a mut [u8]),
    /// 16-bit samples.
    U16(&'a mut [u16]),
}

/// A decoder that yields rows top to bottom.
pub trait RowDecoder {
    /// Image size.
    fn size(&self) -> Size;
    /// Row layout.
    fn layout(&self) -> RowLayout;
    /// Decode the next row into `out` (`width × channels` samples).
    fn read_row(&mut self, out: RowOut<'_>) -> Result<()>;
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        reason: reason.into(),
        path: path.to_path_buf(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "decoder failure".to_owned())
}

/// Streaming PNG decoder.
pub struct PngRows {
    reader: png::Reader<BufReader<File>>,
    size: Size,
    layout: RowLayout,
    path: PathBuf,
}

impl PngRows {
    /// Open `path` for row decoding; `None` when the file is interlaced (rows do not arrive in
    /// order), in which case the caller decodes it whole.
    pub fn open(path: &Path, max_alloc_bytes: u64) -> Result<Option<PngRows>> {
        let file = File::open(path).map_err(|e| Error::io("reading the image", path, e))?;
        let mut decoder = png::Decoder::new(BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND);
        // Text chunks and the ICC profile (the probe read it, under the metadata cap) are not
        // used here; skipping them also skips inflating them.
        decoder.set_ignore_text_chunk(true);
        decoder.set_ignore_iccp_chunk(true);
        decoder.set_limits(png::Limits {
            bytes: usize::try_from(max_alloc_bytes).unwrap_or(usize::MAX),
        });
        let reader = decoder
            .read_info()
            .map_err(|e| corrupt(path, e.to_string()))?;
        if reader.info().interlaced {
            return Ok(None);
        }
        let (color, depth) = reader.output_color_type();
        let channels = color.samples();
        let size = Size::new(reader.info().width, reader.info().height);
        Ok(Some(PngRows {
            reader,
            size,
            layout: RowLayout {
                channels,
                high_bit_depth: depth == png::BitDepth::Sixteen,
            },
            path: path.to_path_buf(),
        }))
    }
}

impl RowDecoder for PngRows {
    fn size(&self) -> Size {
        self.size
    }

    fn layout(&self) -> RowLayout {
        self.layout
    }

    fn read_row(&mut self, out: RowOut<'_>) -> Result<()> {
        let row = match self.reader.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => return Err(corrupt(&self.path, "the file ends early (truncated)")),
            Err(png::DecodingError::IoError(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return Err(corrupt(&self.path, "the file ends early (truncated)"));
            }
            Err(e) => return Err(corrupt(&self.path, e.to_string())),
        };
        let data = row.data();
        match out {
            RowOut::U8(out) => {
                let n = out.len().min(data.len());
                out[..n].copy_from_slice(&data[..n]);
            }
            RowOut::U16(out) => {
                for (o, pair) in out.iter_mut().zip(data.chunks_exact(2)) {
                    *o = u16::from_be_bytes([pair[0], pair[1]]);
                }
            }
        }
        Ok(())
    }
}

/// Whether the JPEG at `path` has an EOI marker after its last scan (i.e. is not truncated).
/// Reads the file once, in chunks.
pub fn jpeg_is_complete(path: &Path) -> Result<bool> {
    let mut file = File::open(path).map_err(|e| Error::io("reading the image", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut prev_ff = false;
    let mut seen_sos = false;
    // Segment bytes still to skip (marker payloads are not entropy data).
    let mut skip: usize = 0;
    // Reading a two-byte segment length: 0 = no, 1 = have high byte.
    let mut length_state: Option<(u8, Option<u8>)> = None;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("reading the image", path, e))?;
        if n == 0 {
            return Ok(false);
        }
        for &b in &buf[..n] {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Some((marker, hi)) = length_state {
                match hi {
                    None => length_state = Some((marker, Some(b))),
                    Some(hi) => {
                        let len = usize::from(u16::from_be_bytes([hi, b]));
                        skip = len.saturating_sub(2);
                        if marker == 0xDA {
                            seen_sos = true;
                        }
                        length_state = None;
                    }
                }
                continue;
            }
            if prev_ff {
                prev_ff = false;
                match b {
                    0x00 | 0xFF | 0xD0..=0xD7 | 0x01 => {
                        prev_ff = b == 0xFF;
                    }
                    0xD8 => {}
                    0xD9 => {
                        if seen_sos {
                            return Ok(true);
                        }
                    }
                    marker => length_state = Some((marker, None)),
                }
            } else if b == 0xFF {
                prev_ff = true;
            }
        }
    }
}

/// Streaming JPEG decoder (libjpeg-turbo scanlines), RGB or grey.
pub struct JpegRows {
    decoder: Option<mozjpeg::decompress::DecompressStarted<BufReader<File>>>,
    size: Size,
    channels: usize,
    path: PathBuf,
}

impl JpegRows {
    /// Open `path`; `None` for colour spaces this path does not handle (CMYK, YCCK), which the
    /// caller decodes whole instead.
    pub fn open(path: &Path) -> Result<Option<JpegRows>> {
        Self::open_scaled(path, 8)
    }

    /// Open `path` decoding at `eighths / 8` of its stored size (1..=8; libjpeg-turbo scales
    /// in the DCT, see `engine::shrink`); the size is rounded up as libjpeg does.
    pub fn open_scaled(path: &Path, eighths: u8) -> Result<Option<JpegRows>> {
        if !jpeg_is_complete(path)? {
            return Err(corrupt(path, "the file ends early (truncated)"));
        }
        let opened = catch_unwind(AssertUnwindSafe(|| -> std::io::Result<Option<JpegRows>> {
            let mut d = mozjpeg::Decompress::new_path(path)?;
            let grey = match d.color_space() {
                mozjpeg::ColorSpace::JCS_GRAYSCALE => true,
                mozjpeg::ColorSpace::JCS_YCbCr | mozjpeg::ColorSpace::JCS_RGB => false,
                _ => return Ok(None),
            };
            d.scale(eighths.clamp(1, 8));
            let started = if grey { d.grayscale()? } else { d.rgb()? };
            let size = Size::new(started.width() as u32, started.height() as u32);
            Ok(Some(JpegRows {
                decoder: Some(started),
                size,
                channels: if grey { 1 } else { 3 },
                path: path.to_path_buf(),
            }))
        }));
        match opened {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => Err(corrupt(path, e.to_string())),
            Err(payload) => Err(corrupt(path, panic_message(payload.as_ref()))),
        }
    }
}

/// Decode every remaining row of an 8-bit grey, RGB or RGBA `decoder` into an image.
pub fn read_all(decoder: &mut dyn RowDecoder) -> Result<image::DynamicImage> {
    let Size {
        width: w,
        height: h,
    } = decoder.size();
    let layout = decoder.layout();
    if layout.high_bit_depth {
        return Err(Error::Internal("read_all takes 8-bit rows".to_owned()));
    }
    let row_len = w as usize * layout.channels;
    let mut data = vec![0u8; row_len * h as usize];
    for row in data.chunks_exact_mut(row_len.max(1)) {
        decoder.read_row(RowOut::U8(row))?;
    }
    let image = match layout.channels {
        1 => image::GrayImage::from_raw(w, h, data).map(image::DynamicImage::ImageLuma8),
        3 => image::RgbImage::from_raw(w, h, data).map(image::DynamicImage::ImageRgb8),
        4 => image::RgbaImage::from_raw(w, h, data).map(image::DynamicImage::ImageRgba8),
        _ => None,
    };
    image.ok_or_else(|| Error::Internal("row buffer size".to_owned()))
}

impl RowDecoder for JpegRows {
    fn size(&self) -> Size {
        self.size
    }

    fn layout(&self) -> RowLayout {
        RowLayout {
            channels: self.channels,
            high_bit_depth: false,
        }
    }

    fn read_row(&mut self, out: RowOut<'_>) -> Result<()> {
        let RowOut::U8(out) = out else {
            return Err(Error::Internal("JPEG rows are 8-bit".to_owned()));
        };
        let Some(decoder) = self.decoder.as_mut() else {
            return Err(corrupt(&self.path, "decoding already failed"));
        };
        match catch_unwind(AssertUnwindSafe(|| {
            decoder.read_scanlines_into::<u8>(out).map(|_| ())
        })) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.decoder = None;
                Err(corrupt(&self.path, "the file ends early (truncated)"))
            }
            Ok(Err(e)) => {
                self.decoder = None;
                Err(corrupt(&self.path, e.to_string()))
            }
            Err(payload) => {
                // libjpeg's state is undefined after a fatal error: never touch it again.
                std::mem::forget(self.decoder.take());
                Err(corrupt(&self.path, panic_message(payload.as_ref())))
            }
        }
    }
}

/// The samples a streaming encoder writes per pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One grey sample (rows come as [`RowsIn::Grey8`], or as RGBA rows of a grey render,
    /// whose red samples are written).
    Grey,
    /// Red, green, blue (RGBA rows, every alpha opaque).
    Rgb,
    /// Red, green, blue (rows come as [`RowsIn::Rgb8`], three samples per pixel).
    PackedRgb,
    /// Red, green, blue, alpha.
    Rgba,
    /// One grey sample and alpha (RGBA rows of a grey render, whose red and alpha samples
    /// are written; a JPEG, which has no alpha, gets grey flattened over white).
    GreyAlpha,
}

/// Rows of finished pixels: RGBA, 8 or 16 bit, or opaque 8-bit grey or RGB, `width` px wide.
pub enum RowsIn<'a> {
    /// 8-bit RGBA.
    U8(&'a [u8]),
    /// 16-bit RGBA.
    U16(&'a [u16]),
    /// 8-bit grey (opaque), for an encoder started with [`Layout::Grey`].
    Grey8(&'a [u8]),
    /// 8-bit RGB (opaque), for an encoder started with [`Layout::PackedRgb`].
    Rgb8(&'a [u8]),
}

/// An encoder that takes rows top to bottom.
pub trait RowEncoder {
    /// Write whole rows (grey rows only to a [`Layout::Grey`] encoder, RGB rows only to a
    /// [`Layout::PackedRgb`] one; RGBA rows to any other, a grey one taking their red, a
    /// grey-and-alpha one their red and alpha).
    fn write_rows(&mut self, rows: RowsIn<'_>) -> std::result::Result<(), String>;
    /// Finish the file.
    fn finish(self: Box<Self>) -> std::result::Result<(), String>;
}

/// PNG rows through `png`'s stream writer.
pub struct PngRowEncoder {
    writer: png::StreamWriter<'static, Box<dyn Write>>,
    layout: Layout,
    high_bit_depth: bool,
    scratch: Vec<u8>,
}

impl PngRowEncoder {
    /// Start a PNG of `size` with `layout`'s channels, 16-bit when `high_bit_depth` (RGB(A)
    /// only), compressed with `compression` effort.
    pub fn new(
        out: Box<dyn Write>,
        size: Size,
        layout: Layout,
        high_bit_depth: bool,
        icc_profile: Option<&[u8]>,
        compression: png::Compression,
    ) -> std::result::Result<Self, String> {
        let mut info = png::Info::with_size(size.width, size.height);
        info.color_type = match layout {
            Layout::Grey => png::ColorType::Grayscale,
            Layout::Rgb | Layout::PackedRgb => png::ColorType::Rgb,
            Layout::Rgba => png::ColorType::Rgba,
            Layout::GreyAlpha => png::ColorType::GrayscaleAlpha,
        };
        info.bit_depth = if high_bit_depth {
            png::BitDepth::Sixteen
        } else {
            png::BitDepth::Eight
        };
        info.icc_profile = icc_profile.map(|p| std::borrow::Cow::Owned(p.to_vec()));
        let mut encoder = png::Encoder::with_info(out, info).map_err(|e| e.to_string())?;
        encoder.set_compression(compression);
        encoder.set_filter(png::Filter::Adaptive);
        let writer = encoder
            .write_header()
            .and_then(png::Writer::into_stream_writer)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            writer,
            layout,
            high_bit_depth,
            scratch: Vec::new(),
        })
    }
}

impl RowEncoder for PngRowEncoder {
    fn write_rows(&mut self, rows: RowsIn<'_>) -> std::result::Result<(), String> {
        self.scratch.clear();
        // RGBA rows to the file's channels: all four, red/green/blue, grey (red: the rows of
        // a grey render have R = G = B), or grey and alpha.
        let keep: &[usize] = match self.layout {
            Layout::Rgba => &[0, 1, 2, 3],
            Layout::Grey => &[0],
            Layout::Rgb | Layout::PackedRgb => &[0, 1, 2],
            Layout::GreyAlpha => &[0, 3],
        };
        match rows {
            RowsIn::Grey8(samples) | RowsIn::Rgb8(samples) => {
                debug_assert!(matches!(self.layout, Layout::Grey | Layout::PackedRgb));
                return self.writer.write_all(samples).map_err(|e| e.to_string());
            }
            RowsIn::U8(samples) => match keep {
                // Whole runs of samples where the channels kept lead each pixel.
                [0, 1, 2, 3] => self.scratch.extend_from_slice(samples),
                [0, 1, 2] | [0] => {
                    for px in samples.chunks_exact(4) {
                        self.scratch.extend_from_slice(&px[..keep.len()]);
                    }
                }
                _ => {
                    for px in samples.chunks_exact(4) {
                        self.scratch.extend(keep.iter().map(|&c| px[c]));
                    }
                }
            },
            RowsIn::U16(samples) => {
                debug_assert!(self.high_bit_depth);
                for px in samples.chunks_exact(4) {
                    for &c in keep {
                        self.scratch.extend_from_slice(&px[c].to_be_bytes());
                    }
                }
            }
        }
        self.writer
            .write_all(&self.scratch)
            .map_err(|e| e.to_string())
    }

    fn finish(self: Box<Self>) -> std::result::Result<(), String> {
        self.writer.finish().map_err(|e| e.to_string())
    }
}

/// JPEG rows through libjpeg-turbo; transparency is flattened over white.
pub struct JpegRowEncoder {
    compress: Option<mozjpeg::compress::CompressStarted<Box<dyn Write>>>,
    /// Every pixel is opaque: 8-bit RGBA rows go to libjpeg as they are (RGBX input).
    opaque: bool,
    /// A one-channel JPEG: RGBA rows give their red samples.
    grey: bool,
    scratch: Vec<u8>,
}

impl JpegRowEncoder {
    /// Start a JPEG of `size` at `quality` (1..=100). [`Layout::Rgb`] promises opaque RGBA
    /// rows, [`Layout::PackedRgb`] RGB rows, [`Layout::Grey`] grey rows (a one-channel JPEG),
    /// [`Layout::GreyAlpha`] RGBA rows of a grey render (flattened into one channel). `full_chroma` keeps colour at
    /// full resolution (4:4:4) instead of halving it both ways (4:2:0, what most encoders do
    /// by default).
    pub fn new(
        out: Box<dyn Write>,
        size: Size,
        quality: u8,
        layout: Layout,
        icc_profile: Option<&[u8]>,
        full_chroma: bool,
    ) -> std::result::Result<Self, String> {
        let alpha = matches!(layout, Layout::Rgba | Layout::GreyAlpha);
        let grey = matches!(layout, Layout::Grey | Layout::GreyAlpha);
        let started = catch_unwind(AssertUnwindSafe(|| {
            let mut c = mozjpeg::Compress::new(match layout {
                Layout::Grey | Layout::GreyAlpha => mozjpeg::ColorSpace::JCS_GRAYSCALE,
                Layout::Rgb => mozjpeg::ColorSpace::JCS_EXT_RGBX,
                // Flattened into RGB scratch rows, or RGB rows as they come.
                Layout::Rgba | Layout::PackedRgb => mozjpeg::ColorSpace::JCS_RGB,
            });
            c.set_fastest_defaults();
            c.set_size(size.width as usize, size.height as usize);
            c.set_quality(f32::from(quality.clamp(1, 100)));
            if full_chroma && !grey {
                c.set_chroma_sampling_pixel_sizes((1, 1), (1, 1));
            }
            // Huffman optimisation and progressive mode make libjpeg buffer every coefficient
            // of the image; baseline with standard tables keeps encoding streamed.
            c.set_optimize_coding(false);
            let mut started = c.start_compress(out)?;
            if let Some(icc) = icc_profile {
                for marker in icc_markers(icc) {
                    started.write_marker(mozjpeg::Marker::APP(2), &marker);
                }
            }
            Ok::<_, std::io::Error>(started)
        }));
        match started {
            Ok(Ok(compress)) => Ok(Self {
                compress: Some(compress),
                opaque: !alpha,
                grey,
                scratch: Vec::new(),
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(payload) => Err(panic_message(payload.as_ref())),
        }
    }
}

/// The APP2 marker payloads that carry `icc` in a JPEG: "ICC_PROFILE\0", the marker's
/// sequence number counted from 1, the number of markers, then up to 65519 bytes of the
/// profile. (`mozjpeg`'s `write_icc_profile` counts from 0, which libjpeg's and the image
/// crate's readers reject as corrupt, dropping the profile.) A profile needing more than 255
/// markers (over 16 MB) is not written: such a file would be unreadable to them too.
fn icc_markers(icc: &[u8]) -> Vec<Vec<u8>> {
    const SIGNATURE: &[u8] = b"ICC_PROFILE\0";
    const MAX_CHUNK_BYTES: usize = 65_533 - SIGNATURE.len() - 2;
    let Ok(count) = u8::try_from(icc.len().div_ceil(MAX_CHUNK_BYTES)) else {
        return Vec::new();
    };
    icc.chunks(MAX_CHUNK_BYTES)
        .zip(1..=count)
        .map(|(chunk, seq)| [SIGNATURE, &[seq, count], chunk].concat())
        .collect()
}

/// A 16-bit sample rounded to 8 bits.
pub(crate) fn eight_bit(v: u16) -> u8 {
    ((u32::from(v) * 255 + 32_767) / 65_535) as u8
}

/// Composite the red of straight-alpha 8-bit RGBA over white into one grey sample per pixel
/// (the red of [`flatten_into`]).
fn flatten_grey_into(rgba: &[u8], out: &mut Vec<u8>) {
    out.extend(rgba.chunks_exact(4).map(|px| {
        let (c, a) = (u32::from(px[0]), u32::from(px[3]));
        ((c * a + 255 * (255 - a) + 127) / 255) as u8
    }));
}

/// Composite straight-alpha 8-bit RGBA over white into RGB.
fn flatten_into(rgba: &[u8], out: &mut Vec<u8>) {
    out.reserve(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        if a == 255 {
            // Opaque (nearly every pixel of a photo): the colour as it is.
            out.extend_from_slice(&px[..3]);
        } else {
            for &c in &px[..3] {
                out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
            }
        }
    }
}

impl RowEncoder for JpegRowEncoder {
    fn write_rows(&mut self, rows: RowsIn<'_>) -> std::result::Result<(), String> {
        self.scratch.clear();
        // 16-bit rows are rounded to 8 bits first; then every row is 8-bit.
        let eight: Vec<u8>;
        let rows = match rows {
            RowsIn::U16(samples) => {
                eight = samples.iter().map(|&v| eight_bit(v)).collect();
                RowsIn::U8(&eight)
            }
            rows => rows,
        };
        let scanlines: &[u8] = match rows {
            RowsIn::Grey8(samples) | RowsIn::Rgb8(samples) => samples,
            // RGBA rows of a grey render (R = G = B) to a one-channel JPEG, flattened over
            // white where not opaque.
            RowsIn::U8(samples) if self.grey => {
                if self.opaque {
                    self.scratch.extend(samples.iter().step_by(4));
                } else {
                    flatten_grey_into(samples, &mut self.scratch);
                }
                &self.scratch
            }
            RowsIn::U8(samples) if self.opaque => samples,
            RowsIn::U8(samples) => {
                flatten_into(samples, &mut self.scratch);
                &self.scratch
            }
            RowsIn::U16(_) => unreachable!("16-bit rows were rounded to 8 bits above"),
        };
        let Some(compress) = self.compress.as_mut() else {
            return Err("the JPEG encoder already failed".to_owned());
        };
        match catch_unwind(AssertUnwindSafe(|| compress.write_scanlines(scanlines))) {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(payload) => {
                std::mem::forget(self.compress.take());
                Err(panic_message(payload.as_ref()))
            }
        }
    }

    fn finish(mut self: Box<Self>) -> std::result::Result<(), String> {
        let Some(compress) = self.compress.take() else {
            return Err("the JPEG encoder already failed".to_owned());
        };
        match catch_unwind(AssertUnwindSafe(|| compress.finish())) {
            Ok(Ok(mut out)) => out.flush().map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(payload) => Err(panic_message(payload.as_ref())),
        }
    }
}
