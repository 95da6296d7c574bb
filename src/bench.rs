//! Benchmarks shared by `opossum bench ops` and the criterion benches: the operations the peer
//! scripts in `shared/bench/ops_inproc.py` time (same definitions), and a representative chain
//! for every registered op. Times are for the full tiled render from an in-memory 8-bit RGB
//! image to an 8-bit output buffer (what a render does between decode and encode): RGBA, or
//! one grey channel for a chain that ends grey on the 8-bit kernels (as the files it writes).

pub mod cache;
pub mod preview;
pub mod quality;
pub use preview::PreviewBench;

use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};

use crate::chain::raw::RawValue;
use crate::chain::{Chain, ChainOp};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::io::decode::Orientation;
use crate::ops::{self, OpDef};

/// One benchmarked operation.
pub struct BenchCase {
    /// Short name, as in the peer scripts (`blur3`, `bc`, …).
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The chain for a square source of the given side.
    pub chain: fn(u32) -> Chain,
}

/// A chain step with some parameters set.
pub fn step(id: &str, pairs: &[(&str, RawValue)]) -> ChainOp {
    let def = ops::find(id).unwrap_or_else(|| panic!("unknown op {id}"));
    let mut op = ChainOp::new(def);
    for (k, v) in pairs {
        if let Err(e) = op.params.set(def.params, k, v) {
            panic!("bad bench param {id}.{k}: {e}");
        }
    }
    op
}

fn chain(ops: Vec<ChainOp>) -> Chain {
    Chain {
        name: None,
        ops,
        vectorize: None,
    }
}

/// The peer comparison set (definitions from `ops_inproc.py`).
pub fn peer_cases() -> Vec<BenchCase> {
    vec![
        BenchCase {
            name: "blur3",
            description: "Gaussian blur, sigma 3",
            chain: |_| {
                chain(vec![step(
                    "gaussian_blur",
                    &[("sigma", RawValue::Float(3.0))],
                )])
            },
        },
        BenchCase {
            name: "blur20",
            description: "Gaussian blur, sigma 20",
            chain: |_| {
                chain(vec![step(
                    "gaussian_blur",
                    &[("sigma", RawValue::Float(20.0))],
                )])
            },
        },
        BenchCase {
            name: "bc",
            description: "brightness 1.1, contrast 1.2",
            chain: |_| {
                chain(vec![step(
                    "adjust_colors",
                    &[
                        ("brightness", RawValue::Float(1.1)),
                        ("contrast", RawValue::Float(1.2)),
                    ],
                )])
            },
        },
        BenchCase {
            name: "sobel",
            description: "greyscale + Sobel magnitude",
            chain: |_| chain(vec![step("grayscale", &[]), step("edge_detect", &[])]),
        },
        BenchCase {
            name: "grey",
            description: "RGB to greyscale",
            chain: |_| chain(vec![step("grayscale", &[])]),
        },
        BenchCase {
            name: "resize",
            description: "resize to 1/4, Lanczos3",
            chain: |side| {
                chain(vec![step(
                    "resize",
                    &[("width", RawValue::Int(i64::from(side / 4)))],
                )])
            },
        },
        BenchCase {
            name: "unsharp",
            description: "unsharp mask sigma 2, amount 1.5",
            chain: |_| {
                chain(vec![step(
                    "sharpen",
                    &[
                        ("radius", RawValue::Float(2.0)),
                        ("amount", RawValue::Float(1.5)),
                    ],
                )])
            },
        },
    ]
}

/// A representative single-op chain for `def` on a square source of `side` px.
pub fn op_chain(def: &'static OpDef, side: u32) -> Chain {
    let op = match def.id {
        "resize" => step("resize", &[("width", RawValue::Int(i64::from(side / 4)))]),
        "crop" => step(
            "crop",
            &[
                ("x", RawValue::Int(i64::from(side / 8))),
                ("y", RawValue::Int(i64::from(side / 8))),
                ("width", RawValue::Int(i64::from(side / 2))),
            ],
        ),
        _ => ChainOp::new(def),
    };
    chain(vec![op])
}

