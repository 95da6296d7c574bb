//! A Gaussian approximated by a cascade of box filters: the `fast` presets' blur, whose cost
//! does not grow with sigma (a few adds per pixel and pass, against `6·sigma + 1` taps).
//!
//! Box widths follow Kovesi's rule ("Fast almost-Gaussian filtering", 2010): `n` boxes whose
//! variances add up to `sigma²` as closely as odd widths allow. Their total radius stays within
//! [`gaussian_radius`], so the op's footprint (halo) is the same as the exact blur's.
//!
//! Tiled renders must be bit-identical to whole ones, but a running sum in floating point
//! depends on where it starts. So values are clamped to ±2, quantised to a grid of 2⁻ᵏ and
//! summed as integers held in `f32` (exact below 2²⁴): every window sum is exact wherever the
//! row starts, and each pass rounds its mean back to the grid. `k` is as fine as the widest
//! box allows (k = 22 − ⌈log₂ width⌉: 2⁻¹⁸ for sigma 4, 2⁻¹⁵ for sigma 40), so six passes
//! stay within 10⁻⁴ of the composite kernel up to sigma ≈ 60 px; the exact blur (`ultra`) has
//! no such rounding. Edges replicate the image edge, as in
//! [`super::convolve`]; the cascade over the padded line equals one convolution with
//! [`composite_weights`], which is what the GPU runs (same result within 10⁻⁵).

use super::convolve::{
    convolve_scratch_bytes, convolve_separable, gaussian_radius, gaussian_weights,
};
use super::geom::Rect;
use super::tile::{CHANNELS, Tile};

/// How a Gaussian blur is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlurAlgorithm {
    /// Separable convolution with the sampled Gaussian, truncated at 3 sigma.
    Exact,
    /// A cascade of this many box filters (2 or 3).
    Boxes(u8),
}

/// A Gaussian blur ready to run: convolution weights and, for the box variant, the box radii.
pub struct BlurKernel {
    /// Weights of one separable convolution: the sampled Gaussian, or the box cascade's
    /// composite padded with zeros to the Gaussian's radius (what the GPU runs).
    pub weights: Vec<f32>,
    /// Box radii; empty for the exact blur.
    pub boxes: Vec<u32>,
}

impl BlurKernel {
    /// The blur of `sigma_px` computed by `algorithm` (exact where boxes do not apply).
    pub fn new(sigma_px: f64, algorithm: BlurAlgorithm) -> BlurKernel {
        let exact = gaussian_weights(sigma_px);
        let boxes = match algorithm {
            BlurAlgorithm::Exact => Vec::new(),
            BlurAlgorithm::Boxes(passes) => box_radii(sigma_px, passes),
        };
        if boxes.is_empty() {
            return BlurKernel {
                weights: exact,
                boxes,
            };
        }
        let composite = composite_weights(&boxes);
        let pad = (exact.len() - composite.len()) / 2;
        let mut weights = vec![0.0; exact.len()];
        weights[pad..pad + composite.len()].copy_from_slice(&composite);
        BlurKernel { weights, boxes }
    }

    /// Halo in pixels: the exact Gaussian's, whichever algorithm runs.
    pub fn radius(&self) -> u32 {
        (self.weights.len() / 2) as u32
    }

    /// Blur `src` into every value of `dst` (`src.rect` = `dst.rect` grown by [`Self::radius`],
    /// clipped to the image).
    pub fn run(&self, src: &Tile, dst: &mut Tile) {
        if self.boxes.is_empty() {
            convolve_separable(src, dst, &self.weights);
        } else {
            box_cascade(src, dst, &self.boxes);
        }
    }

    /// Scratch bytes for an output tile `out` read from `src`.
    pub fn scratch_bytes(&self, out: Rect, src: Rect) -> u64 {
        if self.boxes.is_empty() {
            convolve_scratch_bytes(out, src, self.radius())
        } else {
            box_scratch_bytes(out, &self.boxes)
        }
    }
}

/// Values are clamped to ±LIMIT before quantising.
const LIMIT: f32 = 2.0;
/// Widest box whose sums stay exact on the coarsest grid used (2⁻¹²).
const MAX_BOX_PX: u32 = 1024;

/// Grid steps per unit for boxes up to `widest` px: |value| ≤ 2·scale and a window sum
/// ≤ 2·scale·widest < 2²⁴.
fn grid_scale(widest: u32) -> f32 {
    let bits = 22 - widest.max(1).next_power_of_two().trailing_zeros();
    (1u32 << bits.max(12)) as f32
}

