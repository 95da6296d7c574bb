//! Colour quantization in Oklab: a palette chosen from a 15-bit colour histogram by weighted
//! k-means, and a label per pixel.
//!
//! The histogram (32 levels per channel) keeps the exact sRGB sums of the pixels in each bin,
//! so a palette entry is the mean of the real pixels it stands for (flat colours come out exact,
//! they do not drift). Distances are Oklab distances (perceptual). With an automatic palette
//! size, colours are added while some colour covering at least `min_area_px` pixels is further
//! than `max_delta_e` from every palette entry, ignoring colours that are a blend of two palette
//! entries (anti-aliased edges) when `ignore_blends` is set.

use rayon::prelude::*;

/// Label of a pixel that is transparent (alpha below the threshold): never drawn.
pub const TRANSPARENT: u16 = u16::MAX;

const BINS: usize = 1 << 15;

/// What the quantizer needs.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizeConfig {
    /// A fixed palette size, or `None` to choose it (up to `max_colors`).
    pub colors: Option<usize>,
    /// The largest palette an automatic choice may reach.
    pub max_colors: usize,
    /// Automatic palette: a colour at least this far (Oklab distance) from the palette gets
    /// its own entry.
    pub max_delta_e: f32,
    /// Automatic palette: colours covering fewer pixels than this never get their own entry.
    pub min_area_px: u64,
    /// Automatic palette: colours lying between two palette entries (edge blends) are not
    /// new colours.
    pub ignore_blends: bool,
    /// Pixels with alpha below this are transparent.
    pub alpha_threshold: u8,
}

/// The chosen colours.
#[derive(Clone, Debug, Default)]
pub struct Palette {
    /// sRGB colours, mean of the pixels assigned to each entry.
    pub srgb: Vec<[u8; 3]>,
    /// Pixels per entry.
    pub area_px: Vec<u64>,
}

#[derive(Clone, Copy, Default)]
struct Bin {
    count: u64,
    sum: [u64; 3],
}

fn bin_key(p: [u8; 4]) -> usize {
    (usize::from(p[0] >> 3) << 10) | (usize::from(p[1] >> 3) << 5) | usize::from(p[2] >> 3)
}

fn srgb_to_linear(v: f32) -> f32 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// sRGB (0..255 per channel, may be fractional) to Oklab.
pub fn oklab(rgb: [f32; 3]) -> [f32; 3] {
    let [r, g, b] = rgb.map(|c| srgb_to_linear(c / 255.0));
    let l = (0.412_221_46 * r + 0.536_332_55 * g + 0.051_445_995 * b).cbrt();
    let m = (0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b).cbrt();
    let s = (0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b).cbrt();
    [
        0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    ]
}

fn dist2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// Whether `p` is (within `max_d2`, in Oklab) a mix of the sRGB colours `a` and `b`: how
/// anti-aliased edges blend encoded values.
fn is_blend(p: &Point, a: [f32; 3], b: [f32; 3], max_d2: f32) -> bool {
    blend_residual(p, a, b).0 <= max_d2
}

fn histogram(pixels: &[[u8; 4]], alpha_threshold: u8) -> Vec<Bin> {
    pixels
        .par_chunks(1 << 16)
        .fold(
            || vec![Bin::default(); BINS],
            |mut bins, chunk| {
                for &p in chunk {
                    if p[3] < alpha_threshold {
                        continue;
                    }
                    let b = &mut bins[bin_key(p)];
                    b.count += 1;
                    for (sum, &v) in b.sum.iter_mut().zip(&p[..3]) {
                        *sum += u64::from(v);
                    }
                }
                bins
            },
        )
        .reduce(
            || vec![Bin::default(); BINS],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    x.count += y.count;
                    for c in 0..3 {
                        x.sum[c] += y.sum[c];
                    }
                }
                a
            },
        )
}

/// A non-empty histogram bin, as k-means sees it.
struct Point {
    key: usize,
    weight: f32,
    lab: [f32; 3],
    rgb: [f32; 3],
}

