//! Honest figures: the SVG rendered back with resvg at the source size and compared with the
//! source, both composited on white. PSNR over RGB; SSIM as scikit-image computes it by default
//! (7×7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, mean over channels and over
//! the pixels away from the border), so the figures agree with `../shared/bench/vectorize_eval.py`;
//! and the fraction of pixels the SVG leaves not fully covered where the source is opaque.

use resvg::{tiny_skia, usvg};

use crate::error::{Error, Result};

/// How close the SVG is to the raster.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Fidelity {
    /// Peak signal-to-noise ratio in dB (capped at 100).
    pub psnr_db: f64,
    /// Structural similarity (1 = identical).
    pub ssim: f64,
    /// Opaque source pixels that the SVG covers with alpha below 250/255.
    pub uncovered_fraction: f64,
}

/// Renders `svg` at `width` × `height`; premultiplied RGBA.
pub fn render(svg: &str, width: u32, height: u32) -> Result<tiny_skia::Pixmap> {
    let tree = usvg::Tree::from_str(svg, &usvg::Options::default())
        .map_err(|e| Error::Internal(format!("the SVG written does not parse: {e}")))?;
    let mut pixmap = tiny_skia::Pixmap::new(width.max(1), height.max(1))
        .ok_or_else(|| Error::Internal(format!("cannot render {width}x{height}")))?;
    let size = tree.size();
    let transform = tiny_skia::Transform::from_scale(
        width as f32 / size.width(),
        height as f32 / size.height(),
    );
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    Ok(pixmap)
}

fn on_white(rgb: [u8; 3], alpha: u8, premultiplied: bool) -> [f64; 3] {
    let a = f64::from(alpha) / 255.0;
    rgb.map(|c| {
        let c = f64::from(c);
        if premultiplied {
            c + 255.0 * (1.0 - a)
        } else {
            c * a + 255.0 * (1.0 - a)
        }
    })
}

/// Compares the SVG with the source (straight-alpha RGBA, row-major).
pub fn fidelity(svg: &str, source: &[[u8; 4]], width: u32, height: u32) -> Result<Fidelity> {
    puffin::profile_function!();
    let pixmap = render(svg, width, height)?;
    let rendered = pixmap.pixels();
    let n = source.len();
    let src = |i: usize| {
        let s = source[i];
        on_white([s[0], s[1], s[2]], s[3], false)
    };
    let out = |i: usize| {
        let r = rendered[i];
        on_white([r.red(), r.green(), r.blue()], r.alpha(), true)
    };
    let mut se = 0f64;
    let mut opaque = 0u64;
    let mut uncovered = 0u64;
    for i in 0..n {
        let (a, b) = (src(i), out(i));
        for c in 0..3 {
            se += (a[c] - b[c]).powi(2);
        }
        if source[i][3] == 255 {
            opaque += 1;
            uncovered += u64::from(rendered[i].alpha() < 250);
        }
    }
    let mse = se / (3 * n.max(1)) as f64;
    let psnr_db = if mse == 0.0 {
        100.0
    } else {
        (10.0 * (255.0f64 * 255.0 / mse).log10()).min(100.0)
    };
    Ok(Fidelity {
        psnr_db,
        ssim: ssim(&src, &out, width as usize, height as usize),
        uncovered_fraction: uncovered as f64 / opaque.max(1) as f64,
    })
}

/// PSNR in dB (capped at 100 = identical) of two straight-alpha RGBA 8-bit images of
/// `width` × `height`, both composited on white.
pub fn psnr_rgba(a: &[u8], b: &[u8], width: u32, height: u32) -> f64 {
    let n = (width as usize * height as usize)
        .min(a.len() / 4)
        .min(b.len() / 4);
    let mut se = 0f64;
    for i in 0..n {
        let (p, q) = (rgba_on_white(a, i), rgba_on_white(b, i));
        for c in 0..3 {
            se += (p[c] - q[c]).powi(2);
        }
    }
    let mse = se / (3 * n.max(1)) as f64;
    if mse == 0.0 {
        100.0
    } else {
        (10.0 * (255.0f64 * 255.0 / mse).log10()).min(100.0)
    }
}

