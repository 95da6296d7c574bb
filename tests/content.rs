//! Algorithm selection by image content: images with little detail get the cheaper variant
//! the preset allows, within its stated PSNR tolerance; busy ones keep the precise variant
//! (the very pixels of a render without the measure); renders, previews and files agree on
//! the measure, and the choice is reported.

mod common;

use common::encode;
use image::{DynamicImage, ImageFormat, RgbImage};
use opossum::chain::Chain;
use opossum::chain::raw::RawValue;
use opossum::config::{Config, QualityPreset};
use opossum::engine::Engine;
use opossum::engine::content::Detail;
use opossum::engine::pyramid::Pyramid;
use opossum::io::decode::Orientation;
use opossum::io::encode::{EncodeOptions, OutputFormat};
use opossum::vectorize::metrics::psnr_rgba;

fn engine(quality: QualityPreset) -> Engine {
    let mut config = Config::default();
    config.performance.max_cpu_cores = 2;
    Engine::new(config).unwrap().with_quality(quality)
}

fn chain(op: &str, pairs: &[(&str, RawValue)]) -> Chain {
    Chain {
        name: None,
        vectorize: None,
        ops: vec![opossum::bench::step(op, pairs)],
    }
}

/// A sky-like gradient with faint sensor noise: detail well under 0.01.
fn smooth(width: u32, height: u32) -> DynamicImage {
    let mut state = 0x1234_5678_u32;
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 3) as f32 - 1.0;
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        image::Rgb([
            (30.0 + 180.0 * fx + noise) as u8,
            (60.0 + 140.0 * fy + noise) as u8,
            (200.0 - 60.0 * fx + noise) as u8,
        ])
    }))
}

/// Thin dark lines on white, like a scanned form: detail far above every threshold.
fn busy(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        if y % 11 < 2 || x % 17 < 2 {
            image::Rgb([20, 20, 30])
        } else {
            image::Rgb([250, 250, 245])
        }
    }))
}

fn render(
    engine: &Engine,
    image: &DynamicImage,
    chain: &Chain,
) -> (Vec<u8>, u32, u32, Vec<String>) {
    let (out, stats) = engine
        .render_source(
            image,
            Orientation::NoTransforms,
            chain,
            false,
            &Default::default(),
        )
        .unwrap();
    // The content choices (not the 8-bit kernels' notes, which `ops_contract` covers).
    let choices = stats
        .choices
        .into_iter()
        .filter(|c| !c.contains("on 8-bit samples") && !c.contains("as 8-bit tables"))
        .collect();
    (out.to_rgba8(), out.size.width, out.size.height, choices)
}

#[test]
fn smooth_images_get_the_box_blur_within_the_high_presets_tolerance() {
    // With alpha, so that the f32 path runs the choice (the 8-bit kernels blur exactly below
    // sigma 8: next test).
    let image = DynamicImage::ImageRgba8(smooth(640, 400).to_rgba8());
    assert!(Detail::measure(&image).gradient.unwrap() < 0.01);
    let blur = chain("gaussian_blur", &[("sigma", RawValue::Float(3.0))]);
    let (high, w, h, choices) = render(&engine(QualityPreset::High), &image, &blur);
    assert_eq!(choices.len(), 1, "{choices:?}");
    assert!(
        choices[0].starts_with("gaussian_blur: 3 box passes instead of exact blur"),
        "{choices:?}"
    );
    let (ultra, ..) = render(&engine(QualityPreset::Ultra), &image, &blur);
    assert_ne!(high, ultra, "the cheaper variant was not used");
    let psnr = psnr_rgba(&ultra, &high, w, h);
    assert!(psnr >= 50.0, "{psnr} dB");
}

