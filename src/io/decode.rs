//! Decoding by content (never by extension), with the pixel caps and the memory budget checked
//! against the header's declared size *before* any pixel buffer is allocated.

use std::io::BufReader;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use crate::engine::geom::Size;
use crate::error::{Error, Result};

/// Everything an image's metadata (ICC profile, text chunks) may inflate to.
pub const METADATA_CAP_BYTES: u64 = 16 << 20;

/// Limits applied while decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels in one image (hard cap).
    pub max_pixels: u64,
    /// Longest side in pixels (hard cap).
    pub max_side_px: u32,
    /// Most bytes the decoded image may occupy.
    pub max_alloc_bytes: u64,
    /// ICC profiles larger than this are ignored.
    pub max_icc_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 1 << 30,
            max_side_px: 65_535,
            max_alloc_bytes: 1 << 30,
            max_icc_bytes: 4 << 20,
        }
    }
}

/// How the decoded pixels must be turned to display upright (from EXIF).
pub type Orientation = image::metadata::Orientation;

/// A decoded image and what was learned about it.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels as stored (before orientation).
    pub image: DynamicImage,
    /// The container format found by content.
    pub format: ImageFormat,
    /// EXIF orientation to apply.
    pub orientation: Orientation,
    /// The embedded ICC profile, if small enough.
    pub icc_profile: Option<Vec<u8>>,
}

impl Decoded {
    /// Stored size (before orientation).
    pub fn size(&self) -> Size {
        Size::new(self.image.width(), self.image.height())
    }

    /// Whether samples have more than 8 bits.
    pub fn is_high_bit_depth(&self) -> bool {
        self.image.color().bytes_per_pixel() / self.image.color().channel_count() > 1
    }
}

/// What the header says, learned without decoding pixels.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Container format (by content).
    pub format: ImageFormat,
    /// Stored size.
    pub size: Size,
    /// EXIF orientation.
    pub orientation: Orientation,
    /// Embedded ICC profile, if small enough.
    pub icc_profile: Option<Vec<u8>>,
    /// Whether pixels carry alpha.
    pub has_alpha: bool,
    /// Whether pixels are grey (one channel, plus alpha if any).
    pub grey: bool,
    /// Whether samples have more than 8 bits.
    pub high_bit_depth: bool,
    /// Bytes per pixel of a whole decode.
    pub bytes_per_pixel: u64,
}

impl Probe {
    /// Whether a whole decode gives opaque 8-bit grey or RGB samples (no alpha, 8 bits).
    pub fn is_opaque_8bit(&self) -> bool {
        !self.has_alpha && !self.high_bit_depth
    }
}

/// Read the header of `path` and check its size against the pixel caps (not the memory
/// budget: a streaming render may not need the whole image in memory).
pub fn probe_details(path: &Path, limits: &DecodeLimits) -> Result<Probe> {
    puffin::profile_function!();
    let (format, mut decoder) = open_decoder(path)?;
    read_header(path, format, &mut decoder, limits)
}

/// Open `path` and pick its decoder by content.
fn open_decoder(path: &Path) -> Result<(ImageFormat, impl ImageDecoder)> {
    let mut reader = open(path)?;
    let Some(format) = reader.format() else {
        return Err(unknown_format(path));
    };
    if format == ImageFormat::Png {
        // The PNG decoder inflates the ICC profile and text chunks while it reads the header,
        // bounded only by its allocation limit (and a profile over it is dropped silently):
        // the metadata cap, not the pixel budget, so a small file cannot inflate gigabytes.
        // Pixels are allocated under `decode_file`'s own limits; the PNG decoder itself
        // reserves one row from this one.
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(METADATA_CAP_BYTES);
        reader.limits(limits);
    }
    let decoder = reader.into_decoder().map_err(|e| decode_error(e, path))?;
    Ok((format, decoder))
}

