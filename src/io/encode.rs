//! Encoding the rendered pixels: PNG, JPEG (quality), WebP lossy (quality, libwebp) and
//! lossless, TIFF; 16-bit where the format allows and the source had it; alpha dropped when
//! every pixel is opaque; JPEG flattens transparency over white; an opaque render whose every
//! pixel is grey (a one-channel render, or R = G = B) written as a one-channel PNG, JPEG or
//! TIFF, at 8 or 16 bits (WebP has no grey mode: RGB) unless an ICC profile, which describes
//! RGB, must be kept; an opaque three-channel render written from its RGB samples as they are.
//! The source's ICC profile is kept in every format. Always written atomically.

use std::borrow::Cow;
use std::io::{Cursor, Write};
use std::path::Path;

use image::codecs::tiff::TiffEncoder;
use image::{ExtendedColorType, ImageEncoder as _};

pub use super::rows::Layout;
use super::rows::{JpegRowEncoder, PngRowEncoder, RowEncoder, RowsIn};
use crate::engine::geom::Size;
use crate::error::{Error, Result};
use crate::quality::QualityPreset;

/// Output container formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// PNG (8 or 16 bit).
    Png,
    /// JPEG (8 bit, no alpha).
    Jpeg,
    /// WebP (8 bit), lossy or lossless.
    Webp,
    /// TIFF (8 or 16 bit).
    Tiff,
    /// SVG: the render traced by the vectorizer (the chain's `[vectorize]` settings).
    Svg,
}