/// A deterministic photo-like RGB test image: smooth gradients, texture and hard edges.
pub fn synthetic_photo(side: u32) -> DynamicImage {
    let mut state = 0x2545_f491_u32;
    let img = RgbImage::from_fn(side, side, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 17) as f32 - 8.0;
        let (fx, fy) = (x as f32 / side as f32, y as f32 / side as f32);
        let disc = if (fx - 0.6).powi(2) + (fy - 0.4).powi(2) < 0.05 {
            80.0
        } else {
            0.0
        };
        let wave = ((fx * 40.0).sin() * (fy * 30.0).cos()) * 30.0;
        let r = 40.0 + 150.0 * fx + wave + disc + noise;
        let g = 60.0 + 120.0 * fy - wave + noise;
        let b = 90.0 + 80.0 * (1.0 - fx) + disc * 0.5 + noise;
        image::Rgb([r, g, b].map(|v| v.clamp(0.0, 255.0) as u8))
    });
    DynamicImage::ImageRgb8(img)
}

/// Median and minimum of `runs` timed renders of `chain` on `source` (after one warm-up).
pub fn time_chain(
    engine: &Engine,
    source: &DynamicImage,
    chain: &Chain,
    runs: usize,
) -> Result<(Duration, Duration)> {
    let control = Default::default();
    engine.render_source(source, Orientation::NoTransforms, chain, false, &control)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out =
            engine.render_source(source, Orientation::NoTransforms, chain, false, &control)?;
        times.push(t.elapsed());
        drop(out);
    }
    times.sort();
    Ok((times[times.len() / 2], times[0]))
}

/// PSNR in dB (100 = identical) of `chain` rendered by `engine` against the same render at
/// the `ultra` preset: what the engine's quality preset costs in quality.
pub fn psnr_vs_ultra(engine: &Engine, source: &DynamicImage, chain: &Chain) -> Result<f64> {
    let control = Default::default();
    let (a, _) = engine.render_source(source, Orientation::NoTransforms, chain, false, &control)?;
    let ultra = engine.with_quality(crate::quality::QualityPreset::Ultra);
    let (b, _) = ultra.render_source(source, Orientation::NoTransforms, chain, false, &control)?;
    if a.size != b.size {
        return Err(Error::Internal("the preset changed the output size".into()));
    }
    Ok(crate::vectorize::metrics::psnr_rgba(
        &b.to_rgba8(),
        &a.to_rgba8(),
        a.size.width,
        a.size.height,
    ))
}

/// A square source of `side` px: the synthetic photo, or `image` cropped to a centred square
/// and resized (Lanczos3) to `side`.
pub fn source_for(
    engine: &Engine,
    image: Option<&DynamicImage>,
    side: u32,
) -> Result<DynamicImage> {
    let Some(image) = image else {
        return Ok(synthetic_photo(side));
    };
    let edge = image.width().min(image.height());
    let square = chain(vec![
        step(
            "crop",
            &[
                ("x", RawValue::Int(i64::from((image.width() - edge) / 2))),
                ("y", RawValue::Int(i64::from((image.height() - edge) / 2))),
                ("width", RawValue::Int(i64::from(edge))),
                ("height", RawValue::Int(i64::from(edge))),
            ],
        ),
        step(
            "resize",
            &[
                ("width", RawValue::Int(i64::from(side))),
                ("height", RawValue::Int(i64::from(side))),
                ("mode", RawValue::String("exact".into())),
            ],
        ),
    ]);
    let (out, _) = engine.render_source(
        image,
        Orientation::NoTransforms,
        &square,
        false,
        &Default::default(),
    )?;
    let rgba = image::RgbaImage::from_raw(out.size.width, out.size.height, out.to_rgba8())
        .ok_or_else(|| Error::Internal("bench source buffer size".into()))?;
    Ok(DynamicImage::ImageRgb8(
        DynamicImage::ImageRgba8(rgba).to_rgb8(),
    ))
}
