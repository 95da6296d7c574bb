//! Runs of per-channel pointwise ops (brightness, contrast, exposure, gamma, invert…) over an
//! 8-bit source into an 8-bit output, as one lookup table per channel.
//!
//! Each output byte of such a run depends only on the same channel's input byte, so there are
//! 256 possible answers per channel. They are computed once per render by the kernels
//! themselves, on the working values an 8-bit source converts to, and quantised like any
//! output: a table render gives the same bytes as the tiled f32 path (tests/ops_contract.rs
//! checks every per-channel op). What it saves is converting every sample to f32 and back,
//! most of a pointwise render's time. RGB to RGB, the tables are looked up 64 bytes at a time
//! where the CPU has AVX-512 VBMI (`vbmi` below), else one byte at a time.

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
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512vbmi")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            let [r, g, b, _] = &self.rgba;
            // SAFETY: the target features `vbmi::map_rgb` is compiled for were just detected.
            let done = unsafe { vbmi::map_rgb([r, g, b], src, out) };
            return self.map_rgb_to_rgb_scalar(&src[done..], &mut out[done..]);
        }
        self.map_rgb_to_rgb_scalar(src, out);
    }

    /// [`Self::map_rgb_to_rgb`], one byte at a time.
    fn map_rgb_to_rgb_scalar(&self, src: &[u8], out: &mut [u8]) {
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

/// Table lookups 64 bytes at a time with AVX-512 VBMI's two-table byte permute: a 256-entry
/// table is four registers, looked up as two 128-entry halves and chosen by each index's top
/// bit. A scalar lookup is one load per byte; this is a handful of instructions per 64, so
/// the mapping runs at memory speed (4096² RGB brightness/contrast on 2 cores: 8–11 ms
/// against 16–17 ms, `benches/results/2026-11-28-boxes-rgb.md`).
#[cfg(target_arch = "x86_64")]
mod vbmi {
    use std::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_mask_blend_epi8, _mm512_movepi8_mask,
        _mm512_permutex2var_epi8, _mm512_storeu_si512,
    };

    /// The four registers of a 256-entry table.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn registers(table: &[u8; 256]) -> [__m512i; 4] {
        let at = |i: usize| table[64 * i..].as_ptr().cast();
        // SAFETY: each load reads 64 of the table's 256 bytes.
        unsafe {
            [
                _mm512_loadu_si512(at(0)),
                _mm512_loadu_si512(at(1)),
                _mm512_loadu_si512(at(2)),
                _mm512_loadu_si512(at(3)),
            ]
        }
    }

    /// `table[index]` for each of 64 byte indices.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn lookup(table: &[__m512i; 4], index: __m512i) -> __m512i {
        let low = _mm512_permutex2var_epi8(table[0], index, table[1]);
        let high = _mm512_permutex2var_epi8(table[2], index, table[3]);
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high)
    }

    /// Map whole 192-byte blocks (64 RGB pixels) of `src` into `out` through the `tables` of
    /// red, green and blue; returns how many bytes were mapped.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn map_rgb(tables: [&[u8; 256]; 3], src: &[u8], out: &mut [u8]) -> usize {
        let len = src.len().min(out.len()) / 192 * 192;
        let same = tables[0] == tables[1] && tables[1] == tables[2];
        let (r, g, b) = (
            registers(tables[0]),
            registers(tables[1]),
            registers(tables[2]),
        );
        // Byte j of the block's vector k is channel (64k + j) mod 3: its green and blue masks.
        let channel = |k: usize, c: usize| -> u64 {
            (0..64)
                .filter(|j| (64 * k + j) % 3 == c)
                .map(|j| 1u64 << j)
                .sum()
        };
        let masks: [(u64, u64); 3] = std::array::from_fn(|k| (channel(k, 1), channel(k, 2)));
        let blocks = src[..len]
            .chunks_exact(64)
            .zip(out[..len].chunks_exact_mut(64));
        for (i, (s, o)) in blocks.enumerate() {
            // SAFETY: `s` and `o` are 64 bytes each.
            let index = unsafe { _mm512_loadu_si512(s.as_ptr().cast()) };
            let mapped = if same {
                lookup(&r, index)
            } else {
                let (green, blue) = masks[i % 3];
                let v = _mm512_mask_blend_epi8(green, lookup(&r, index), lookup(&g, index));
                _mm512_mask_blend_epi8(blue, v, lookup(&b, index))
            };
            // SAFETY: as above.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), mapped) };
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::u8_filter::test_noise;

    /// Tables from `seed`'s noise, the same for every channel or not.
    fn tables(seed: u32, same: bool) -> ChannelTables {
        let noise = test_noise(3 * 256, seed);
        let table = |c: usize| -> [u8; 256] {
            let c = if same { 0 } else { c };
            std::array::from_fn(|v| noise[c * 256 + v])
        };
        ChannelTables {
            rgba: [table(0), table(1), table(2), [u8::MAX; 256]],
            opaque_alpha: u8::MAX,
            grey: [0; 256],
        }
    }

    /// The vector path (where the CPU has it) maps every byte as the scalar one does, for
    /// tables equal across channels and different per channel, at lengths around its blocks.
    #[test]
    fn vector_lookups_equal_scalar_lookups() {
        for t in [tables(1, true), tables(2, false)] {
            for len in [0, 3, 189, 192, 195, 192 * 7 + 3 * 11] {
                let src = test_noise(len, 0xC0FFEE);
                let (mut fast, mut slow) = (vec![0u8; len], vec![0u8; len]);
                t.map_rgb_to_rgb(&src, &mut fast);
                t.map_rgb_to_rgb_scalar(&src, &mut slow);
                assert_eq!(fast, slow, "length {len}");
                assert!(
                    slow.iter()
                        .zip(&src)
                        .enumerate()
                        .all(|(i, (&o, &v))| { o == t.rgba[i % 3][usize::from(v)] })
                );
            }
        }
    }
}