impl OutputFormat {
    /// Parse a format name or file extension (`png`, `jpg`, `jpeg`, `webp`, `tif`, `tiff`,
    /// `svg`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "png" => Some(Self::Png),
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            "tif" | "tiff" => Some(Self::Tiff),
            "svg" => Some(Self::Svg),
            _ => None,
        }
    }

    /// The format for `path`'s extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Self::from_name)
    }

    /// The format's name in messages: `PNG`, `JPEG`, `WebP`, `TIFF`, `SVG`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Webp => "WebP",
            Self::Tiff => "TIFF",
            Self::Svg => "SVG",
        }
    }

    /// Canonical file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Tiff => "tif",
            Self::Svg => "svg",
        }
    }

    /// The longest side the format holds, px: JPEG 65500 (libjpeg's limit), WebP 16383;
    /// PNG, TIFF and SVG have none Opossum's own caps do not already set.
    pub fn max_side_px(self) -> Option<u32> {
        match self {
            Self::Jpeg => Some(65_500),
            Self::Webp => Some(16_383),
            Self::Png | Self::Tiff | Self::Svg => None,
        }
    }

    /// An output of `size` this format cannot hold: the error naming `path`.
    pub fn check_size(self, size: Size, path: &Path) -> Result<()> {
        match self.max_side_px() {
            Some(max) if size.width > max || size.height > max => Err(Error::OutputTooLarge {
                format: self.name(),
                width: size.width,
                height: size.height,
                max_side_px: max,
                path: path.to_path_buf(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether 16-bit samples can be written.
    pub fn supports_16_bit(self) -> bool {
        matches!(self, Self::Png | Self::Tiff)
    }
}

/// How to encode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncodeOptions {
    /// Container format.
    pub format: OutputFormat,
    /// Quality 1..=100 for JPEG and lossy WebP.
    pub quality: u8,
    /// WebP: lossless instead of lossy.
    pub lossless: bool,
}

/// Rendered pixels: RGBA, straight alpha, or opaque grey or RGB.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    /// RGBA, 8 bits per sample.
    U8(Vec<u8>),
    /// RGBA, 16 bits per sample.
    U16(Vec<u16>),
    /// Opaque grey, one 8-bit sample per pixel (what a chain that ends grey on the 8-bit
    /// kernels makes; reads as R = G = B, alpha 255).
    Grey8(Vec<u8>),
    /// Opaque RGB, three 8-bit samples per pixel (what a chain over an opaque 8-bit image
    /// that the 8-bit kernels finish makes: a quarter fewer bytes than RGBA, no alpha to drop).
    Rgb8(Vec<u8>),
}

/// A finished image ready to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputImage {
    /// Size in pixels.
    pub size: Size,
    /// Samples, row-major.
    pub pixels: Pixels,
}

impl OutputImage {
    /// Whether any pixel is not fully opaque.
    pub fn has_alpha(&self) -> bool {
        match &self.pixels {
            Pixels::U8(p) => p.chunks_exact(4).any(|px| px[3] != u8::MAX),
            Pixels::U16(p) => p.chunks_exact(4).any(|px| px[3] != u16::MAX),
            Pixels::Grey8(_) | Pixels::Rgb8(_) => false,
        }
    }

    /// 8-bit RGBA (16-bit samples rounded, grey as R = G = B, RGB with alpha 255).
    pub fn to_rgba8(&self) -> Vec<u8> {
        match &self.pixels {
            Pixels::U8(p) => p.clone(),
            Pixels::U16(p) => p.iter().map(|&v| super::rows::eight_bit(v)).collect(),
            Pixels::Grey8(p) => p.iter().flat_map(|&v| [v, v, v, u8::MAX]).collect(),
            Pixels::Rgb8(p) => p
                .chunks_exact(3)
                .flat_map(|px| [px[0], px[1], px[2], u8::MAX])
                .collect(),
        }
    }

    /// Whether every pixel is grey (R = G = B); alpha is not looked at.
    pub fn is_grey(&self) -> bool {
        match &self.pixels {
            Pixels::U8(p) => p.chunks_exact(4).all(|px| px[0] == px[1] && px[1] == px[2]),
            Pixels::U16(p) => p.chunks_exact(4).all(|px| px[0] == px[1] && px[1] == px[2]),
            Pixels::Rgb8(p) => p.chunks_exact(3).all(|px| px[0] == px[1] && px[1] == px[2]),
            Pixels::Grey8(_) => true,
        }
    }

    /// Copy red into green and blue: for a render known to be grey (its chain keeps a grey
    /// source grey), whose channels a colour matrix may have left a rounding apart.
    pub fn make_grey(&mut self) {
        fn copy_red<T: Copy>(pixels: &mut [T], channels: usize) {
            for px in pixels.chunks_exact_mut(channels) {
                px[1] = px[0];
                px[2] = px[0];
            }
        }
        match &mut self.pixels {
            Pixels::U8(p) => copy_red(p, 4),
            Pixels::U16(p) => copy_red(p, 4),
            Pixels::Rgb8(p) => copy_red(p, 3),
            Pixels::Grey8(_) => {}
        }
    }

    /// The same image as 8-bit RGBA if it is grey (for encoders without a grey mode, or an
    /// RGB ICC profile to keep); otherwise `None`.
    fn grey_as_rgba(&self) -> Option<OutputImage> {
        matches!(self.pixels, Pixels::Grey8(_)).then(|| OutputImage {
            size: self.size,
            pixels: Pixels::U8(self.to_rgba8()),
        })
    }
}

impl<'a> From<&'a Pixels> for RowsIn<'a> {
    fn from(pixels: &'a Pixels) -> Self {
        match pixels {
            Pixels::U8(p) => RowsIn::U8(p),
            Pixels::U16(p) => RowsIn::U16(p),
            Pixels::Grey8(p) => RowsIn::Grey8(p),
            Pixels::Rgb8(p) => RowsIn::Rgb8(p),
        }
    }
}

fn drop_alpha<T: Copy>(rgba: &[T]) -> Vec<T> {
    rgba.chunks_exact(4)
        .flat_map(|px| [px[0], px[1], px[2]])
        .collect()
}

