//! `opossum bench quality`: what each quality preset costs and gives, measured on photos.
//!
//! For every image and preset the chain is rendered in memory and encoded (median of a few
//! runs, after a warm-up). Quality is measured twice against the `ultra` result of the same
//! image, as PSNR (8-bit RGB) and SSIM (7×7 windows): of the rendered pixels (the algorithm
//! choices) and of the encoded file decoded again (adding the encoder's effort). The speed-up
//! is `ultra`'s time (render + encode) over the preset's, summed over the images.

use std::time::{Duration, Instant};

use image::DynamicImage;

use super::{chain, step};
use crate::chain::Chain;
use crate::chain::raw::RawValue;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::io::decode::Orientation;
use crate::io::encode::{self, EncodeOptions, OutputFormat};
use crate::quality::QualityPreset;
use crate::vectorize::metrics;

/// The bundled sample photos (CC0, `assets/samples/SOURCES.md`): the default images.
pub static SAMPLES: &[(&str, &[u8])] = &[
    (
        "coffee.png",
        include_bytes!("../../assets/samples/coffee.png"),
    ),
    (
        "rocket.jpg",
        include_bytes!("../../assets/samples/rocket.jpg"),
    ),
];

/// Figures of one preset over all images.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PresetFigures {
    /// The preset.
    pub preset: &'static str,
    /// Median render time summed over the images, ms.
    pub render_ms: f64,
    /// Median encode time summed over the images, ms.
    pub encode_ms: f64,
    /// `ultra`'s total time over this preset's.
    pub speedup: f64,
    /// Rendered pixels: worst PSNR against `ultra` over the images, dB (100 = identical).
    pub min_psnr_db: f64,
    /// Rendered pixels: mean PSNR against `ultra`, dB.
    pub mean_psnr_db: f64,
    /// Rendered pixels: worst SSIM against `ultra`.
    pub min_ssim: f64,
    /// Encoded files: worst PSNR against `ultra`'s file, dB.
    pub file_min_psnr_db: f64,
    /// Encoded bytes summed over the images.
    pub bytes: u64,
}

/// The default chain: every op family a preset changes (resize with the `auto` filter, a
/// Gaussian blur, an unsharp mask) plus a colour adjustment.
pub fn default_chain() -> Chain {
    chain(vec![
        step(
            "resize",
            &[
                ("width", RawValue::Int(1600)),
                ("height", RawValue::Int(1600)),
                ("mode", RawValue::String("fit".into())),
                ("upscale", RawValue::Bool(false)),
            ],
        ),
        step("gaussian_blur", &[("sigma", RawValue::Float(4.0))]),
        step(
            "sharpen",
            &[
                ("amount", RawValue::Float(1.0)),
                ("radius", RawValue::Float(2.0)),
            ],
        ),
        step(
            "adjust_colors",
            &[
                ("contrast", RawValue::Float(1.1)),
                ("saturation", RawValue::Float(1.1)),
            ],
        ),
    ])
}

struct Run {
    render: Duration,
    encode: Duration,
    pixels: image::RgbaImage,
    bytes: Vec<u8>,
}

