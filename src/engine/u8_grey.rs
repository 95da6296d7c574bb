//! Greyscale conversion and Sobel gradient magnitude on 8-bit samples, to one 8-bit channel:
//! the 8-bit working format of the quality presets for `grayscale` and `edge_detect` (mode
//! `sobel`), see [`super::u8_lead`].
//!
//! Both write one channel where the f32 path writes RGBA with R = G = B, so a grey chain reads
//! and writes a quarter of the bytes until its output is expanded. The arithmetic is the f32
//! path's on levels instead of unit values (f32 sums, rounded once), so a conversion alone is
//! the same bytes but for ties; Sobel after it sees grey rounded to levels, a level or two
//! from the f32 path where the gradient is steep (`tests/ops_contract.rs` bounds it).

use rayon::prelude::*;

use super::u8_filter::level;
use crate::ops::GreyMix;

/// Rows per parallel band.
const BAND_ROWS: usize = 64;

/// Grey of `src`, interleaved RGB, per `mix`, on the current rayon pool: one sample per
/// pixel.
pub fn grey_from_rgb8(src: &[u8], mix: GreyMix) -> Vec<u8> {
    let pixels = src.len() / 3;
    let mut out = vec![0u8; pixels];
    let band = 16_384;
    out.par_chunks_mut(band)
        .zip(src.par_chunks(band * 3))
        .for_each(|(dst, rgb)| match mix {
            GreyMix::Weights(w) => weighted(rgb, w, dst),
            GreyMix::Lightness => lightness(rgb, dst),
        });
    out
}

#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn weighted(rgb: &[u8], [wr, wg, wb]: [f32; 3], out: &mut [u8]) {
    // A plain loop: the compiler turns the stride-3 loads into vector shuffles (3× faster
    // than gathering fixed-size arrays of pixels first).
    for (px, o) in rgb.chunks_exact(3).zip(out) {
        *o = level(wr * f32::from(px[0]) + wg * f32::from(px[1]) + wb * f32::from(px[2]));
    }
}

fn lightness(rgb: &[u8], out: &mut [u8]) {
    for (px, o) in rgb.chunks_exact(3).zip(out) {
        let (hi, lo) = (px[0].max(px[1]).max(px[2]), px[0].min(px[1]).min(px[2]));
        *o = level(0.5 * (f32::from(hi) + f32::from(lo)));
    }
}

/// Memory [`sobel8`] allocates besides its output, for `threads` workers and rows
/// `width_px` wide.
pub fn sobel_scratch_bytes(width_px: u32, threads: usize) -> u64 {
    threads as u64 * 2 * (u64::from(width_px) + 2) * 4
}

/// Sobel gradient magnitude of `plane` (`width`×`height` grey levels) with clamped
/// neighbours, in levels (at most 255), on the current rayon pool: the `edge_detect` op's
/// `sqrt(gx² + gy²)` on grey input.
pub fn sobel8(plane: &[u8], width: usize, height: usize) -> Vec<u8> {
    debug_assert_eq!(plane.len(), width * height);
    let mut out = vec![0u8; plane.len()];
    if plane.is_empty() {
        return out;
    }
    out.par_chunks_mut(width * BAND_ROWS)
        .enumerate()
        .for_each_init(
            || (vec![0f32; width + 2], vec![0f32; width + 2]),
            |(sums, diffs), (band, dst)| {
                for (j, dst_row) in dst.chunks_exact_mut(width).enumerate() {
                    let y = band * BAND_ROWS + j;
                    let row = |y: usize| &plane[y * width..(y + 1) * width];
                    let (above, here, below) = (
                        row(y.saturating_sub(1)),
                        row(y),
                        row((y + 1).min(height - 1)),
                    );
                    sobel_row(above, here, below, sums, diffs, dst_row);
                }
            },
        );
    out
}