/// Radii of `passes` boxes whose variances sum to about `sigma_px²`. Empty when the boxes
/// would not fit in the exact blur's radius or `sigma_px` is too small for boxes (< 1 px).
pub fn box_radii(sigma_px: f64, passes: u8) -> Vec<u32> {
    if !(1.0..=10_000.0).contains(&sigma_px) || passes == 0 {
        return Vec::new();
    }
    let n = f64::from(passes);
    let var12 = 12.0 * sigma_px * sigma_px;
    let ideal = (var12 / n + 1.0).sqrt();
    let mut lower = ideal.floor() as i64;
    if lower % 2 == 0 {
        lower -= 1;
    }
    let lower = lower.max(1);
    let lower_f = lower as f64;
    let m = ((var12 - n * lower_f * lower_f - 4.0 * n * lower_f - 3.0 * n) / (-4.0 * lower_f - 4.0))
        .round()
        .clamp(0.0, n) as u8;
    let radii: Vec<u32> = (0..passes)
        .map(|i| {
            let width = if i < m { lower } else { lower + 2 };
            ((width - 1) / 2) as u32
        })
        .collect();
    let total: u32 = radii.iter().sum();
    if total == 0
        || total > gaussian_radius(sigma_px)
        || radii.iter().any(|&r| 2 * r + 1 > MAX_BOX_PX)
    {
        return Vec::new();
    }
    radii
}

/// The single kernel the box cascade equals: the boxes convolved with each other, normalised.
pub fn composite_weights(radii: &[u32]) -> Vec<f32> {
    let mut kernel = vec![1.0f64];
    for &r in radii {
        let width = 2 * r as usize + 1;
        let mut next = vec![0.0; kernel.len() + width - 1];
        for (i, &k) in kernel.iter().enumerate() {
            for v in &mut next[i..i + width] {
                *v += k / width as f64;
            }
        }
        kernel = next;
    }
    kernel.iter().map(|&w| w as f32).collect()
}

/// Working values on the grid of `scale` steps per unit, clamped to ±LIMIT (NaN becomes 0).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn quantise(src: &[f32], dst: &mut [f32], scale: f32) {
    for (d, &v) in dst.iter_mut().zip(src) {
        let v = if v.is_nan() { 0.0 } else { v };
        *d = (v.clamp(-LIMIT, LIMIT) * scale).round_ties_even();
    }
}

/// One box pass over `len` pixels of `src` (interleaved RGBA, exact integers): `dst` gets
/// `len - 2r` window means, rounded to integers. Sums are exact, so the result does not
/// depend on where the line starts.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn box_pass_line(src: &[f32], dst: &mut [f32], radius: usize) {
    let width = 2 * radius + 1;
    let inv = 1.0 / width as f32;
    let out_len = dst.len() / CHANNELS;
    let mut sum = [0.0f32; CHANNELS];
    for px in src[..width * CHANNELS].chunks_exact(CHANNELS) {
        for c in 0..CHANNELS {
            sum[c] += px[c];
        }
    }
    for i in 0..out_len {
        let out = &mut dst[i * CHANNELS..(i + 1) * CHANNELS];
        for c in 0..CHANNELS {
            out[c] = (sum[c] * inv).round_ties_even();
        }
        if i + 1 < out_len {
            let add = &src[(i + width) * CHANNELS..(i + width + 1) * CHANNELS];
            let sub = &src[i * CHANNELS..(i + 1) * CHANNELS];
            for c in 0..CHANNELS {
                sum[c] += add[c] - sub[c];
            }
        }
    }
}

/// One vertical box pass: row `y` of `dst` is the mean of rows `y..=y+2r` of `src` (rows of
/// `stride` values, exact integers).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn box_pass_rows(src: &[f32], dst: &mut [f32], sum: &mut [f32], stride: usize, radius: usize) {
    let width = 2 * radius + 1;
    let inv = 1.0 / width as f32;
    let out_rows = dst.len() / stride;
    sum.fill(0.0);
    for row in src[..width * stride].chunks_exact(stride) {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    for y in 0..out_rows {
        for (d, s) in dst[y * stride..(y + 1) * stride].iter_mut().zip(sum.iter()) {
            *d = (s * inv).round_ties_even();
        }
        if y + 1 < out_rows {
            let add = &src[(y + width) * stride..(y + width + 1) * stride];
            let sub = &src[y * stride..(y + 1) * stride];
            for ((s, a), b) in sum.iter_mut().zip(add).zip(sub) {
                *s += a - b;
            }
        }
    }
}

