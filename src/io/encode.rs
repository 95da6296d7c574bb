//! Encoding the rendered pixels: PNG, JPEG (quality), WebP lossy (quality, libwebp) and
//! lossless, TIFF; 16-bit where the format allows and the source had it; alpha dropped when
//! every pixel is opaque; JPEG flattens transparency over white. Always written atomically.

use std::io::{Cursor, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::tiff::TiffEncoder;
use image::{ExtendedColorType, ImageEncoder as _};

use crate::engine::geom::Size;
use crate::error::{Error, Result};

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
}

impl OutputFormat {
    /// Parse a format name or file extension (`png`, `jpg`, `jpeg`, `webp`, `tif`, `tiff`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "png" => Some(Self::Png),
            "jpg" | "jpeg" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            "tif" | "tiff" => Some(Self::Tiff),
            _ => None,
        }
    }

    /// The format for `path`'s extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Self::from_name)
    }

    /// Canonical file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Tiff => "tif",
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

/// Rendered pixels, RGBA, straight alpha.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    /// 8 bits per sample.
    U8(Vec<u8>),
    /// 16 bits per sample.
    U16(Vec<u16>),
}

/// A finished image ready to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputImage {
    /// Size in pixels.
    pub size: Size,
    /// RGBA samples, row-major.
    pub pixels: Pixels,
}

impl OutputImage {
    /// Whether any pixel is not fully opaque.
    pub fn has_alpha(&self) -> bool {
        match &self.pixels {
            Pixels::U8(p) => p.chunks_exact(4).any(|px| px[3] != u8::MAX),
            Pixels::U16(p) => p.chunks_exact(4).any(|px| px[3] != u16::MAX),
        }
    }

    /// 8-bit RGBA (16-bit samples rounded).
    pub fn to_rgba8(&self) -> Vec<u8> {
        match &self.pixels {
            Pixels::U8(p) => p.clone(),
            Pixels::U16(p) => p
                .iter()
                .map(|&v| ((u32::from(v) * 255 + 32_767) / 65_535) as u8)
                .collect(),
        }
    }
}

/// 8-bit RGB, compositing any transparency over `background`.
fn flatten_rgb8(rgba: &[u8], background: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        for c in 0..3 {
            let v = (u32::from(px[c]) * a + u32::from(background[c]) * (255 - a) + 127) / 255;
            out.push(v as u8);
        }
    }
    out
}

fn drop_alpha<T: Copy>(rgba: &[T]) -> Vec<T> {
    rgba.chunks_exact(4)
        .flat_map(|px| [px[0], px[1], px[2]])
        .collect()
}

fn u16_bytes(samples: &[u16]) -> Vec<u8> {
    samples.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Encode `image` to bytes.
pub fn encode(
    image: &OutputImage,
    options: &EncodeOptions,
    icc_profile: Option<&[u8]>,
) -> std::result::Result<Vec<u8>, String> {
    puffin::profile_function!();
    let (w, h) = (image.size.width, image.size.height);
    let alpha = image.has_alpha();
    let mut out = Vec::new();
    match options.format {
        OutputFormat::Jpeg => {
            let rgb = flatten_rgb8(&image.to_rgba8(), [255, 255, 255]);
            let mut enc = JpegEncoder::new_with_quality(&mut out, options.quality.clamp(1, 100));
            if let Some(icc) = icc_profile {
                let _ = enc.set_icc_profile(icc.to_vec());
            }
            enc.write_image(&rgb, w, h, ExtendedColorType::Rgb8)
                .map_err(|e| e.to_string())?;
        }
        OutputFormat::Png | OutputFormat::Tiff => {
            let (bytes, color) = match (&image.pixels, alpha) {
                (Pixels::U8(p), true) => (p.clone(), ExtendedColorType::Rgba8),
                (Pixels::U8(p), false) => (drop_alpha(p), ExtendedColorType::Rgb8),
                (Pixels::U16(p), true) => (u16_bytes(p), ExtendedColorType::Rgba16),
                (Pixels::U16(p), false) => (u16_bytes(&drop_alpha(p)), ExtendedColorType::Rgb16),
            };
            if options.format == OutputFormat::Png {
                let mut enc = PngEncoder::new_with_quality(
                    &mut out,
                    CompressionType::Fast,
                    FilterType::Adaptive,
                );
                if let Some(icc) = icc_profile {
                    let _ = enc.set_icc_profile(icc.to_vec());
                }
                enc.write_image(&bytes, w, h, color)
                    .map_err(|e| e.to_string())?;
            } else {
                let mut cursor = Cursor::new(&mut out);
                TiffEncoder::new(&mut cursor)
                    .write_image(&bytes, w, h, color)
                    .map_err(|e| e.to_string())?;
            }
        }
        OutputFormat::Webp => {
            if w > 16_383 || h > 16_383 {
                return Err(format!(
                    "WebP cannot hold {w}x{h} px (at most 16383 px per side); choose PNG, JPEG or TIFF"
                ));
            }
            let rgba = image.to_rgba8();
            let (data, layout) = if alpha {
                (rgba, webp::PixelLayout::Rgba)
            } else {
                (drop_alpha(&rgba), webp::PixelLayout::Rgb)
            };
            let encoder = webp::Encoder::new(&data, layout, w, h);
            let encoded = if options.lossless {
                encoder.encode_lossless()
            } else {
                encoder.encode(f32::from(options.quality.clamp(1, 100)))
            };
            out.extend_from_slice(&encoded);
        }
    }
    Ok(out)
}

/// Encode and write atomically to `path`.
pub fn write_image(
    path: &Path,
    image: &OutputImage,
    options: &EncodeOptions,
    icc_profile: Option<&[u8]>,
) -> Result<()> {
    let bytes = encode(image, options, icc_profile).map_err(|reason| Error::Encode {
        reason,
        path: path.to_path_buf(),
    })?;
    puffin::profile_scope!("write");
    super::write_atomic(path, |w: &mut dyn Write| w.write_all(&bytes))
}