fn u16_bytes(samples: &[u16]) -> Vec<u8> {
    samples.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Encode `image` to bytes, with the encoder effort of `preset`.
pub fn encode(
    image: &OutputImage,
    options: &EncodeOptions,
    icc_profile: Option<&[u8]>,
    preset: QualityPreset,
) -> std::result::Result<Vec<u8>, String> {
    puffin::profile_function!();
    // An ICC profile describes RGB: a grey image that must keep one is written as RGB.
    if icc_profile.is_some()
        && let Some(rgba) = image.grey_as_rgba()
    {
        return encode(&rgba, options, icc_profile, preset);
    }
    // An image whose every pixel is grey is written with one grey channel (WebP has no grey
    // mode), and alpha only where a pixel needs it: a grey scan stays grey, at 8 or 16 bits.
    // TIFF keeps RGBA for grey with alpha (the image crate cannot read such a TIFF back).
    let alpha = image.has_alpha();
    let grey = icc_profile.is_none()
        && options.format != OutputFormat::Webp
        && !(alpha && options.format == OutputFormat::Tiff)
        && !matches!(image.pixels, Pixels::Grey8(_))
        && image.is_grey();
    if grey && let Pixels::Rgb8(p) = &image.pixels {
        let grey8 = OutputImage {
            size: image.size,
            pixels: Pixels::Grey8(p.iter().step_by(3).copied().collect()),
        };
        return encode(&grey8, options, icc_profile, preset);
    }
    let (w, h) = (image.size.width, image.size.height);
    let mut out = Vec::new();
    match options.format {
        OutputFormat::Png | OutputFormat::Jpeg => {
            // One code path per format: the row encoders, writing every row at once.
            let shared = SharedVec::default();
            let sink: Box<dyn Write> = Box::new(shared.clone());
            let layout = match (&image.pixels, alpha, grey) {
                (Pixels::Grey8(_), _, _) | (_, false, true) => Layout::Grey,
                (Pixels::Rgb8(_), _, _) => Layout::PackedRgb,
                (_, true, true) => Layout::GreyAlpha,
                (_, true, false) => Layout::Rgba,
                (_, false, false) => Layout::Rgb,
            };
            let high = matches!(image.pixels, Pixels::U16(_));
            let mut encoder =
                stream_encoder(sink, image.size, options, layout, high, icc_profile, preset)?;
            encoder.write_rows((&image.pixels).into())?;
            encoder.finish()?;
            out = shared.take();
        }
        OutputFormat::Tiff => {
            let (bytes, color): (Cow<'_, [u8]>, _) = match (&image.pixels, alpha) {
                (Pixels::U8(p), false) if grey => (
                    p.iter().step_by(4).copied().collect::<Vec<_>>().into(),
                    ExtendedColorType::L8,
                ),
                (Pixels::U16(p), false) if grey => (
                    u16_bytes(&p.iter().step_by(4).copied().collect::<Vec<_>>()).into(),
                    ExtendedColorType::L16,
                ),
                (Pixels::U8(p), true) => (Cow::Borrowed(p), ExtendedColorType::Rgba8),
                (Pixels::U8(p), false) => (drop_alpha(p).into(), ExtendedColorType::Rgb8),
                (Pixels::U16(p), true) => (u16_bytes(p).into(), ExtendedColorType::Rgba16),
                (Pixels::U16(p), false) => {
                    (u16_bytes(&drop_alpha(p)).into(), ExtendedColorType::Rgb16)
                }
                (Pixels::Grey8(p), _) => (Cow::Borrowed(p), ExtendedColorType::L8),
                (Pixels::Rgb8(p), _) => (Cow::Borrowed(p), ExtendedColorType::Rgb8),
            };
            let mut cursor = Cursor::new(&mut out);
            let mut encoder = TiffEncoder::new(&mut cursor);
            if let Some(icc) = icc_profile {
                encoder
                    .set_icc_profile(icc.to_vec())
                    .map_err(|e| e.to_string())?;
            }
            encoder
                .write_image(&bytes, w, h, color)
                .map_err(|e| e.to_string())?;
        }
        OutputFormat::Svg => {
            return Err(
                "SVG output is traced from the whole render (Engine::render_file); it has no pixel encoder"
                    .to_owned(),
            );
        }
        OutputFormat::Webp => {
            if w > 16_383 || h > 16_383 {
                return Err(format!(
                    "WebP cannot hold {w}x{h} px (at most 16383 px per side); choose PNG, JPEG or TIFF"
                ));
            }
            // libwebp takes the RGBA or RGB samples as they are: an opaque RGBA image (no alpha
            // written) encodes to the same bytes as its RGB samples would, without making them.
            let converted;
            let (data, layout): (&[u8], _) = match &image.pixels {
                Pixels::U8(p) => (p, webp::PixelLayout::Rgba),
                Pixels::Rgb8(p) => (p, webp::PixelLayout::Rgb),
                Pixels::U16(_) | Pixels::Grey8(_) => {
                    converted = image.to_rgba8();
                    (&converted, webp::PixelLayout::Rgba)
                }
            };
            let encoder = webp::Encoder::new(data, layout, w, h);
            let mut config = webp::WebPConfig::new()
                .map_err(|()| "libwebp could not make an encoder configuration".to_owned())?;
            config.lossless = i32::from(options.lossless);
            config.alpha_compression = i32::from(!options.lossless);
            config.quality = if options.lossless {
                75.0
            } else {
                f32::from(options.quality.clamp(1, 100))
            };
            config.method = preset.webp_method();
            let encoded = encoder
                .encode_advanced(&config)
                .map_err(|e| format!("libwebp failed: {e:?}"))?;
            match icc_profile {
                Some(icc) => out = webp_with_icc(&encoded, icc, image.size, alpha)?,
                None => out.extend_from_slice(&encoded),
            }
        }
    }
    Ok(out)
}

/// `webp` (a RIFF file as libwebp writes it) with `icc` in an `ICCP` chunk: libwebp's
/// encoder takes no profile, and its mux library would be a second C API for one chunk. A
/// simple file (one `VP8 ` or `VP8L` chunk) gets the extended header (`VP8X`) that a profile
/// needs, saying alpha when `alpha`; an extended one gets its ICC flag set. The chunks are
/// otherwise copied as they are, in the order the WebP container specification gives.
fn webp_with_icc(
    webp: &[u8],
    icc: &[u8],
    size: Size,
    alpha: bool,
) -> std::result::Result<Vec<u8>, String> {
    const ICC_FLAG: u8 = 0x20;
    const ALPHA_FLAG: u8 = 0x10;
    let malformed = || "libwebp wrote a file whose chunks could not be read".to_owned();
    if webp.len() < 12 || &webp[..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return Err(malformed());
    }
    let chunk = |fourcc: &[u8; 4], payload: &[u8]| -> std::result::Result<Vec<u8>, String> {
        let len = u32::try_from(payload.len())
            .map_err(|_| "the ICC profile is too large for a WebP file".to_owned())?;
        let mut bytes = Vec::with_capacity(payload.len() + 9);
        bytes.extend_from_slice(fourcc);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            bytes.push(0);
        }
        Ok(bytes)
    };
    let mut body = &webp[12..];
    let mut chunks = Vec::new();
    while !body.is_empty() {
        if body.len() < 8 {
            return Err(malformed());
        }
        let len = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
        let end = 8 + len + len % 2;
        if body.len() < 8 + len {
            return Err(malformed());
        }
        chunks.push(&body[..end.min(body.len())]);
        body = &body[end.min(body.len())..];
    }
    let mut out = Vec::with_capacity(webp.len() + icc.len() + 32);
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    match chunks.first() {
        Some(first) if &first[..4] == b"VP8X" && first.len() >= 18 => {
            let mut header = first.to_vec();
            header[8] |= ICC_FLAG;
            out.extend_from_slice(&header);
            out.extend_from_slice(&chunk(b"ICCP", icc)?);
            for rest in &chunks[1..] {
                out.extend_from_slice(rest);
            }
        }
        Some(_) => {
            let mut header = [0u8; 10];
            header[0] = ICC_FLAG | if alpha { ALPHA_FLAG } else { 0 };
            header[4..7].copy_from_slice(&(size.width - 1).to_le_bytes()[..3]);
            header[7..10].copy_from_slice(&(size.height - 1).to_le_bytes()[..3]);
            out.extend_from_slice(&chunk(b"VP8X", &header)?);
            out.extend_from_slice(&chunk(b"ICCP", icc)?);
            for rest in &chunks {
                out.extend_from_slice(rest);
            }
        }
        None => return Err(malformed()),
    }
    let riff_len = u32::try_from(out.len() - 8)
        .map_err(|_| "the ICC profile is too large for a WebP file".to_owned())?;
    out[4..8].copy_from_slice(&riff_len.to_le_bytes());
    Ok(out)
}