#[test]
fn opaque_8_bit_sources_blur_exactly_below_sigma_8_at_every_preset_and_say_so() {
    // On the 8-bit kernels (which run the leading blur of such sources) the exact blur is the
    // faster one there; the f32 path (a blur after sepia) and the preview follow.
    let image = smooth(640, 400);
    let blur = chain("gaussian_blur", &[("sigma", RawValue::Float(3.0))]);
    let mut after_sepia = blur.clone();
    after_sepia.ops.insert(
        0,
        opossum::bench::step(
            "color_convert",
            &[("mode", RawValue::String("sepia".into()))],
        ),
    );
    let render_from = |engine: &Engine, source: &DynamicImage, chain: &Chain| {
        let (out, stats) = engine
            .render_source(
                source,
                Orientation::NoTransforms,
                chain,
                false,
                &Default::default(),
            )
            .unwrap();
        (out.to_rgba8(), stats.choices)
    };
    let all = |engine: &Engine, chain: &Chain| render_from(engine, &image, chain);
    let (high, high_choices) = all(&engine(QualityPreset::High), &blur);
    // `high` chooses exact at sigma 3: no line, and the content measure does not apply.
    assert_eq!(high_choices, ["gaussian_blur on 8-bit samples"]);
    let (high_sepia, _) = all(&engine(QualityPreset::High), &after_sepia);
    for preset in [
        QualityPreset::Balanced,
        QualityPreset::Fast,
        QualityPreset::Draft,
    ] {
        let boxes = if preset == QualityPreset::Draft { 2 } else { 3 };
        let (out, choices) = all(&engine(preset), &blur);
        assert!(out == high, "{preset:?}: not the exact blur's pixels");
        assert_eq!(
            choices,
            [
                format!(
                    "gaussian_blur: exact blur instead of {boxes} box passes (opaque 8-bit \
                     source, sigma 3.0 < 8 px)"
                ),
                "gaussian_blur on 8-bit samples".to_owned()
            ],
            "{preset:?}"
        );
        // The f32 path: exact too (the same pixels as `high`), and the same line.
        let (out, choices) = all(&engine(preset), &after_sepia);
        assert!(
            out == high_sepia,
            "{preset:?}: not the exact blur's pixels (f32)"
        );
        assert_eq!(choices.len(), 1, "{choices:?}");
        assert!(choices[0].starts_with("gaussian_blur: exact blur instead of"));
    }
    // With alpha the boxes run at `fast`.
    let rgba = DynamicImage::ImageRgba8(image.to_rgba8());
    let (out, choices) = render_from(&engine(QualityPreset::Fast), &rgba, &blur);
    let (exact, _) = render_from(&engine(QualityPreset::Ultra), &rgba, &blur);
    assert!(choices.is_empty(), "{choices:?}");
    assert!(out != exact, "the boxes did not run");
}

#[test]
fn busy_images_keep_the_exact_blur_and_its_pixels() {
    // With alpha, so that `high` keeps the f32 working format (opaque 8-bit RGB would take
    // the 8-bit blur, within rounding of these pixels: `ops_contract` covers it).
    let image = DynamicImage::ImageRgba8(busy(640, 400).to_rgba8());
    assert!(Detail::measure(&image).gradient.unwrap() > 0.1);
    let blur = chain("gaussian_blur", &[("sigma", RawValue::Float(3.0))]);
    let (high, .., choices) = render(&engine(QualityPreset::High), &image, &blur);
    assert_eq!(choices.len(), 1);
    assert!(
        choices[0].starts_with("gaussian_blur: exact blur kept"),
        "{choices:?}"
    );
    let (ultra, ..) = render(&engine(QualityPreset::Ultra), &image, &blur);
    assert_eq!(high, ultra);
}

#[test]
fn shrinking_smooth_images_uses_the_cheaper_filter_within_tolerance_and_enlarging_never_does() {
    let image = smooth(800, 600);
    let auto = |width: i64| {
        chain(
            "resize",
            &[
                ("width", RawValue::Int(width)),
                ("height", RawValue::Int(width)),
                ("mode", RawValue::String("fit".into())),
                ("upscale", RawValue::Bool(true)),
            ],
        )
    };
    let lanczos = chain(
        "resize",
        &[
            ("width", RawValue::Int(200)),
            ("height", RawValue::Int(200)),
            ("mode", RawValue::String("fit".into())),
            ("filter", RawValue::String("lanczos3".into())),
        ],
    );
    for (preset, filter, tolerance_db) in [
        (QualityPreset::High, "bicubic", 50.0),
        (QualityPreset::Balanced, "bicubic", 45.0),
        (QualityPreset::Fast, "bilinear", 40.0),
    ] {
        let engine = engine(preset);
        let (out, w, h, choices) = render(&engine, &image, &auto(200));
        assert_eq!(choices.len(), 1, "{preset:?}");
        assert!(
            choices[0].starts_with(&format!("resize: {filter} instead of")),
            "{preset:?}: {choices:?}"
        );
        let (reference, ..) = render(&engine, &image, &lanczos);
        let psnr = psnr_rgba(&reference, &out, w, h);
        assert!(psnr >= tolerance_db, "{preset:?}: {psnr} dB");
        // Enlarging is not what the thresholds were measured on: the preset's filter stands.
        let (enlarged, .., choices) = render(&engine, &image, &auto(1600));
        assert!(choices.is_empty(), "{preset:?}: {choices:?}");
        let explicit = chain(
            "resize",
            &[
                ("width", RawValue::Int(1600)),
                ("height", RawValue::Int(1600)),
                ("mode", RawValue::String("fit".into())),
                ("upscale", RawValue::Bool(true)),
                (
                    "filter",
                    RawValue::String(preset.resize_filter().to_owned()),
                ),
            ],
        );
        assert_eq!(enlarged, render(&engine, &image, &explicit).0, "{preset:?}");
    }
    // `ultra` and `draft` make no choice by content.
    for preset in [QualityPreset::Ultra, QualityPreset::Draft] {
        let (.., choices) = render(&engine(preset), &image, &auto(200));
        assert!(choices.is_empty(), "{preset:?}");
    }
}