/// What `decoder` says about the image, with the size checked against the pixel caps (the
/// memory budget is the caller's concern: streaming renders need less than a whole decode).
fn read_header(
    path: &Path,
    format: ImageFormat,
    decoder: &mut impl ImageDecoder,
    limits: &DecodeLimits,
) -> Result<Probe> {
    let (w, h) = decoder.dimensions();
    let color = decoder.color_type();
    let size = Size::new(w, h);
    let unlimited = DecodeLimits {
        max_alloc_bytes: u64::MAX,
        ..*limits
    };
    check_declared(size, u64::from(color.bytes_per_pixel()), &unlimited, path)?;
    let icc_profile = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|icc| icc.len() <= limits.max_icc_bytes);
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok(Probe {
        format,
        size,
        orientation,
        icc_profile,
        has_alpha: color.has_alpha(),
        grey: color.channel_count() <= 2,
        high_bit_depth: color.bytes_per_pixel() / color.channel_count() > 1,
        bytes_per_pixel: u64::from(color.bytes_per_pixel()),
    })
}

/// Map a decoder error to our categories.
fn decode_error(err: ImageError, path: &Path) -> Error {
    let path = path.to_path_buf();
    match err {
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Error::Corrupt {
            reason: "the file ends early (truncated)".to_owned(),
            path,
        },
        ImageError::IoError(e) => Error::Io {
            action: "reading the image",
            source: e,
            path,
        },
        // A format Opossum reads, in a variant its decoder does not (a float TIFF).
        ImageError::Unsupported(e) => Error::UnsupportedVariant {
            reason: tidy_decoder_text(&e.to_string()),
            path,
        },
        ImageError::Limits(e) => Error::TooLarge {
            reason: format!(
                "the image exceeds a decoding limit ({})",
                tidy_decoder_text(&e.to_string())
            ),
            path,
        },
        ImageError::Decoding(e) => Error::Corrupt {
            reason: tidy_decoder_text(&e.to_string()),
            path,
        },
        other => Error::Corrupt {
            reason: tidy_decoder_text(&other.to_string()),
            path,
        },
    }
}

/// A decoder's message as one readable line: the format named as users know it, Rust debug
/// output (`ChunkType { type: IdAT, … }`) reduced to the name, colour types the TIFF decoder
/// calls `Unknown(n)` explained, and no line breaks (a batch prints one line per file).
fn tidy_decoder_text(text: &str) -> String {
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for (theirs, ours) in [
        ("Png", "PNG"),
        ("Jpeg", "JPEG"),
        ("WebP", "WebP"),
        ("Tiff", "TIFF"),
        ("Gif", "GIF"),
        ("Bmp", "BMP"),
    ] {
        text = text.replace(
            &format!("Format error decoding {theirs}:"),
            &format!("{ours}:"),
        );
        text = text.replace(
            &format!("The encoder or decoder for {theirs} does not support"),
            &format!("the {ours} decoder does not support"),
        );
    }
    // `ChunkType { type: IdAT, critical: true, … }` → `chunk "IdAT"`.
    while let Some(start) = text.find("ChunkType { type: ") {
        let rest = &text[start + "ChunkType { type: ".len()..];
        let (Some(comma), Some(close)) = (rest.find(','), rest.find('}')) else {
            break;
        };
        let name = rest[..comma.min(close)].trim().to_owned();
        let end = start + "ChunkType { type: ".len() + close + 1;
        text.replace_range(start..end, &format!("chunk \"{name}\""));
    }
    // `the color type `Unknown(32)``: samples the decoder cannot read (e.g. floating point).
    const UNKNOWN: &str = "the color type `Unknown(";
    if let Some(start) = text.find(UNKNOWN)
        && let Some(len) = text[start..].find(")`")
    {
        let bits = text[start + UNKNOWN.len()..start + len].to_owned();
        text.replace_range(
            start..start + len + 2,
            &format!(
                "this layout of {bits}-bit pixels (such as grey with alpha, or floating-point \
                 samples)"
            ),
        );
    }
    if text.contains("Not enough bytes") {
        return "the file ends early (truncated)".to_owned();
    }
    text
}