thread_local! {
    /// Each worker's cascade buffers, reused from tile to tile (no zeroing, no page faults).
    static BUFFERS: std::cell::RefCell<[Vec<f32>; 5]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()])
    };
}

/// Run the cascade of boxes with `radii` over `src`, writing every value of `dst`.
/// `src.rect` must be `dst.rect` grown by at least the radii's sum and clipped to the image.
pub fn box_cascade(src: &Tile, dst: &mut Tile, radii: &[u32]) {
    if dst.rect.is_empty() {
        return;
    }
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => cascade_with(src, dst, radii, &mut buffers),
        Err(_) => cascade_with(src, dst, radii, &mut Default::default()),
    });
}

fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

fn cascade_with(src: &Tile, dst: &mut Tile, radii: &[u32], buffers: &mut [Vec<f32>; 5]) {
    let out = dst.rect;
    let total: usize = radii.iter().map(|&r| r as usize).sum();
    let s = src.rect;
    let stride = out.width as usize * CHANNELS;
    let padded_w = out.width as usize + 2 * total;
    let padded_h = out.height as usize + 2 * total;
    let [columns, spare, line, next, sums] = buffers;
    let columns = sized(columns, padded_h * stride);
    let spare = sized(spare, padded_h * stride);
    let line = sized(line, padded_w * CHANNELS);
    let next = sized(next, padded_w * CHANNELS);
    let sums = sized(sums, stride);
    let scale = grid_scale(radii.iter().map(|&r| 2 * r + 1).max().unwrap_or(1));

    // Horizontal passes for every padded row; padding rows repeat the image's edge rows.
    let mut done_rows: Vec<Option<usize>> = vec![None; s.height as usize];
    for py in 0..padded_h {
        let y = (i64::from(out.y) + py as i64 - total as i64)
            .clamp(i64::from(s.y), i64::from(s.bottom()) - 1) as usize
            - s.y as usize;
        if let Some(first) = done_rows[y] {
            columns.copy_within(first * stride..(first + 1) * stride, py * stride);
            continue;
        }
        let src_row = src.row(y);
        // Left padding, the row's own span, right padding.
        let left = (i64::from(s.x) - (i64::from(out.x) - total as i64)).max(0) as usize;
        let first_x = (i64::from(out.x) - total as i64).max(i64::from(s.x)) as usize - s.x as usize;
        let inside = (padded_w - left).min(s.width as usize - first_x);
        quantise(
            &src_row[first_x * CHANNELS..(first_x + inside) * CHANNELS],
            &mut line[left * CHANNELS..(left + inside) * CHANNELS],
            scale,
        );
        for i in 0..left {
            line.copy_within(left * CHANNELS..(left + 1) * CHANNELS, i * CHANNELS);
        }
        let last = left + inside - 1;
        for i in left + inside..padded_w {
            line.copy_within(last * CHANNELS..(last + 1) * CHANNELS, i * CHANNELS);
        }
        let (mut cur, mut nxt): (&mut [f32], &mut [f32]) = (&mut *line, &mut *next);
        let mut len = padded_w;
        for &r in radii {
            let r = r as usize;
            let out_len = len - 2 * r;
            box_pass_line(&cur[..len * CHANNELS], &mut nxt[..out_len * CHANNELS], r);
            std::mem::swap(&mut cur, &mut nxt);
            len = out_len;
        }
        columns[py * stride..(py + 1) * stride].copy_from_slice(&cur[..stride]);
        done_rows[y] = Some(py);
    }

    // Vertical passes, ping-ponging between two buffers of shrinking height.
    let (mut cur, mut nxt): (&mut [f32], &mut [f32]) = (columns, spare);
    let mut rows = padded_h;
    for &r in radii {
        let r = r as usize;
        let out_rows = rows - 2 * r;
        box_pass_rows(
            &cur[..rows * stride],
            &mut nxt[..out_rows * stride],
            sums,
            stride,
            r,
        );
        std::mem::swap(&mut cur, &mut nxt);
        rows = out_rows;
    }
    let inv = 1.0 / scale;
    for (d, &v) in dst
        .data
        .iter_mut()
        .zip(&cur[..out.height as usize * stride])
    {
        *d = v * inv;
    }
}