#[test]
fn previews_at_every_level_choose_what_the_export_chooses() {
    // With alpha at `high`: sigma 8 px gives boxes whatever the content, sigma 3 boxes by
    // content. Opaque 8-bit at `fast`: boxes from sigma 8, exact below (the source's kind is
    // part of the measure).
    let rgba = DynamicImage::ImageRgba8(smooth(1200, 800).to_rgba8());
    for (image, preset) in [
        (rgba, QualityPreset::High),
        (smooth(1200, 800), QualityPreset::Fast),
    ] {
        previews_choose_what_the_export_chooses(&image, preset);
    }
}

/// Render `chain` on a pyramid level as the app's preview does: level-scaled, with the full
/// image's measure.
fn preview(
    engine: &Engine,
    pyramid: &Pyramid,
    level: &opossum::engine::pyramid::Level,
    chain: &Chain,
) -> (
    opossum::io::encode::OutputImage,
    opossum::engine::render::RenderStats,
) {
    engine
        .render_source_scaled(
            &level.image,
            Orientation::NoTransforms,
            chain,
            level.scale,
            Some(pyramid.detail),
            false,
            &Default::default(),
        )
        .unwrap()
}

fn previews_choose_what_the_export_chooses(image: &DynamicImage, preset: QualityPreset) {
    let pyramid = Pyramid::build(image).unwrap();
    assert!(pyramid.levels.len() >= 3);
    let engine = engine(preset);
    for sigma in [3.0, 8.0] {
        let blur = chain("gaussian_blur", &[("sigma", RawValue::Float(sigma))]);
        let (.., export) = render(&engine, image, &blur);
        for level in &pyramid.levels[1..] {
            let (preview, stats) = preview(&engine, &pyramid, level, &blur);
            assert_eq!(
                stats.choices, export,
                "{preset:?}: sigma {sigma} at scale {}",
                level.scale
            );
            // Without the pyramid's measure a level keeps the preset's choice.
            let (unmeasured, _) = engine
                .render_source_scaled(
                    &level.image,
                    Orientation::NoTransforms,
                    &blur,
                    level.scale,
                    None,
                    false,
                    &Default::default(),
                )
                .unwrap();
            if sigma == 3.0 && level.scale >= 0.5 {
                assert_ne!(preview.to_rgba8(), unmeasured.to_rgba8());
            }
        }
    }
}

#[test]
fn an_export_with_the_previews_measure_chooses_like_the_preview_even_when_decoded_reduced() {
    let image = smooth(1600, 1200);
    let full = Detail::measure(&image);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sky.jpg");
    std::fs::write(&input, encode(&image, ImageFormat::Jpeg)).unwrap();
    let decoded = image::open(&input).unwrap();
    let pyramid = Pyramid::build(&decoded).unwrap();
    // At `balanced` a JPEG shrunk to 200 px is decoded at 1/4 (shrink-on-load).
    let shrink = chain(
        "resize",
        &[
            ("width", RawValue::Int(200)),
            ("height", RawValue::Int(200)),
            ("mode", RawValue::String("fit".into())),
        ],
    );
    let engine = engine(QualityPreset::Balanced);
    let options = EncodeOptions {
        format: OutputFormat::Png,
        quality: 90,
        lossless: false,
    };
    let report = engine
        .render_file_with(
            &input,
            (&shrink, Some(pyramid.detail)),
            &dir.path().join("out.png"),
            &options,
            false,
            &Default::default(),
        )
        .unwrap();
    assert!(report.decode_eighths < 8);
    let choices = report.choices().unwrap();
    let expected = format!(
        "resize: bicubic instead of lanczos3 (detail {:.3} < 0.02)",
        pyramid.detail.gradient.unwrap()
    );
    assert!(choices.contains(&expected), "{choices}");
    assert!((pyramid.detail.gradient.unwrap() - full.gradient.unwrap()).abs() < 0.01);
}