fn nearest(centres: &[[f32; 3]], lab: [f32; 3]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = dist2(*c, lab);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// Weighted Lloyd iterations; returns the assignment of each point.
fn lloyd(
    points: &[Point],
    centres: &mut [[f32; 3]],
    rgb: &mut [[f32; 3]],
    iterations: usize,
) -> Vec<usize> {
    let mut assign = vec![0; points.len()];
    for _ in 0..iterations {
        let mut sums = vec![[0f64; 7]; centres.len()];
        let mut changed = false;
        for (a, p) in assign.iter_mut().zip(points) {
            let (i, _) = nearest(centres, p.lab);
            changed |= *a != i;
            *a = i;
            let w = f64::from(p.weight);
            for c in 0..3 {
                sums[i][c] += w * f64::from(p.lab[c]);
                sums[i][4 + c] += w * f64::from(p.rgb[c]);
            }
            sums[i][3] += w;
        }
        for ((centre, rgb), s) in centres.iter_mut().zip(rgb.iter_mut()).zip(&sums) {
            if s[3] > 0.0 {
                *centre = [0, 1, 2].map(|c| (s[c] / s[3]) as f32);
                *rgb = [4, 5, 6].map(|c| (s[c] / s[3]) as f32);
            }
        }
        if !changed {
            break;
        }
    }
    for (a, p) in assign.iter_mut().zip(points) {
        *a = nearest(centres, p.lab).0;
    }
    assign
}

/// The next centre to add under the automatic rule, if any colour still needs one: the
/// far colour the palette explains worst among bins covering `min_area_px` alone, else the
/// heaviest bin of the coarse cell (8 levels per channel) whose far colours together cover
/// it (continuous-tone palettes, which do not ignore blends). A smooth gradient or a noisy
/// photo spreads each colour over many bins, none of which covers the area alone; without the
/// cells such an image would get a single colour.
fn next_centre(
    points: &[Point],
    centres: &[[f32; 3]],
    rgb: &[[f32; 3]],
    config: &QuantizeConfig,
) -> Option<usize> {
    let min_d2 = config.max_delta_e * config.max_delta_e;
    let far = |p: &Point| -> Option<f32> {
        let (_, d2) = nearest(centres, p.lab);
        let blend = || {
            config.ignore_blends
                && rgb.len() >= 2
                && (0..rgb.len())
                    .any(|a| (a + 1..rgb.len()).any(|b| is_blend(p, rgb[a], rgb[b], min_d2 * 0.25)))
        };
        (d2 > min_d2 && !blend()).then_some(d2)
    };
    let mut best: Option<(usize, f32)> = None;
    for (i, p) in points.iter().enumerate() {
        if (p.weight as u64) < config.min_area_px {
            continue;
        }
        let Some(d2) = far(p) else { continue };
        let score = p.weight * d2;
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    if let Some((i, _)) = best {
        return Some(i);
    }
    // Flat-colour presets (which ignore blends) stop here: their far colours are mostly
    // edge blends and shading, and the cells would only add slow, barely visible entries.
    if config.ignore_blends {
        return None;
    }
    // Per coarse cell: far pixels, and the heaviest far bin (index, weight).
    let mut cells = vec![(0u64, 0usize, 0f32); 512];
    for (i, p) in points.iter().enumerate() {
        if far(p).is_none() {
            continue;
        }
        let cell = &mut cells[coarse_key(p.key)];
        cell.0 += p.weight as u64;
        if p.weight > cell.2 {
            (cell.1, cell.2) = (i, p.weight);
        }
    }
    let (far_px, heaviest, _) = cells
        .iter()
        .fold((0, 0, 0.0), |a, &c| if c.0 > a.0 { c } else { a });
    (far_px >= config.min_area_px).then_some(heaviest)
}

/// The cell of a 15-bit bin key in a grid of 8 levels per channel.
fn coarse_key(key: usize) -> usize {
    ((key >> 12) << 6) | (((key >> 7) & 7) << 3) | ((key >> 2) & 7)
}

/// Chooses the palette and labels every pixel (row-major, `TRANSPARENT` for transparent ones).
pub fn quantize(pixels: &[[u8; 4]], config: &QuantizeConfig) -> (Palette, Vec<u16>) {
    puffin::profile_function!();
    let bins = histogram(pixels, config.alpha_threshold);
    let points: Vec<Point> = bins
        .iter()
        .enumerate()
        .filter(|(_, b)| b.count > 0)
        .map(|(key, b)| {
            let n = b.count as f32;
            let rgb = b.sum.map(|s| s as f32 / n);
            Point {
                key,
                weight: n,
                lab: oklab(rgb),
                rgb,
            }
        })
        .collect();
    if points.is_empty() {
        return (Palette::default(), vec![TRANSPARENT; pixels.len()]);
    }
    let limit = config
        .colors
        .unwrap_or(config.max_colors)
        .clamp(1, usize::from(TRANSPARENT) - 1)
        .min(points.len());
    // Seed with the most common colour, then add the colour that the palette explains worst
    // (count-weighted squared distance): deterministic k-means++.
    let (centres, assign) = cluster(&points, limit, |points, centres, rgb| {
        if config.colors.is_some() {
            worst_explained(points, centres)
        } else {
            lloyd(points, centres, rgb, 4);
            next_centre(points, centres, rgb, config)
        }
    });

    // Palette colours: exact means of the pixels near each centre (edge blends would pull a
    // flat colour off); all assigned pixels where none is near. Empty entries are dropped.
    let core2 = (config.max_delta_e * config.max_delta_e).max(1e-6);
    let mut sums = vec![[0u64; 4]; centres.len()];
    let mut core = vec![[0u64; 4]; centres.len()];
    for (p, &a) in points.iter().zip(&assign) {
        let b = &bins[p.key];
        let near = dist2(p.lab, centres[a]) <= core2;
        for c in 0..3 {
            sums[a][c] += b.sum[c];
            if near {
                core[a][c] += b.sum[c];
            }
        }
        sums[a][3] += b.count;
        if near {
            core[a][3] += b.count;
        }
    }
    let mut remap = vec![TRANSPARENT; centres.len()];
    let mut palette = Palette::default();
    for (i, (all, near)) in sums.iter().zip(&core).enumerate() {
        if all[3] > 0 {
            let c = if near[3] > 0 { near } else { all };
            remap[i] = palette.srgb.len() as u16;
            palette
                .srgb
                .push([0, 1, 2].map(|k| ((c[k] + c[3] / 2) / c[3]) as u8));
            palette.area_px.push(all[3]);
        }
    }
    let mut lut = vec![TRANSPARENT; BINS];
    for (p, &a) in points.iter().zip(&assign) {
        lut[p.key] = remap[a];
    }
    let threshold = config.alpha_threshold;
    let labels = pixels
        .par_iter()
        .map(|&p| {
            if p[3] < threshold {
                TRANSPARENT
            } else {
                lut[bin_key(p)]
            }
        })
        .collect();
    (palette, labels)
}

/// Deterministic k-means++: seeded with the heaviest point, grown with the point `next`
/// picks (until `limit` centres or none), then refined by Lloyd iterations. Returns the
/// centres (Oklab) and each point's centre.
fn cluster(
    points: &[Point],
    limit: usize,
    mut next: impl FnMut(&[Point], &mut [[f32; 3]], &mut [[f32; 3]]) -> Option<usize>,
) -> (Vec<[f32; 3]>, Vec<usize>) {
    let first = heaviest(points);
    let mut centres = vec![points[first].lab];
    let mut rgb = vec![points[first].rgb];
    while centres.len() < limit {
        match next(points, &mut centres, &mut rgb) {
            Some(i) => {
                centres.push(points[i].lab);
                rgb.push(points[i].rgb);
            }
            None => break,
        }
    }
    let assign = lloyd(points, &mut centres, &mut rgb, 12);
    (centres, assign)
}

fn heaviest(points: &[Point]) -> usize {
    points
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
        .map_or(0, |(i, _)| i)
}

/// The point the centres explain worst (weight × squared distance), if any is off them.
fn worst_explained(points: &[Point], centres: &[[f32; 3]]) -> Option<usize> {
    points
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.weight * nearest(centres, p.lab).1))
        .filter(|(_, s)| *s > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Photos: after the speckle filter a region holds pixels of several palette colours, so its
/// palette colour is a poor fill. Each opaque region's mean colour is taken instead, and the
/// means are quantized again (weighted by area, Oklab k-means) to at most `max_colors`, so
/// fills stay shared and the file small. Returns the new palette; region labels are updated.
pub fn recolor_regions(
    pixels: &[[u8; 4]],
    seg: &mut super::segment::Segmentation,
    max_colors: usize,
) -> Palette {
    puffin::profile_function!();
    let mut sums = vec![[0u64; 4]; seg.regions.len()];
    for (p, &r) in pixels.iter().zip(&seg.region_of) {
        let s = &mut sums[r as usize];
        for c in 0..3 {
            s[c] += u64::from(p[c]);
        }
        s[3] += 1;
    }
    let points: Vec<Point> = sums
        .iter()
        .enumerate()
        .filter(|(r, s)| s[3] > 0 && seg.regions[*r].label != TRANSPARENT)
        .map(|(r, s)| {
            let n = s[3] as f32;
            let rgb = [s[0] as f32 / n, s[1] as f32 / n, s[2] as f32 / n];
            Point {
                key: r,
                weight: n,
                lab: oklab(rgb),
                rgb,
            }
        })
        .collect();
    if points.is_empty() {
        return Palette::default();
    }
    let limit = max_colors
        .clamp(1, usize::from(TRANSPARENT) - 1)
        .min(points.len());
    let (centres, assign) = cluster(&points, limit, |points, centres, _| {
        worst_explained(points, centres)
    });
    let mut totals = vec![[0u64; 4]; centres.len()];
    for (p, &a) in points.iter().zip(&assign) {
        for c in 0..4 {
            totals[a][c] += sums[p.key][c];
        }
    }
    let mut remap = vec![TRANSPARENT; centres.len()];
    let mut palette = Palette::default();
    for (i, t) in totals.iter().enumerate() {
        if t[3] > 0 {
            remap[i] = palette.srgb.len() as u16;
            palette
                .srgb
                .push([0, 1, 2].map(|k| ((t[k] + t[3] / 2) / t[3]) as u8));
            palette.area_px.push(t[3]);
        }
    }
    for (p, &a) in points.iter().zip(&assign) {
        seg.regions[p.key].label = remap[a];
    }
    palette
}

/// Edge pixels: anti-aliasing mixes the two colours on either side of an edge, and the mix is
/// often nearer to a third palette colour than to either (a red–cream edge looks orange). Such
/// pixels become thin slivers of the wrong colour along every edge. A pixel next to other
/// labels that is explained far better as a mix of two neighbouring labels than by its own
/// label takes the one of the two it is closer to in the mix (its coverage), so edges fall
/// where the coverage crosses one half.
pub fn relabel_blends(
    pixels: &[[u8; 4]],
    labels: &[u16],
    palette: &Palette,
    width: usize,
    height: usize,
) -> Vec<u16> {
    puffin::profile_function!();
    let rgb: Vec<[f32; 3]> = palette.srgb.iter().map(|c| c.map(f32::from)).collect();
    let lab: Vec<[f32; 3]> = rgb.iter().map(|&c| oklab(c)).collect();
    let mut out = labels.to_vec();
    out.par_chunks_mut(width).enumerate().for_each(|(y, row)| {
        let mut near: Vec<u16> = Vec::with_capacity(9);
        for (x, slot) in row.iter_mut().enumerate() {
            let i = y * width + x;
            let own = labels[i];
            if own == TRANSPARENT {
                continue;
            }
            near.clear();
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= width as i64 || ny >= height as i64 {
                        continue;
                    }
                    let l = labels[ny as usize * width + nx as usize];
                    if l != TRANSPARENT && !near.contains(&l) {
                        near.push(l);
                    }
                }
            }
            if near.len() < 2 {
                continue;
            }
            let p = pixels[i];
            let point = Point {
                key: 0,
                weight: 1.0,
                rgb: [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])],
                lab: [0.0; 3],
            };
            let point = Point {
                lab: oklab(point.rgb),
                ..point
            };
            let own_d2 = dist2(point.lab, lab[usize::from(own)]);
            let mut best: Option<(f32, u16)> = None;
            for (k, &a) in near.iter().enumerate() {
                for &b in &near[k + 1..] {
                    let (ra, rb) = (rgb[usize::from(a)], rgb[usize::from(b)]);
                    let (d2, t) = blend_residual(&point, ra, rb);
                    let pick = if t < 0.5 { a } else { b };
                    if best.is_none_or(|(bd, _)| d2 < bd) {
                        best = Some((d2, pick));
                    }
                }
            }
            if let Some((d2, pick)) = best
                && pick != own
                && d2 * 4.0 < own_d2
            {
                *slot = pick;
            }
        }
    });
    out
}