/// One output row from the rows above, at and below it. `sums` and `diffs` (`width + 2`
/// long) hold the vertical parts of the two kernels, padded by one replicated column a side.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn sobel_row(
    above: &[u8],
    here: &[u8],
    below: &[u8],
    sums: &mut [f32],
    diffs: &mut [f32],
    out: &mut [u8],
) {
    let w = out.len();
    for (x, ((&a, &b), &c)) in above.iter().zip(here).zip(below).enumerate() {
        let (a, b, c) = (f32::from(a), f32::from(b), f32::from(c));
        sums[x + 1] = a + 2.0 * b + c;
        diffs[x + 1] = c - a;
    }
    (sums[0], diffs[0]) = (sums[1], diffs[1]);
    (sums[w + 1], diffs[w + 1]) = (sums[w], diffs[w]);
    let (sums, diffs) = (&*sums, &*diffs);
    for (x, o) in out.iter_mut().enumerate() {
        let gx = sums[x + 2] - sums[x];
        let gy = diffs[x] + 2.0 * diffs[x + 1] + diffs[x + 2];
        *o = level((gx * gx + gy * gy).sqrt());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        crate::engine::u8_filter::test_noise(len, 0x9e37_79b9)
    }

    #[test]
    fn grey_rounds_the_weighted_sum_and_lightness() {
        let rgb = noise(3 * 53);
        let weights = [0.2126, 0.7152, 0.0722];
        let got = grey_from_rgb8(&rgb, GreyMix::Weights(weights));
        for (px, &g) in rgb.chunks_exact(3).zip(&got) {
            let want: f64 = px
                .iter()
                .zip(weights)
                .map(|(&v, w)| f64::from(v) * f64::from(w))
                .sum();
            assert!(
                (f64::from(g) - want).abs() <= 0.5 + 1e-4,
                "{px:?}: {g} vs {want}"
            );
        }
        let got = grey_from_rgb8(&rgb, GreyMix::Lightness);
        for (px, &g) in rgb.chunks_exact(3).zip(&got) {
            let (hi, lo) = (*px.iter().max().unwrap(), *px.iter().min().unwrap());
            assert_eq!(u32::from(g), (u32::from(hi) + u32::from(lo)).div_ceil(2));
        }
        // Grey stays grey.
        let grey: Vec<u8> = (0..=255u8).flat_map(|v| [v; 3]).collect();
        let want: Vec<u8> = (0..=255u8).collect();
        for mix in [
            GreyMix::Weights(weights),
            GreyMix::Weights([0.299, 0.587, 0.114]),
            GreyMix::Weights([1.0 / 3.0; 3]),
            GreyMix::Lightness,
        ] {
            assert_eq!(grey_from_rgb8(&grey, mix), want, "{mix:?}");
        }
    }

    #[test]
    fn sobel_matches_the_definition_with_clamped_neighbours() {
        for (w, h) in [(1, 1), (2, 3), (19, 1), (1, 7), (67, 130)] {
            let plane = noise(w * h);
            let got = sobel8(&plane, w, h);
            let at = |x: isize, y: isize| {
                let x = x.clamp(0, w as isize - 1) as usize;
                let y = y.clamp(0, h as isize - 1) as usize;
                f64::from(plane[y * w + x])
            };
            for y in 0..h as isize {
                for x in 0..w as isize {
                    let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2.0 * at(x - 1, y)
                        - at(x - 1, y + 1);
                    let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2.0 * at(x, y - 1)
                        - at(x + 1, y - 1);
                    let want = (gx * gx + gy * gy).sqrt().min(255.0);
                    let g = got[y as usize * w + x as usize];
                    assert!(
                        (f64::from(g) - want).abs() <= 0.5 + 1e-3,
                        "{w}x{h} at ({x}, {y}): {g} vs {want}"
                    );
                }
            }
        }
        assert_eq!(sobel8(&[90; 12], 4, 3), vec![0; 12]);
    }
}