#[test]
fn previews_and_files_use_the_renders_measure() {
    // With alpha, so that the measure's choice is the boxes (opaque 8-bit sources blur
    // exactly below sigma 8).
    let image = DynamicImage::ImageRgba8(smooth(300, 200).to_rgba8());
    // A file render reports the choice, whether the output is written whole (WebP) or
    // streamed (PNG: the input is then decoded whole so it can be measured).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sky.png");
    std::fs::write(&input, encode(&image, ImageFormat::Png)).unwrap();
    let blur = chain("gaussian_blur", &[("sigma", RawValue::Float(2.0))]);
    let engine = engine(QualityPreset::High);
    for (format, name) in [
        (OutputFormat::Webp, "out.webp"),
        (OutputFormat::Png, "out.png"),
    ] {
        let options = EncodeOptions {
            format,
            quality: 90,
            lossless: true,
        };
        let report = engine
            .render_file(
                &input,
                &blur,
                &dir.path().join(name),
                &options,
                false,
                &Default::default(),
            )
            .unwrap();
        assert!(!report.streamed_input, "{name}");
        let choices = report.choices().unwrap_or_default();
        assert!(
            choices.contains("3 box passes instead of exact blur"),
            "{name}: {choices}"
        );
    }
    // The PNG's pixels are the in-memory render's (same measure, same algorithm).
    let written = image::open(dir.path().join("out.png")).unwrap().to_rgba8();
    let (expected, ..) = render(&engine, &image, &blur);
    assert_eq!(written.into_raw(), expected);
}

#[test]
fn inputs_too_large_to_decode_whole_are_streamed_unmeasured_but_blur_as_their_previews_do() {
    let image = smooth(1500, 1000);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sky.png");
    std::fs::write(&input, encode(&image, ImageFormat::Png)).unwrap();
    let mut config = Config::default();
    config.performance.max_cpu_cores = 2;
    // 1500×1000 RGB is 4.5 MB: over a quarter of this budget, so it is streamed row by row.
    config.performance.max_memory_usage = opossum::config::ByteSize(16 << 20);
    config.performance.tile_size = 64;
    let options = EncodeOptions {
        format: OutputFormat::Png,
        quality: 90,
        lossless: false,
    };
    // (preset, sigma, the opaque-8-bit line, the unmeasured-detail line): at `high` σ 2 is
    // exact by the table, and boxes on smooth content, which is not measured; at `balanced`
    // and `fast` the table's boxes become the exact blur, as in the previews (whose measure
    // knows the source is opaque 8-bit), with no choice by detail to make.
    for (preset, sigma, kind_line, detail_line) in [
        (QualityPreset::High, 2.0, false, true),
        (QualityPreset::Balanced, 4.0, true, false),
        (QualityPreset::Fast, 6.0, true, false),
    ] {
        let engine = Engine::new(config.clone()).unwrap().with_quality(preset);
        let blur = chain("gaussian_blur", &[("sigma", RawValue::Float(sigma))]);
        let output = dir.path().join("out.png");
        let report = engine
            .render_file(&input, &blur, &output, &options, false, &Default::default())
            .unwrap();
        assert!(report.streamed_input, "{preset:?}");
        let choices = report.choices().unwrap_or_default();
        assert_eq!(
            choices.contains("detail not measured (input streamed row by row)"),
            detail_line,
            "{preset:?}: {choices}"
        );
        assert_eq!(
            choices.contains(&format!(
                "gaussian_blur: exact blur instead of 3 box passes (opaque 8-bit source, sigma \
                 {sigma:.1} < 8 px)"
            )),
            kind_line,
            "{preset:?}: {choices}"
        );
        let written = image::open(&output).unwrap().to_rgba8();
        let (exact, ..) = render(&engine.with_quality(QualityPreset::Ultra), &image, &blur);
        assert_eq!(written.into_raw(), exact, "{preset:?}: not the exact blur");
        // The preview (a pyramid level with the full image's measure) chose the same.
        let pyramid = Pyramid::build(&image).unwrap();
        let (_, stats) = preview(&engine, &pyramid, &pyramid.levels[1], &blur);
        let exact = stats
            .choices
            .iter()
            .any(|c| c.contains("exact blur instead"));
        assert_eq!(exact, kind_line, "{preset:?}: {:?}", stats.choices);
    }
}