/// Scratch bytes of [`box_cascade`] for an output tile `out` with `radii`.
pub fn box_scratch_bytes(out: Rect, radii: &[u32]) -> u64 {
    let total: u64 = radii.iter().map(|&r| u64::from(r)).sum();
    let stride = u64::from(out.width) * CHANNELS as u64 * 4;
    let padded_h = u64::from(out.height) + 2 * total;
    let line = (u64::from(out.width) + 2 * total) * CHANNELS as u64 * 4;
    2 * padded_h * stride + 2 * line + stride
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::convolve::{convolve_separable, gaussian_weights};
    use crate::ops::testutil::pattern;

    fn run(img: &Tile, out: Rect, radii: &[u32]) -> Tile {
        let total: u32 = radii.iter().sum();
        let src_rect = out.expand_clip(
            total,
            crate::engine::geom::Size::new(img.rect.width, img.rect.height),
        );
        let mut src = Tile::new(src_rect);
        for y in 0..src_rect.height as usize {
            let from = img.row(src_rect.y as usize + y);
            let x0 = src_rect.x as usize * CHANNELS;
            src.row_mut(y)
                .copy_from_slice(&from[x0..x0 + src_rect.width as usize * CHANNELS]);
        }
        let mut dst = Tile::new(out);
        box_cascade(&src, &mut dst, radii);
        dst
    }

    #[test]
    fn radii_fit_the_exact_blur_radius_and_match_its_variance() {
        for passes in [2u8, 3] {
            let mut sigma = 1.0;
            while sigma < 500.0 {
                let radii = box_radii(sigma, passes);
                assert!(!radii.is_empty(), "sigma {sigma}, {passes} passes");
                assert!(radii.iter().sum::<u32>() <= gaussian_radius(sigma));
                let variance: f64 = radii
                    .iter()
                    .map(|&r| {
                        let w = f64::from(2 * r + 1);
                        (w * w - 1.0) / 12.0
                    })
                    .sum();
                let achieved = variance.sqrt();
                assert!(
                    (achieved - sigma).abs() <= 0.35 + 0.02 * sigma,
                    "sigma {sigma}: boxes {radii:?} give {achieved}"
                );
                sigma *= 1.37;
            }
        }
        assert!(box_radii(0.5, 3).is_empty());
    }

    #[test]
    fn tiles_are_bit_identical_to_the_whole_image() {
        let img = pattern(37, 29);
        for radii in [box_radii(2.5, 3), box_radii(4.0, 2), vec![1, 2, 2]] {
            let whole = run(&img, img.rect, &radii);
            for (tx, ty, tw, th) in [(0, 0, 7, 5), (5, 3, 11, 13), (30, 20, 7, 9), (0, 28, 37, 1)] {
                let part = run(&img, Rect::new(tx, ty, tw, th), &radii);
                for y in 0..th {
                    for x in 0..tw {
                        for c in 0..CHANNELS {
                            let a = part.data[((y * tw + x) as usize) * CHANNELS + c];
                            let b = whole.data[(((ty + y) * 37 + tx + x) as usize) * CHANNELS + c];
                            assert_eq!(a.to_bits(), b.to_bits(), "{radii:?} tile {tx},{ty}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cascade_equals_the_composite_kernel_and_is_close_to_the_gaussian() {
        let img = pattern(301, 263);
        for sigma in [2.0, 3.5, 6.0, 40.0] {
            for passes in [2u8, 3] {
                let radii = box_radii(sigma, passes);
                let boxes = run(&img, img.rect, &radii);
                let mut composite = Tile::new(img.rect);
                convolve_separable(&img, &mut composite, &composite_weights(&radii));
                let worst = boxes
                    .data
                    .iter()
                    .zip(&composite.data)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "sigma {sigma} x{passes}: {worst}");
                let mut exact = Tile::new(img.rect);
                convolve_separable(&img, &mut exact, &gaussian_weights(sigma));
                let mse: f64 = boxes
                    .data
                    .iter()
                    .zip(&exact.data)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum::<f64>()
                    / boxes.data.len() as f64;
                let psnr = 10.0 * (1.0 / mse).log10();
                assert!(psnr > 35.0, "sigma {sigma} x{passes}: {psnr} dB");
            }
        }
    }

    #[test]
    fn flat_images_stay_flat_and_nan_becomes_zero() {
        let mut flat = Tile::new(Rect::new(0, 0, 12, 9));
        flat.data
            .chunks_exact_mut(4)
            .for_each(|px| px.copy_from_slice(&[0.2, 0.4, 0.6, 1.0]));
        let out = run(&flat, flat.rect, &box_radii(3.0, 3));
        for (a, b) in out.data.iter().zip(&flat.data) {
            assert!((a - b).abs() < 1e-6);
        }
        flat.data[0] = f32::NAN;
        let out = run(&flat, flat.rect, &[1]);
        assert!(out.data.iter().all(|v| v.is_finite()));
    }
}
