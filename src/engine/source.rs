//! Where a render reads its pixels: a decoded image in its stored format (converted to working
//! RGBA f32 one rectangle at a time, so the full image is never held as f32), or a full working
//! image (the materialised input of a global op).

use image::DynamicImage;

use super::geom::{Rect, Size};
use super::tile::{CHANNELS, Tile};

/// A readable image.
pub trait Source: Sync {
    /// Its size.
    fn size(&self) -> Size;
    /// Working pixels of `rect` (which lies inside the image).
    fn read(&self, rect: Rect) -> Tile;
    /// Bytes it occupies in memory (for the budget).
    fn bytes(&self) -> u64;
    /// Its samples, if it is 8-bit grey, RGB or RGBA in memory: (interleaved samples,
    /// channels: 1, 3 or 4).
    fn as_u8(&self) -> Option<(&[u8], usize)> {
        None
    }
    /// Whether it is opaque 8-bit grey or RGB in memory (what the 8-bit kernels read).
    fn is_opaque_8bit(&self) -> bool {
        matches!(self.as_u8(), Some((_, 1 | 3)))
    }
}

/// Convert `rect` of an interleaved buffer with `channels` samples per pixel into a tile.
/// 8-bit RGB samples to working RGBA (alpha 1).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn rgb8_to_working(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.chunks_exact_mut(CHANNELS).zip(src.chunks_exact(3)) {
        d[0] = u8_to_unit(s[0]);
        d[1] = u8_to_unit(s[1]);
        d[2] = u8_to_unit(s[2]);
        d[3] = 1.0;
    }
}

/// 8-bit RGBA samples to working RGBA.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn rgba8_to_working(src: &[u8], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = u8_to_unit(s);
    }
}

/// Convert `rect` of an interleaved 8-bit buffer, with fast paths for RGB and RGBA.
pub(crate) fn read_interleaved_u8(data: &[u8], width: u32, channels: usize, rect: Rect) -> Tile {
    if channels != 3 && channels != 4 {
        return read_interleaved(data, width, channels, rect, u8_to_unit);
    }
    // Every value is written below.
    let mut tile = Tile::scratch(rect);
    for y in 0..rect.height as usize {
        let row_start = ((rect.y as usize + y) * width as usize + rect.x as usize) * channels;
        let src = &data[row_start..row_start + rect.width as usize * channels];
        if channels == 3 {
            rgb8_to_working(src, tile.row_mut(y));
        } else {
            rgba8_to_working(src, tile.row_mut(y));
        }
    }
    tile
}

pub(crate) fn read_interleaved<T: Copy>(
    data: &[T],
    width: u32,
    channels: usize,
    rect: Rect,
    to_f32: impl Fn(T) -> f32,
) -> Tile {
    let mut tile = Tile::new(rect);
    for y in 0..rect.height as usize {
        let row_start = ((rect.y as usize + y) * width as usize + rect.x as usize) * channels;
        let src = &data[row_start..row_start + rect.width as usize * channels];
        let dst = tile.row_mut(y);
        match channels {
            1 => {
                for (d, &s) in dst.chunks_exact_mut(CHANNELS).zip(src) {
                    let v = to_f32(s);
                    d.copy_from_slice(&[v, v, v, 1.0]);
                }
            }
            2 => {
                for (d, s) in dst.chunks_exact_mut(CHANNELS).zip(src.chunks_exact(2)) {
                    let v = to_f32(s[0]);
                    d.copy_from_slice(&[v, v, v, to_f32(s[1])]);
                }
            }
            3 => {
                for (d, s) in dst.chunks_exact_mut(CHANNELS).zip(src.chunks_exact(3)) {
                    d.copy_from_slice(&[to_f32(s[0]), to_f32(s[1]), to_f32(s[2]), 1.0]);
                }
            }
            _ => {
                for (d, s) in dst.chunks_exact_mut(CHANNELS).zip(src.chunks_exact(4)) {
                    d.copy_from_slice(&[to_f32(s[0]), to_f32(s[1]), to_f32(s[2]), to_f32(s[3])]);
                }
            }
        }
    }
    tile
}

/// 8-bit sample to working value.
#[inline]
pub(crate) fn u8_to_unit(v: u8) -> f32 {
    f32::from(v) * (1.0 / 255.0)
}

impl Source for DynamicImage {
    fn size(&self) -> Size {
        Size::new(self.width(), self.height())
    }

    fn read(&self, rect: Rect) -> Tile {
        puffin::profile_scope!("read_source");
        let w = self.width();
        let from8 = u8_to_unit;
        let from16 = |v: u16| f32::from(v) / 65_535.0;
        let from32 = |v: f32| v;
        match self {
            DynamicImage::ImageLuma8(b) => read_interleaved(b.as_raw(), w, 1, rect, from8),
            DynamicImage::ImageLumaA8(b) => read_interleaved(b.as_raw(), w, 2, rect, from8),
            DynamicImage::ImageRgb8(b) => read_interleaved_u8(b.as_raw(), w, 3, rect),
            DynamicImage::ImageRgba8(b) => read_interleaved_u8(b.as_raw(), w, 4, rect),
            DynamicImage::ImageLuma16(b) => read_interleaved(b.as_raw(), w, 1, rect, from16),
            DynamicImage::ImageLumaA16(b) => read_interleaved(b.as_raw(), w, 2, rect, from16),
            DynamicImage::ImageRgb16(b) => read_interleaved(b.as_raw(), w, 3, rect, from16),
            DynamicImage::ImageRgba16(b) => read_interleaved(b.as_raw(), w, 4, rect, from16),
            DynamicImage::ImageRgb32F(b) => read_interleaved(b.as_raw(), w, 3, rect, from32),
            DynamicImage::ImageRgba32F(b) => read_interleaved(b.as_raw(), w, 4, rect, from32),
            other => {
                // Formats added to `image` later: convert (rare, costs a copy).
                let rgba = other.to_rgba32f();
                read_interleaved(rgba.as_raw(), w, 4, rect, from32)
            }
        }
    }

    fn bytes(&self) -> u64 {
        self.as_bytes().len() as u64
    }

    fn as_u8(&self) -> Option<(&[u8], usize)> {
        match self {
            DynamicImage::ImageLuma8(b) => Some((b.as_raw(), 1)),
            DynamicImage::ImageRgb8(b) => Some((b.as_raw(), 3)),
            DynamicImage::ImageRgba8(b) => Some((b.as_raw(), 4)),
            _ => None,
        }
    }
}

/// A whole image in working format (an intermediate of a render, or one shared with the
/// intermediate cache).
pub struct SharedTile(pub std::sync::Arc<Tile>);

impl Source for SharedTile {
    fn size(&self) -> Size {
        Size::new(self.0.rect.width, self.0.rect.height)
    }

    fn read(&self, rect: Rect) -> Tile {
        let mut t = Tile::new(rect);
        t.copy_from(&self.0);
        t
    }

    fn bytes(&self) -> u64 {
        self.0.data.len() as u64 * 4
    }
}
