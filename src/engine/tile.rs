//! A rectangle of working pixels: RGBA, 32-bit float, straight (not premultiplied) alpha,
//! sRGB-encoded values nominally in `0.0..=1.0`.
//!
//! Why f32 RGBA for every op: one layout keeps each kernel written once (no per-format copies,
//! the bug class oculante's per-format arms invite), 16-bit sources keep their precision, and
//! the inner loops over `[f32]` auto-vectorise. Tiles are small (a few MiB), so the 4× size
//! over 8-bit costs cache, not memory.

use std::cell::RefCell;

use super::geom::Rect;

/// Channels per pixel.
pub const CHANNELS: usize = 4;

/// Working pixels of one rectangle of an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    /// Where these pixels sit in their stage's image.
    pub rect: Rect,
    /// `rect.width * rect.height * 4` values, row-major RGBA.
    pub data: Vec<f32>,
}

/// Buffers of dropped tiles, per thread, for the next tiles to reuse: a render allocates a few
/// tile-sized buffers per stage and tile, and fresh ones cost page faults and zeroing (a sixth
/// of a batch's time, measured with `perf`). Bounded, so a thread keeps at most this much.
const POOL_BYTES_PER_THREAD: usize = 24 << 20;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of at least `n` floats from this thread's pool (smallest that fits), with
/// unspecified contents and length `n`.
fn pooled(n: usize) -> Vec<f32> {
    let reused = POOL
        .try_with(|pool| {
            let mut pool = pool.try_borrow_mut().ok()?;
            let best = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= n)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i)?;
            Some(pool.swap_remove(best))
        })
        .ok()
        .flatten();
    match reused {
        Some(mut v) => {
            if v.len() >= n {
                v.truncate(n);
            } else {
                v.resize(n, 0.0);
            }
            v
        }
        None => vec![0.0; n],
    }
}

impl Drop for Tile {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.data);
        let bytes = v.capacity() * 4;
        if bytes == 0 || bytes > POOL_BYTES_PER_THREAD {
            return;
        }
        let _ = POOL.try_with(|pool| {
            let Ok(mut pool) = pool.try_borrow_mut() else {
                return;
            };
            let mut held: usize = pool.iter().map(|b| b.capacity() * 4).sum();
            // Make room by dropping the smallest buffers (the largest are the most useful).
            while held + bytes > POOL_BYTES_PER_THREAD && !pool.is_empty() {
                let smallest = (0..pool.len())
                    .min_by_key(|&i| pool[i].capacity())
                    .unwrap_or(0);
                held -= pool.swap_remove(smallest).capacity() * 4;
            }
            pool.push(v);
        });
    }
}

impl Tile {
    /// A tile of `rect` filled with zeros (transparent black).
    pub fn new(rect: Rect) -> Self {
        let mut data = pooled(rect.pixels() as usize * CHANNELS);
        data.fill(0.0);
        Self { rect, data }
    }

    /// A tile of `rect` whose values are unspecified (left over from an earlier tile of this
    /// thread), for code that writes every value: saves zeroing it.
    pub fn scratch(rect: Rect) -> Self {
        Self {
            rect,
            data: pooled(rect.pixels() as usize * CHANNELS),
        }
    }

    /// The same pixels, placed at `rect` (same size).
    pub fn with_rect(mut self, rect: Rect) -> Self {
        debug_assert_eq!(
            (rect.width, rect.height),
            (self.rect.width, self.rect.height)
        );
        self.rect = rect;
        self
    }

    /// Floats per row.
    pub fn stride(&self) -> usize {
        self.rect.width as usize * CHANNELS
    }

    /// Row `y` (relative to the tile's top).
    pub fn row(&self, y: usize) -> &[f32] {
        let s = self.stride();
        &self.data[y * s..(y + 1) * s]
    }

    /// Row `y` (relative to the tile's top), mutable.
    pub fn row_mut(&mut self, y: usize) -> &mut [f32] {
        let s = self.stride();
        &mut self.data[y * s..(y + 1) * s]
    }

    /// The RGBA pixel at image coordinates clamped to this tile's rectangle: the edge-extension
    /// rule every area kernel uses. Because a tile's input rectangle is its output grown by the
    /// halo and clipped to the image, clamping to the tile is clamping to the image.
    #[inline]
    pub fn clamped(&self, x: i64, y: i64) -> [f32; 4] {
        let cx = x.clamp(i64::from(self.rect.x), i64::from(self.rect.right()) - 1) as usize
            - self.rect.x as usize;
        let cy = y.clamp(i64::from(self.rect.y), i64::from(self.rect.bottom()) - 1) as usize
            - self.rect.y as usize;
        let i = (cy * self.rect.width as usize + cx) * CHANNELS;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }

    /// Copy the part of `src` that overlaps this tile into it.
    pub fn copy_from(&mut self, src: &Tile) {
        let overlap = self.rect.intersect(src.rect);
        if overlap.is_empty() {
            return;
        }
        let w = overlap.width as usize * CHANNELS;
        for y in overlap.y..overlap.bottom() {
            let s0 = ((y - src.rect.y) as usize * src.rect.width as usize
                + (overlap.x - src.rect.x) as usize)
                * CHANNELS;
            let d0 = ((y - self.rect.y) as usize * self.rect.width as usize
                + (overlap.x - self.rect.x) as usize)
                * CHANNELS;
            self.data[d0..d0 + w].copy_from_slice(&src.data[s0..s0 + w]);
        }
    }
}
