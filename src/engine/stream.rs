//! Streaming sources: a sliding window of decoded rows, filled from a [`RowDecoder`] as the
//! banded renderer moves down the image, so peak memory depends on the image width and the
//! chain's reach, not on the image height.

use std::sync::RwLock;

use super::geom::{Rect, Size};
use super::source::{Source, read_interleaved, read_interleaved_u8};
use super::tile::Tile;
use crate::error::{Error, Result};
use crate::io::rows::{RowDecoder, RowLayout, RowOut};

enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

struct Window {
    /// Image row of the first row held.
    first_row: u32,
    /// Rows held.
    rows: u32,
    /// Rows decoded so far (the decoder's position).
    decoded: u32,
    samples: Samples,
}

/// The rows `first_row..first_row + rows` of an image, decoded on demand in order.
pub struct StreamSource {
    size: Size,
    layout: RowLayout,
    window: RwLock<Window>,
}

impl StreamSource {
    /// An empty window over an image of `size` with `layout` rows.
    pub fn new(size: Size, layout: RowLayout) -> Self {
        let samples = if layout.high_bit_depth {
            Samples::U16(Vec::new())
        } else {
            Samples::U8(Vec::new())
        };
        Self {
            size,
            layout,
            window: RwLock::new(Window {
                first_row: 0,
                rows: 0,
                decoded: 0,
                samples,
            }),
        }
    }

    /// Bytes a window of `rows` rows occupies.
    pub fn window_bytes(size: Size, layout: RowLayout, rows: u32) -> u64 {
        u64::from(size.width)
            * u64::from(rows)
            * layout.channels as u64
            * if layout.high_bit_depth { 2 } else { 1 }
    }

    /// Make rows `lo..hi` available: forget rows above `lo`, decode down to `hi`. Rows must be
    /// requested in non-decreasing order (the renderer checks this before streaming).
    pub fn advance(&self, decoder: &mut dyn RowDecoder, lo: u32, hi: u32) -> Result<()> {
        puffin::profile_function!();
        let mut w = self.window.write().unwrap_or_else(|e| e.into_inner());
        if lo < w.first_row {
            return Err(Error::Internal(format!(
                "streaming source asked for row {lo} after dropping it"
            )));
        }
        let row_len = self.size.width as usize * self.layout.channels;
        // Forget rows that no later band needs.
        let drop_rows = (lo - w.first_row).min(w.rows);
        if drop_rows > 0 {
            let n = drop_rows as usize * row_len;
            match &mut w.samples {
                Samples::U8(v) => drop(v.drain(..n)),
                Samples::U16(v) => drop(v.drain(..n)),
            }
            w.first_row += drop_rows;
            w.rows -= drop_rows;
        }
        // Skip rows nobody needs (e.g. above a crop) without keeping them.
        while w.decoded < lo {
            match &mut w.samples {
                Samples::U8(_) => decoder.read_row(RowOut::U8(&mut vec![0u8; row_len]))?,
                Samples::U16(_) => decoder.read_row(RowOut::U16(&mut vec![0u16; row_len]))?,
            }
            w.decoded += 1;
            w.first_row = w.decoded;
        }
        let hi = hi.min(self.size.height);
        while w.decoded < hi {
            match &mut w.samples {
                Samples::U8(v) => {
                    let start = v.len();
                    v.resize(start + row_len, 0);
                    decoder.read_row(RowOut::U8(&mut v[start..]))?;
                }
                Samples::U16(v) => {
                    let start = v.len();
                    v.resize(start + row_len, 0);
                    decoder.read_row(RowOut::U16(&mut v[start..]))?;
                }
            }
            w.decoded += 1;
            w.rows += 1;
        }
        Ok(())
    }
}

impl Source for StreamSource {
    fn size(&self) -> Size {
        self.size
    }

    fn read(&self, rect: Rect) -> Tile {
        puffin::profile_scope!("read_stream");
        let w = self.window.read().unwrap_or_else(|e| e.into_inner());
        debug_assert!(rect.y >= w.first_row && rect.bottom() <= w.first_row + w.rows);
        let local = Rect::new(
            rect.x,
            rect.y.saturating_sub(w.first_row),
            rect.width,
            rect.height,
        );
        let (width, channels) = (self.size.width, self.layout.channels);
        match &w.samples {
            Samples::U8(v) => read_interleaved_u8(v, width, channels, local),
            Samples::U16(v) => {
                read_interleaved(v, width, channels, local, |s: u16| f32::from(s) / 65_535.0)
            }
        }
        .with_rect(rect)
    }

    fn bytes(&self) -> u64 {
        let w = self.window.read().unwrap_or_else(|e| e.into_inner());
        Self::window_bytes(self.size, self.layout, w.rows)
    }
}