fn rgba_on_white(img: &[u8], i: usize) -> [f64; 3] {
    let p = &img[i * 4..i * 4 + 4];
    on_white([p[0], p[1], p[2]], p[3], false)
}

/// PSNR and SSIM of two straight-alpha RGBA 8-bit images of `width` × `height`, both
/// composited on white (the quality of raster variants, e.g. `opossum bench quality`).
pub fn compare_rgba(a: &[u8], b: &[u8], width: u32, height: u32) -> Fidelity {
    Fidelity {
        psnr_db: psnr_rgba(a, b, width, height),
        ssim: ssim(
            &|i| rgba_on_white(a, i),
            &|i| rgba_on_white(b, i),
            width as usize,
            height as usize,
        ),
        uncovered_fraction: 0.0,
    }
}

/// Mean SSIM over channels, 7×7 uniform windows (scikit-image's defaults), with running column
/// sums so that memory stays at a few rows.
fn ssim(a: &dyn Fn(usize) -> [f64; 3], b: &dyn Fn(usize) -> [f64; 3], w: usize, h: usize) -> f64 {
    const WIN: usize = 7;
    if w < WIN || h < WIN {
        // Too small for a window: one window over the whole image.
        return (0..3)
            .map(|c| {
                let xs: Vec<f64> = (0..w * h).map(|i| a(i)[c]).collect();
                let ys: Vec<f64> = (0..w * h).map(|i| b(i)[c]).collect();
                window_ssim(&xs, &ys)
            })
            .sum::<f64>()
            / 3.0;
    }
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let np = (WIN * WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let half = WIN / 2;
    // cols[x][c][k]: sums over the window's rows of x, y, x², y², xy.
    let mut cols = vec![[[0f64; 5]; 3]; w];
    let add_row = |cols: &mut Vec<[[f64; 5]; 3]>, y: usize, sign: f64| {
        for (x, col) in cols.iter_mut().enumerate() {
            let (p, q) = (a(y * w + x), b(y * w + x));
            for c in 0..3 {
                let v = [p[c], q[c], p[c] * p[c], q[c] * q[c], p[c] * q[c]];
                for k in 0..5 {
                    col[c][k] += sign * v[k];
                }
            }
        }
    };
    for y in 0..WIN - 1 {
        add_row(&mut cols, y, 1.0);
    }
    let mut total = 0f64;
    let mut count = 0u64;
    for y in half..h - half {
        add_row(&mut cols, y + half, 1.0);
        for c in 0..3 {
            let mut s = [0f64; 5];
            for col in &cols[..WIN] {
                for k in 0..5 {
                    s[k] += col[c][k];
                }
            }
            for x in half..w - half {
                if x > half {
                    for k in 0..5 {
                        s[k] += cols[x + half][c][k] - cols[x - half - 1][c][k];
                    }
                }
                let m = s.map(|v| v / np);
                let (mx, my) = (m[0], m[1]);
                let vx = cov_norm * (m[2] - mx * mx);
                let vy = cov_norm * (m[3] - my * my);
                let vxy = cov_norm * (m[4] - mx * my);
                total += ((2.0 * mx * my + c1) * (2.0 * vxy + c2))
                    / ((mx * mx + my * my + c1) * (vx + vy + c2));
                count += 1;
            }
        }
        add_row(&mut cols, y - half, -1.0);
    }
    total / count.max(1) as f64
}

fn window_ssim(x: &[f64], y: &[f64]) -> f64 {
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let n = x.len().max(1) as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let vx = x.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / n;
    let vy = y.iter().map(|v| (v - my).powi(2)).sum::<f64>() / n;
    let vxy = x
        .iter()
        .zip(y)
        .map(|(a, b)| (a - mx) * (b - my))
        .sum::<f64>()
        / n;
    ((2.0 * mx * my + c1) * (2.0 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
}
