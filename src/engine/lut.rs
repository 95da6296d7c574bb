//! Runs of per-channel pointwise ops (brightness, contrast, exposure, gamma, invert…) over an
//! 8-bit source into an 8-bit output, as one lookup table per channel.
//!
//! Each output byte of such a run depends only on the same channel's input byte, so there are
//! 256 possible answers per channel. They are computed once per render by the kernels
//! themselves, on the working values an 8-bit source converts to, and quantised like any
//! output: a table render gives the same bytes as the tiled f32 path (tests/ops_contract.rs
//! checks every per-channel op). What it saves is converting every sample to f32 and back,
//! most of a pointwise render's time.

use super::geom::Rect;
use super::sink::{OutputSink, quantize_u8};
use super::source::Source;
use super::tile::CHANNELS;
use crate::ops::PointKernel;

/// The answers of a per-channel run: `rgba[c][v]` for input value `v` of channel `c`, and the
/// alpha of an opaque (RGB) source.
pub struct ChannelTables {
    rgba: [[u8; 256]; CHANNELS],
    opaque_alpha: u8,
    /// The RGBA pixel (little-endian) of an opaque grey input value.
    grey: [u32; 256],
}

impl ChannelTables {
    /// The tables of `kernels` (each [`PointKernel::per_channel`]), computed by running them on
    /// every 8-bit value.
    pub fn new(kernels: &[&dyn PointKernel]) -> Self {
        // Pixel v holds v in every channel, read as an 8-bit RGBA source reads it; one more
        // pixel is an RGB source's opaque black (alpha exactly 1).
        let mut samples: Vec<u8> = (0..=255u8).flat_map(|v| [v; CHANNELS]).collect();
        samples.extend_from_slice(&[0, 0, 0, 255]);
        let bytes = image::RgbaImage::from_raw(257, 1, samples)
            .map(image::DynamicImage::ImageRgba8)
            .expect("257x1 RGBA samples");
        let mut tile = bytes.read(Rect::new(0, 0, 257, 1));
        tile.data[256 * CHANNELS + 3] = 1.0;
        for k in kernels {
            k.apply_row(0, 0, &mut tile.data);
        }
        let mut out = vec![0u8; tile.data.len()];
        quantize_u8(&tile.data, &mut out);
        let mut rgba = [[0u8; 256]; CHANNELS];
        for (v, px) in out.chunks_exact(CHANNELS).take(256).enumerate() {
            for c in 0..CHANNELS {
                rgba[c][v] = px[c];
            }
        }
        let opaque_alpha = out[256 * CHANNELS + 3];
        let grey = std::array::from_fn(|v| {
            u32::from_le_bytes([rgba[0][v], rgba[1][v], rgba[2][v], opaque_alpha])
        });
        Self {
            rgba,
            opaque_alpha,
            grey,
        }
    }

    /// Whether an opaque pixel stays opaque (so an RGB source maps to RGB).
    pub(crate) fn keeps_opaque(&self) -> bool {
        self.opaque_alpha == u8::MAX
    }

    /// Map interleaved RGB `src` into `out` (the same length).
    pub(crate) fn map_rgb_to_rgb(&self, src: &[u8], out: &mut [u8]) {
        let [r, g, b, _] = &self.rgba;
        for (o, s) in out.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
            o[0] = r[usize::from(s[0])];
            o[1] = g[usize::from(s[1])];
            o[2] = b[usize::from(s[2])];
        }
    }

    /// Map `rect` of `samples` (interleaved, `channels` = 1 (grey), 3 or 4, `width` px per
    /// row) into the same rectangle of `sink`.
    pub(crate) fn render(
        &self,
        (samples, channels): (&[u8], usize),
        width: u32,
        rect: Rect,
        sink: &OutputSink,
    ) {
        let row_len = rect.width as usize * channels;
        sink.put_rows_u8(rect, |y, out| {
            let start = ((rect.y as usize + y) * width as usize + rect.x as usize) * channels;
            let src = &samples[start..start + row_len];
            match channels {
                1 => self.map_grey(src, out),
                3 => self.map_rgb(src, out),
                _ => self.map_rgba(src, out),
            }
        });
    }

    fn map_rgb(&self, src: &[u8], out: &mut [u8]) {
        let [r, g, b, _] = &self.rgba;
        let a = u32::from(self.opaque_alpha) << 24;
        let px = |s: &[u8]| {
            u32::from(r[usize::from(s[0])])
                | u32::from(g[usize::from(s[1])]) << 8
                | u32::from(b[usize::from(s[2])]) << 16
                | a
        };
        // Four pixels per step: one 16-byte store instead of four small ones.
        let mut out4 = out.chunks_exact_mut(16);
        let mut src4 = src.chunks_exact(12);
        for (o, s) in (&mut out4).zip(&mut src4) {
            let v = u128::from(px(&s[0..3]))
                | u128::from(px(&s[3..6])) << 32
                | u128::from(px(&s[6..9])) << 64
                | u128::from(px(&s[9..12])) << 96;
            o.copy_from_slice(&v.to_le_bytes());
        }
        for (o, s) in out4
            .into_remainder()
            .chunks_exact_mut(CHANNELS)
            .zip(src4.remainder().chunks_exact(3))
        {
            o.copy_from_slice(&px(s).to_le_bytes());
        }
    }

    fn map_rgba(&self, src: &[u8], out: &mut [u8]) {
        let [r, g, b, a] = &self.rgba;
        for (o, s) in out
            .chunks_exact_mut(CHANNELS)
            .zip(src.chunks_exact(CHANNELS))
        {
            o.copy_from_slice(&[
                r[usize::from(s[0])],
                g[usize::from(s[1])],
                b[usize::from(s[2])],
                a[usize::from(s[3])],
            ]);
        }
    }

    /// Grey reads as R = G = B, opaque: one lookup and one 4-byte store per pixel.
    fn map_grey(&self, src: &[u8], out: &mut [u8]) {
        for (o, &v) in out.chunks_exact_mut(CHANNELS).zip(src) {
            o.copy_from_slice(&self.grey[usize::from(v)].to_le_bytes());
        }
    }
}