/// A streaming encoder for a PNG or JPEG of `size` (PNG effort and JPEG chroma resolution
/// from `preset`).
pub fn stream_encoder(
    out: Box<dyn Write>,
    size: Size,
    options: &EncodeOptions,
    layout: Layout,
    high_bit_depth: bool,
    icc_profile: Option<&[u8]>,
    preset: QualityPreset,
) -> std::result::Result<Box<dyn RowEncoder>, String> {
    Ok(match options.format {
        OutputFormat::Jpeg => Box::new(JpegRowEncoder::new(
            out,
            size,
            options.quality,
            layout,
            icc_profile,
            preset.jpeg_full_chroma(),
        )?),
        _ => Box::new(PngRowEncoder::new(
            out,
            size,
            layout,
            high_bit_depth,
            icc_profile,
            preset.png_compression(),
        )?),
    })
}

/// A `Write` into a shared in-memory buffer (for encoding whole images to bytes).
#[derive(Clone, Default)]
struct SharedVec(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl SharedVec {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

impl Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encode (with the effort of `preset`) and write atomically to `path`.
pub fn write_image(
    path: &Path,
    image: &OutputImage,
    options: &EncodeOptions,
    icc_profile: Option<&[u8]>,
    preset: QualityPreset,
) -> Result<()> {
    let bytes = encode(image, options, icc_profile, preset).map_err(|reason| Error::Encode {
        reason,
        path: path.to_path_buf(),
    })?;
    puffin::profile_scope!("write");
    super::write_atomic(path, |w: &mut dyn Write| w.write_all(&bytes))
}

#[cfg(test)]
mod jpeg_chroma_tests {
    use super::*;

    /// The sampling factors byte of the first component in a baseline JPEG's SOF0 segment.
    fn luma_sampling(jpeg: &[u8]) -> u8 {
        let at = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a SOF0 marker");
        // Marker, length (2), precision, height (2), width (2), components, id, sampling.
        jpeg[at + 2 + 2 + 1 + 2 + 2 + 1 + 1]
    }

    /// An opaque image goes to libwebp as RGBA (no RGB copy) and still encodes to the bytes its
    /// RGB samples give, with no alpha chunk.
    #[test]
    fn opaque_webp_from_rgba_equals_webp_from_rgb() {
        let (w, h) = (61u32, 37u32);
        let rgba: Vec<u8> = (0..w * h * 4)
            .map(|i| {
                if i % 4 == 3 {
                    255
                } else {
                    (i * 37 % 251) as u8
                }
            })
            .collect();
        let image = OutputImage {
            size: Size::new(w, h),
            pixels: Pixels::U8(rgba.clone()),
        };
        let options = EncodeOptions {
            format: OutputFormat::Webp,
            quality: 85,
            lossless: false,
        };
        let ours = encode(&image, &options, None, QualityPreset::Balanced).unwrap();
        let rgb = drop_alpha(&rgba);
        let mut config = webp::WebPConfig::new().unwrap();
        config.quality = 85.0;
        config.alpha_compression = 1;
        config.method = QualityPreset::Balanced.webp_method();
        let reference = webp::Encoder::new(&rgb, webp::PixelLayout::Rgb, w, h)
            .encode_advanced(&config)
            .unwrap();
        assert!(ours == *reference, "RGBA and RGB imports differ");
        assert!(!ours.windows(4).any(|c| c == b"ALPH"));
    }

    /// A source's ICC profile is kept in WebP (lossy and lossless, with and without alpha),
    /// TIFF and JPEG, where the image crate reads it back, and the pixels are those of the
    /// same file without it.
    #[test]
    fn webp_tiff_and_jpeg_keep_the_icc_profile_and_the_pixels() {
        use image::ImageDecoder as _;
        let (w, h) = (29u32, 17u32);
        // An odd length, so WebP's chunk needs its padding byte, and more than one JPEG
        // marker holds.
        let icc: Vec<u8> = (0..150_001u32).map(|i| (i * 7 % 256) as u8).collect();
        for alpha in [false, true] {
            let rgba: Vec<u8> = (0..w * h * 4)
                .map(|i| match (i % 4, alpha) {
                    (3, false) => 255,
                    (3, true) => (i / 4 % 200 + 40) as u8,
                    _ => (i * 37 % 251) as u8,
                })
                .collect();
            let image = OutputImage {
                size: Size::new(w, h),
                pixels: Pixels::U8(rgba),
            };
            for (format, lossless) in [
                (OutputFormat::Webp, false),
                (OutputFormat::Webp, true),
                (OutputFormat::Tiff, false),
                (OutputFormat::Jpeg, false),
            ] {
                let case = format!("{format:?} lossless {lossless} alpha {alpha}");
                let options = EncodeOptions {
                    format,
                    quality: 80,
                    lossless,
                };
                let with = encode(&image, &options, Some(&icc), QualityPreset::Balanced).unwrap();
                let without = encode(&image, &options, None, QualityPreset::Balanced).unwrap();
                let decode = |bytes: &[u8]| -> (Option<Vec<u8>>, image::DynamicImage) {
                    let mut decoder: Box<dyn image::ImageDecoder> = match format {
                        OutputFormat::Webp => Box::new(
                            image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).unwrap(),
                        ),
                        OutputFormat::Jpeg => Box::new(
                            image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).unwrap(),
                        ),
                        _ => Box::new(
                            image::codecs::tiff::TiffDecoder::new(Cursor::new(bytes)).unwrap(),
                        ),
                    };
                    let icc = decoder.icc_profile().unwrap();
                    (icc, image::DynamicImage::from_decoder(decoder).unwrap())
                };
                let (kept, pixels) = decode(&with);
                assert_eq!(kept.as_deref(), Some(&icc[..]), "{case}");
                let (none, reference) = decode(&without);
                assert_eq!(none, None, "{case}");
                let kept_alpha = alpha && format != OutputFormat::Jpeg;
                assert_eq!(pixels.color().has_alpha(), kept_alpha, "{case}");
                assert_eq!(pixels, reference, "{case}");
            }
        }
    }

    /// Opaque RGB pixels (what the 8-bit kernels finish) are written as they are, to the same
    /// bytes as the same image in opaque RGBA, in every format.
    #[test]
    fn rgb_pixels_encode_to_the_bytes_of_their_opaque_rgba() {
        let (w, h) = (45u32, 23u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 53 % 253) as u8).collect();
        let as_rgb = OutputImage {
            size: Size::new(w, h),
            pixels: Pixels::Rgb8(rgb.clone()),
        };
        let rgba = as_rgb.to_rgba8();
        assert_eq!(drop_alpha(&rgba), rgb);
        let as_rgba = OutputImage {
            size: as_rgb.size,
            pixels: Pixels::U8(rgba),
        };
        assert!(!as_rgb.has_alpha());
        for format in [
            OutputFormat::Png,
            OutputFormat::Jpeg,
            OutputFormat::Tiff,
            OutputFormat::Webp,
        ] {
            for lossless in [false, true] {
                let options = EncodeOptions {
                    format,
                    quality: 80,
                    lossless,
                };
                let ours = encode(&as_rgb, &options, None, QualityPreset::High).unwrap();
                let reference = encode(&as_rgba, &options, None, QualityPreset::High).unwrap();
                assert!(ours == reference, "{format:?} lossless {lossless}");
                let decoded = image::load_from_memory(&ours).unwrap();
                assert_eq!(decoded.color().channel_count(), 3, "{format:?}");
            }
        }
    }

    #[test]
    fn ultra_and_high_keep_full_chroma_others_halve_it() {
        let dir = tempfile::tempdir().unwrap();
        let size = Size::new(32, 16);
        let rgba: Vec<u8> = (0..32 * 16 * 4).map(|i| (i * 7 % 256) as u8).collect();
        for (preset, expected) in [
            (QualityPreset::Ultra, 0x11),
            (QualityPreset::High, 0x11),
            (QualityPreset::Balanced, 0x22),
            (QualityPreset::Draft, 0x22),
        ] {
            let path = dir.path().join(format!("{preset:?}.jpg"));
            let file = std::fs::File::create(&path).unwrap();
            let options = EncodeOptions {
                format: OutputFormat::Jpeg,
                quality: 85,
                lossless: false,
            };
            let mut encoder = stream_encoder(
                Box::new(file),
                size,
                &options,
                Layout::Rgb,
                false,
                None,
                preset,
            )
            .unwrap();
            encoder.write_rows(RowsIn::U8(&rgba)).unwrap();
            encoder.finish().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(luma_sampling(&bytes), expected, "{preset:?}");
            assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 32);
        }
    }
}
