//! Where finished tiles go: an 8- or 16-bit output buffer (quantised with rounding), or a full
//! working image (the input of a global op). Sinks are shared by the render workers.

use std::sync::Mutex;

use super::geom::{Rect, Size};
use super::tile::{CHANNELS, Tile};
use crate::io::encode::{OutputImage, Pixels};

/// Receives finished tiles from render workers (in any order).
pub trait TileSink: Sync {
    /// Store a finished tile.
    fn put(&self, tile: &Tile);
}

/// Quantise working values into an RGBA buffer of 8 or 16 bits.
pub struct OutputSink {
    size: Size,
    /// Image position of the sink's first pixel (non-zero for a band or a region).
    origin: (u32, u32),
    high_bit_depth: bool,
    pixels: Mutex<Pixels>,
}

impl OutputSink {
    /// A sink for an image of `size`, 16-bit when `high_bit_depth`.
    pub fn new(size: Size, high_bit_depth: bool) -> Self {
        let n = size.pixels() as usize * CHANNELS;
        let pixels = if high_bit_depth {
            Pixels::U16(vec![0; n])
        } else {
            Pixels::U8(vec![0; n])
        };
        Self {
            size,
            origin: (0, 0),
            high_bit_depth,
            pixels: Mutex::new(pixels),
        }
    }

    /// A sink for the part `region` of an image (a band of a streamed image, or the visible
    /// part of a preview).
    pub fn for_region(region: Rect, high_bit_depth: bool) -> Self {
        Self {
            origin: (region.x, region.y),
            ..Self::new(Size::new(region.width, region.height), high_bit_depth)
        }
    }

    /// Bytes an output of `size` needs.
    pub fn bytes_for(size: Size, high_bit_depth: bool) -> u64 {
        size.pixels() * CHANNELS as u64 * if high_bit_depth { 2 } else { 1 }
    }

    /// The finished image.
    pub fn finish(self) -> OutputImage {
        OutputImage {
            size: self.size,
            pixels: self.pixels.into_inner().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Round a working value to 8 bits.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    // max/min (not clamp) also map NaN to 0.
    #[allow(clippy::manual_clamp)] // `clamp` keeps NaN; this maps it to 0.
    let bounded = v.max(0.0).min(1.0);
    // A plain `as` saturates, which LLVM compiles to scalar compares per value (this loop
    // was 9% of a JPEG batch); the unchecked conversion is one vector instruction.
    // SAFETY: `bounded * 255 + 0.5` lies in 0.5..=255.5, which an i32 represents.
    unsafe { (bounded * 255.0 + 0.5).to_int_unchecked::<i32>() as u8 }
}

/// Round a working value to 16 bits.
#[inline]
pub fn to_u16(v: f32) -> u16 {
    #[allow(clippy::manual_clamp)] // `clamp` keeps NaN; this maps it to 0.
    let bounded = v.max(0.0).min(1.0);
    // SAFETY: `bounded * 65535 + 0.5` lies in 0.5..=65535.5, which an i32 represents.
    unsafe { (bounded * 65_535.0 + 0.5).to_int_unchecked::<i32>() as u16 }
}

/// Copy `local` (RGBA samples of `rect`, row-major) into an image buffer of `width` px.
fn copy_rows<T: Copy>(dst: &mut [T], width: usize, rect: Rect, local: &[T]) {
    // `rect.y` is relative to the sink's first row.
    let row_len = rect.width as usize * CHANNELS;
    if row_len == 0 {
        return;
    }
    for (y, row) in local.chunks_exact(row_len).enumerate() {
        let start = ((rect.y as usize + y) * width + rect.x as usize) * CHANNELS;
        dst[start..start + row_len].copy_from_slice(row);
    }
}

/// Quantise working values to 8 bits (vectorised per instruction set; same results on each).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn quantize_u8(src: &[f32], dst: &mut [u8]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = to_u8(v);
    }
}

thread_local! {
    /// Each worker's quantised tile, reused from tile to tile.
    static QUANTIZED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl TileSink for OutputSink {
    fn put(&self, tile: &Tile) {
        // Quantise outside the lock so workers only serialise on the row copies.
        let width = self.size.width as usize;
        let rect = Rect::new(
            tile.rect.x - self.origin.0,
            tile.rect.y - self.origin.1,
            tile.rect.width,
            tile.rect.height,
        );
        if self.high_bit_depth {
            let local: Vec<u16> = tile.data.iter().map(|&v| to_u16(v)).collect();
            if let Pixels::U16(p) = &mut *self.pixels.lock().unwrap_or_else(|e| e.into_inner()) {
                copy_rows(p, width, rect, &local);
            }
        } else {
            let quantized_into = |local: &mut Vec<u8>| {
                local.resize(tile.data.len(), 0);
                quantize_u8(&tile.data, local);
                if let Pixels::U8(p) = &mut *self.pixels.lock().unwrap_or_else(|e| e.into_inner()) {
                    copy_rows(p, width, rect, local);
                }
            };
            let reused = QUANTIZED.try_with(|q| match q.try_borrow_mut() {
                Ok(mut local) => {
                    quantized_into(&mut local);
                    true
                }
                Err(_) => false,
            });
            if reused != Ok(true) {
                quantized_into(&mut Vec::new());
            }
        }
    }
}

/// Collect a whole image in working format.
pub struct FullSink(pub Mutex<Tile>);

impl FullSink {
    /// A sink for an image of `size`.
    pub fn new(size: Size) -> Self {
        Self(Mutex::new(Tile::new(size.rect())))
    }

    /// The collected image.
    pub fn finish(self) -> Tile {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl TileSink for FullSink {
    fn put(&self, tile: &Tile) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .copy_from(tile);
    }
}
