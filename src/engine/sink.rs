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
    /// This sink as an 8-bit output buffer, for renders that write bytes directly.
    fn as_output_u8(&self) -> Option<&OutputSink> {
        None
    }
}

/// Quantise working values into an RGBA buffer of 8 or 16 bits.
///
/// Workers quantise their tiles straight into the buffer, in parallel and without a lock: the
/// tiles of one render are disjoint rectangles (`Rect::grid`), so their writes never overlap.
/// (Quantising into a per-thread buffer and copying it in under a lock, as before, spent a
/// fifth of a pointwise render in the copy and serialised the page faults of a fresh buffer.)
pub struct OutputSink {
    size: Size,
    /// Image position of the sink's first pixel (non-zero for a band or a region).
    origin: (u32, u32),
    /// The buffer, written only through `base` until [`finish`](Self::finish).
    pixels: Pixels,
    base: Base,
    /// Rectangles written so far (debug builds check that no two overlap).
    #[cfg(debug_assertions)]
    written: Mutex<Vec<Rect>>,
}

/// Where `OutputSink::pixels`' samples start.
#[derive(Clone, Copy)]
enum Base {
    U8(*mut u8),
    U16(*mut u16),
}

// SAFETY: the raw pointers point into `pixels`, which the sink owns; `put` only writes rows of
// rectangles inside the image, and concurrent puts write disjoint rectangles (see above).
unsafe impl Sync for OutputSink {}
unsafe impl Send for OutputSink {}

impl OutputSink {
    /// A sink for an image of `size`, 16-bit when `high_bit_depth`. Crate-private: its writers
    /// rely on the engine's renders putting disjoint tiles (see the type's docs).
    pub(crate) fn new(size: Size, high_bit_depth: bool) -> Self {
        let n = size.pixels() as usize * CHANNELS;
        // The buffers' heap memory stays where it is when the vectors move into `pixels`.
        let (pixels, base) = if high_bit_depth {
            let mut p = vec![0u16; n];
            let base = Base::U16(p.as_mut_ptr());
            (Pixels::U16(p), base)
        } else {
            let mut p = vec![0u8; n];
            let base = Base::U8(p.as_mut_ptr());
            (Pixels::U8(p), base)
        };
        Self {
            size,
            origin: (0, 0),
            pixels,
            base,
            #[cfg(debug_assertions)]
            written: Mutex::new(Vec::new()),
        }
    }

    /// A sink for the part `region` of an image (a band of a streamed image, or the visible
    /// part of a preview).
    pub(crate) fn for_region(region: Rect, high_bit_depth: bool) -> Self {
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
            pixels: self.pixels,
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

/// Quantise working values to 8 bits (vectorised per instruction set; same results on each).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
pub(crate) fn quantize_u8(src: &[f32], dst: &mut [u8]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = to_u8(v);
    }
}

/// Quantise working values to 16 bits.
fn quantize_u16(src: &[f32], dst: &mut [u16]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = to_u16(v);
    }
}

impl OutputSink {
    /// `rect` (image coordinates) relative to the buffer, checked to lie inside it and (in
    /// debug builds) not to overlap an earlier one.
    fn claim(&self, rect: Rect) -> Rect {
        // The bounds the writes rely on (not a debug check: they guard memory), in arithmetic
        // that cannot wrap.
        let inside = |at: u32, origin: u32, len: u32, size: u32| {
            at.checked_sub(origin)
                .filter(|&off| u64::from(off) + u64::from(len) <= u64::from(size))
        };
        let (Some(x), Some(y)) = (
            inside(rect.x, self.origin.0, rect.width, self.size.width),
            inside(rect.y, self.origin.1, rect.height, self.size.height),
        ) else {
            panic!(
                "tile {rect:?} outside the {}x{} output at {:?}",
                self.size.width, self.size.height, self.origin
            );
        };
        let local = Rect::new(x, y, rect.width, rect.height);
        #[cfg(debug_assertions)]
        {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            assert!(
                written.iter().all(|w| w.intersect(local).is_empty()),
                "tile {rect:?} written twice"
            );
            written.push(local);
        }
        local
    }

    /// Write the 8-bit RGBA rows of `rect` (image coordinates): `fill(y, row)` for each row `y`
    /// from the top of `rect`. No-op for a 16-bit sink.
    pub(crate) fn put_rows_u8(&self, rect: Rect, mut fill: impl FnMut(usize, &mut [u8])) {
        let Base::U8(base) = self.base else {
            unreachable!("8-bit rows put into a 16-bit sink ({rect:?})");
        };
        if rect.is_empty() {
            return;
        }
        let local = self.claim(rect);
        for y in 0..local.height as usize {
            // SAFETY: `local` was claimed above; the buffer is 8-bit.
            fill(y, unsafe { row_of(base, self.size.width, local, y) });
        }
    }
}

/// Row `y` of `local` (a claimed rectangle) of a `width`-px RGBA buffer at `base`.
///
/// # Safety
/// `local` must come from [`OutputSink::claim`] (inside the buffer, written by one caller only)
/// and `base` must be that sink's buffer of `T`, alive for `'a`.
unsafe fn row_of<'a, T>(base: *mut T, width: u32, local: Rect, y: usize) -> &'a mut [T] {
    let start = ((local.y as usize + y) * width as usize + local.x as usize) * CHANNELS;
    // SAFETY: see the function's contract.
    unsafe { std::slice::from_raw_parts_mut(base.add(start), local.width as usize * CHANNELS) }
}

impl TileSink for OutputSink {
    fn put(&self, tile: &Tile) {
        if tile.rect.is_empty() {
            return;
        }
        let local = self.claim(tile.rect);
        let width = self.size.width;
        for y in 0..local.height as usize {
            let src = tile.row(y);
            // SAFETY: `local` was claimed above, and `base` matches the buffer's type.
            match self.base {
                Base::U8(base) => quantize_u8(src, unsafe { row_of(base, width, local, y) }),
                Base::U16(base) => quantize_u16(src, unsafe { row_of(base, width, local, y) }),
            }
        }
    }

    fn as_output_u8(&self) -> Option<&OutputSink> {
        matches!(self.base, Base::U8(_)).then_some(self)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_outside_the_sink_is_refused_not_written() {
        let sink = OutputSink::for_region(Rect::new(100, 0, 50, 10), false);
        sink.put(&Tile::new(Rect::new(120, 2, 30, 8)));
        for outside in [
            Rect::new(90, 0, 16, 10), // left of the origin (wrapped past the check before)
            Rect::new(140, 0, 11, 10), // past the right edge
            Rect::new(100, 5, 10, 6), // past the bottom
        ] {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sink.put(&Tile::new(outside));
            }));
            assert!(caught.is_err(), "{outside:?} accepted");
        }
    }
}