fn run_once(
    engine: &Engine,
    image: &DynamicImage,
    chain: &Chain,
    options: &EncodeOptions,
) -> Result<Run> {
    let t0 = Instant::now();
    let (out, _) = engine.render_source(
        image,
        Orientation::NoTransforms,
        chain,
        false,
        &Default::default(),
    )?;
    let t1 = Instant::now();
    let bytes = encode::encode(&out, options, None, engine.quality_preset())
        .map_err(|reason| Error::Internal(format!("bench encode: {reason}")))?;
    let encode = t1.elapsed();
    let pixels = image::RgbaImage::from_raw(out.size.width, out.size.height, out.to_rgba8())
        .ok_or_else(|| Error::Internal("bench output buffer size".into()))?;
    Ok(Run {
        render: t1 - t0,
        encode,
        pixels,
        bytes,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rgba(bytes: &[u8]) -> Result<image::RgbaImage> {
    image::load_from_memory(bytes)
        .map(|i| i.to_rgba8())
        .map_err(|e| Error::Internal(format!("bench output does not decode: {e}")))
}

/// Measure every preset on `images` with `chain`, encoding with `options`; `runs` timed runs
/// per image and preset. `progress` gets a line per image and preset.
pub fn measure(
    engine: &Engine,
    images: &[DynamicImage],
    chain: &Chain,
    options: &EncodeOptions,
    runs: usize,
    mut progress: impl FnMut(&str),
) -> Result<Vec<PresetFigures>> {
    if options.format == OutputFormat::Svg {
        return Err(Error::Usage {
            reason: "bench quality encodes raster formats; choose webp, jpeg, png or tiff".into(),
            path: None,
        });
    }
    let mut references: Vec<(image::RgbaImage, image::RgbaImage)> = Vec::new();
    let mut figures = Vec::new();
    for preset in QualityPreset::ALL {
        let engine = engine.with_quality(preset);
        let (mut render, mut enc, mut bytes) = (Duration::ZERO, Duration::ZERO, 0u64);
        let (mut psnrs, mut ssims, mut file_psnrs) = (Vec::new(), Vec::new(), Vec::new());
        for (i, image) in images.iter().enumerate() {
            run_once(&engine, image, chain, options)?; // warm-up
            let timed: Vec<Run> = (0..runs.max(1))
                .map(|_| run_once(&engine, image, chain, options))
                .collect::<Result<_>>()?;
            render += median(timed.iter().map(|r| r.render).collect());
            enc += median(timed.iter().map(|r| r.encode).collect());
            let run = &timed[0];
            bytes += run.bytes.len() as u64;
            let decoded = rgba(&run.bytes)?;
            if preset == QualityPreset::Ultra {
                references.push((run.pixels.clone(), decoded.clone()));
            }
            let (pixels, file) = &references[i];
            let (w, h) = pixels.dimensions();
            if run.pixels.dimensions() != (w, h) || decoded.dimensions() != (w, h) {
                return Err(Error::Internal(format!(
                    "preset {} changed the output size",
                    preset.name()
                )));
            }
            let f = metrics::compare_rgba(pixels.as_raw(), run.pixels.as_raw(), w, h);
            psnrs.push(f.psnr_db);
            ssims.push(f.ssim);
            file_psnrs.push(metrics::compare_rgba(file.as_raw(), decoded.as_raw(), w, h).psnr_db);
            progress(&format!(
                "{:<9} image {}: {:.1} dB, SSIM {:.4}",
                preset.name(),
                i + 1,
                f.psnr_db,
                f.ssim
            ));
        }
        figures.push(PresetFigures {
            preset: preset.name(),
            render_ms: render.as_secs_f64() * 1e3,
            encode_ms: enc.as_secs_f64() * 1e3,
            speedup: 0.0,
            min_psnr_db: psnrs.iter().copied().fold(f64::INFINITY, f64::min),
            mean_psnr_db: psnrs.iter().sum::<f64>() / psnrs.len().max(1) as f64,
            min_ssim: ssims.iter().copied().fold(f64::INFINITY, f64::min),
            file_min_psnr_db: file_psnrs.iter().copied().fold(f64::INFINITY, f64::min),
            bytes,
        });
    }
    let ultra = figures[0].render_ms + figures[0].encode_ms;
    for f in &mut figures {
        f.speedup = ultra / (f.render_ms + f.encode_ms).max(1e-9);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ultra_is_its_own_reference_and_lower_presets_differ_but_stay_close() {
        let engine = Engine::new(crate::config::Config::default()).unwrap();
        // With alpha: opaque 8-bit images blur exactly below sigma 8 at every preset, and at
        // this size the resize does nothing, so they would match `ultra`.
        let photo = super::super::synthetic_photo(160);
        let images = vec![image::DynamicImage::ImageRgba8(photo.to_rgba8())];
        let options = EncodeOptions {
            format: OutputFormat::Png,
            quality: 90,
            lossless: false,
        };
        let figures = measure(&engine, &images, &default_chain(), &options, 1, |_| {}).unwrap();
        assert_eq!(figures.len(), 5);
        assert_eq!(figures[0].min_psnr_db, 100.0);
        assert!((figures[0].min_ssim - 1.0).abs() < 1e-12);
        // Draft swaps the blur and sharpen algorithms: visibly different, still close.
        let draft = &figures[4];
        assert!(draft.min_psnr_db < 100.0, "{draft:?}");
        assert!(
            draft.min_psnr_db > 25.0 && draft.min_ssim > 0.8,
            "{draft:?}"
        );
    }
}