fn unknown_format(path: &Path) -> Error {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(" (the name ends in .{e}, but the content is not an image)"))
        .unwrap_or_default();
    Error::UnknownFormat {
        detail: ext,
        path: path.to_path_buf(),
    }
}

fn open(path: &Path) -> Result<ImageReader<BufReader<std::fs::File>>> {
    let meta = super::check_regular_file(path, "reading the image")?;
    if meta.len() == 0 {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io("reading the image", path, e))?;
    ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| Error::io("reading the image", path, e))
}

/// Check a declared size against the caps and the memory budget.
pub fn check_declared(
    size: Size,
    bytes_per_pixel: u64,
    limits: &DecodeLimits,
    path: &Path,
) -> Result<()> {
    if size.is_empty() {
        return Err(Error::Corrupt {
            reason: format!("the header declares a {}x{} image", size.width, size.height),
            path: path.to_path_buf(),
        });
    }
    if size.width > limits.max_side_px || size.height > limits.max_side_px {
        return Err(Error::TooLarge {
            reason: format!(
                "the image declares {}x{} px; the longest side allowed is {} px",
                size.width, size.height, limits.max_side_px
            ),
            path: path.to_path_buf(),
        });
    }
    if size.pixels() > limits.max_pixels {
        return Err(Error::TooLarge {
            reason: format!(
                "the image declares {}x{} px ({}); at most {} are allowed",
                size.width,
                size.height,
                crate::error::human_pixels(size.pixels()),
                crate::error::human_pixels(limits.max_pixels)
            ),
            path: path.to_path_buf(),
        });
    }
    let needed_bytes = size.pixels() * bytes_per_pixel;
    if needed_bytes > limits.max_alloc_bytes {
        return Err(Error::Budget {
            what: format!(
                "decoding {}x{} px ({})",
                size.width,
                size.height,
                path.display()
            ),
            needed_bytes,
            limit_bytes: limits.max_alloc_bytes,
        });
    }
    Ok(())
}

/// Decode the first frame of the image at `path`.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<Decoded> {
    puffin::profile_function!();
    let (format, mut decoder) = open_decoder(path)?;
    let probe = read_header(path, format, &mut decoder, limits)?;
    check_declared(probe.size, probe.bytes_per_pixel, limits, path)?;
    // zune-jpeg fills a truncated scan with grey and reports success; a file that ends early
    // (a half-written download, a watch folder's file still being copied) is an error instead,
    // as on the streaming path.
    if format == image::ImageFormat::Jpeg && !super::rows::jpeg_is_complete(path)? {
        return Err(Error::Corrupt {
            reason: "the file ends early (truncated)".to_owned(),
            path: path.to_path_buf(),
        });
    }
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side_px);
    image_limits.max_image_height = Some(limits.max_side_px);
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    decoder
        .set_limits(image_limits)
        .map_err(|e| decode_error(e, path))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e, path))?;
    Ok(Decoded {
        image,
        format,
        orientation: probe.orientation,
        icc_profile: probe.icc_profile,
    })
}

#[cfg(test)]
mod tests {
    use super::tidy_decoder_text;

    #[test]
    fn decoder_messages_become_one_readable_line() {
        assert_eq!(
            tidy_decoder_text(
                "Format error decoding Png: Unrecognized critical chunk: ChunkType { type: IdAT, \
                 critical: true, private: true, reserved: false, safecopy: false }"
            ),
            "PNG: Unrecognized critical chunk: chunk \"IdAT\""
        );
        assert_eq!(
            tidy_decoder_text(
                "The encoder or decoder for Tiff does not support the color type `Unknown(32)`"
            ),
            "the TIFF decoder does not support this layout of 32-bit pixels (such as grey with \
             alpha, or floating-point samples)"
        );
        assert_eq!(
            tidy_decoder_text(
                "Format error decoding Jpeg: I/O errors Not enough bytes, expected 1 but found 0\n"
            ),
            "the file ends early (truncated)"
        );
        assert_eq!(tidy_decoder_text("plain\ntext  here\n"), "plain text here");
    }
}