/// How far (squared Oklab) `p` is from the nearest sRGB mix of `a` and `b`, and the mix
/// parameter there (0 = a, 1 = b).
fn blend_residual(p: &Point, a: [f32; 3], b: [f32; 3]) -> (f32, f32) {
    let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
    if len2 <= f32::EPSILON {
        return (f32::INFINITY, 0.0);
    }
    let q = p.rgb;
    let t = (((q[0] - a[0]) * ab[0] + (q[1] - a[1]) * ab[1] + (q[2] - a[2]) * ab[2]) / len2)
        .clamp(0.0, 1.0);
    let mix = [a[0] + t * ab[0], a[1] + t * ab[1], a[2] + t * ab[2]];
    (dist2(p.lab, oklab(mix)), t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QuantizeConfig {
        QuantizeConfig {
            colors: None,
            max_colors: 16,
            max_delta_e: 0.04,
            min_area_px: 4,
            ignore_blends: true,
            alpha_threshold: 128,
        }
    }

    #[test]
    fn flat_colours_are_found_exactly_and_blends_ignored() {
        // Red | blue halves with a purple blend column between them.
        let mut pixels = Vec::new();
        for _y in 0..20 {
            for x in 0..21 {
                pixels.push(match x {
                    0..10 => [200, 30, 40, 255],
                    10 => [120, 30, 140, 255],
                    _ => [20, 40, 230, 255],
                });
            }
        }
        let (palette, labels) = quantize(&pixels, &config());
        assert_eq!(palette.srgb.len(), 2, "{:?}", palette.srgb);
        assert!(palette.srgb.contains(&[200, 30, 40]));
        assert!(palette.srgb.contains(&[20, 40, 230]));
        assert_eq!(labels.len(), pixels.len());
    }

    #[test]
    fn small_distinct_colours_get_their_own_entry() {
        let mut pixels = vec![[255, 255, 255, 255]; 400];
        for p in &mut pixels[..9] {
            *p = [0, 160, 0, 255];
        }
        let (palette, _) = quantize(&pixels, &config());
        assert_eq!(palette.srgb.len(), 2);
    }

    #[test]
    fn smooth_gradients_get_a_palette_although_no_bin_covers_the_minimum_area() {
        // 400 × 300 px from blue to red and green: every 15-bit bin holds under 256 pixels.
        let pixels: Vec<[u8; 4]> = (0..300u32)
            .flat_map(|y| {
                (0..400u32).map(move |x| {
                    let (r, g) = ((x * 255 / 399) as u8, (y * 255 / 299) as u8);
                    [r, g, 255 - r, 255]
                })
            })
            .collect();
        let config = QuantizeConfig {
            max_colors: 20,
            max_delta_e: 0.07,
            min_area_px: 256,
            ignore_blends: false,
            ..config()
        };
        let (palette, _) = quantize(&pixels, &config);
        assert!(palette.srgb.len() >= 8, "{:?}", palette.srgb);
        // A speck of a distinct colour smaller than the minimum area still gets none.
        let mut pixels = vec![[255, 255, 255, 255]; 4000];
        for p in &mut pixels[..100] {
            *p = [0, 160, 0, 255];
        }
        assert_eq!(quantize(&pixels, &config).0.srgb.len(), 1);
    }

    #[test]
    fn transparent_pixels_are_labelled_transparent() {
        let pixels = vec![[10, 10, 10, 0], [10, 10, 10, 255]];
        let (palette, labels) = quantize(&pixels, &config());
        assert_eq!(labels[0], TRANSPARENT);
        assert_eq!(palette.srgb[usize::from(labels[1])], [10, 10, 10]);
        let (palette, labels) = quantize(&[[1, 2, 3, 0]], &config());
        assert!(palette.srgb.is_empty());
        assert_eq!(labels, vec![TRANSPARENT]);
    }
}
