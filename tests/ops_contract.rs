//! The contract every registered operation keeps: metadata present, defaults valid and
//! buildable, chain-file round trips, halos non-negative and monotonic in scale, and identity
//! parameters leaving the image unchanged. Adding an op makes these loop over it too.

mod common;

use common::{Rng, random_op, render_tiled, test_image};
use opossum::chain::raw::RawValue;
use opossum::chain::{Chain, ChainOp, Format, OutputLimits};
use opossum::engine::Engine;
use opossum::ops::{self, Footprint};
use opossum::params::Params;

#[test]
fn metadata_and_defaults_are_valid() {
    for def in ops::registry() {
        assert!(!def.label.is_empty() && !def.doc.is_empty(), "{}", def.id);
        assert!(def.version >= 1);
        for spec in def.params {
            assert!(
                spec.key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}.{}",
                def.id,
                spec.key
            );
            assert!(
                !spec.label.is_empty() && !spec.doc.is_empty(),
                "{}.{}",
                def.id,
                spec.key
            );
            spec.parse(&spec.default_value().to_raw())
                .unwrap_or_else(|e| panic!("{}.{} default invalid: {e}", def.id, spec.key));
        }
        let defaults = Params::defaults(def.params);
        (def.validate)(&defaults, OutputLimits::default())
            .unwrap_or_else(|e| panic!("{} defaults fail validation: {e:?}", def.id));
        let chain = Chain {
            name: None,
            vectorize: None,
            ops: vec![ChainOp::new(def)],
        };
        assert!(
            render_tiled(&test_image(32, 24, 1, false), &chain, 16).is_some(),
            "{}",
            def.id
        );
    }
}

#[test]
fn chain_files_round_trip_every_op() {
    let mut rng = Rng::new(3);
    let chain = Chain {
        name: Some("all ops".into()),
        // The SVG sink's settings travel with the chain too.
        vectorize: Some(opossum::vectorize::VectorizeOptions {
            preset: opossum::vectorize::Preset::Poster,
            colors: Some(12),
            max_error_px: Some(0.7),
            ..Default::default()
        }),
        ops: ops::registry()
            .iter()
            .flat_map(|def| [ChainOp::new(def), random_op(def, &mut rng)])
            .collect(),
    };
    let toml = chain.to_toml_string();
    let back = Chain::parse_bytes(toml.as_bytes(), Format::Toml, OutputLimits::default()).unwrap();
    assert_eq!(back, chain, "TOML:\n{toml}");
    let json = chain.to_json_string();
    let back = Chain::parse_bytes(json.as_bytes(), Format::Json, OutputLimits::default()).unwrap();
    assert_eq!(back, chain);
}

#[test]
fn halos_grow_with_scale() {
    let mut rng = Rng::new(11);
    for def in ops::registry() {
        for _ in 0..8 {
            let op = random_op(def, &mut rng);
            let mut last = 0;
            for scale in [0.125, 0.25, 0.5, 1.0, 2.0] {
                if let Footprint::Area { halo_px } = (def.footprint)(&op.params, scale) {
                    assert!(halo_px >= last, "{} halo shrinks at scale {scale}", def.id);
                    last = halo_px;
                }
            }
        }
    }
}

/// Parameters that make each op a no-op; ops listed as `None` have no identity setting.
fn identity(id: &str) -> Option<Vec<(&'static str, RawValue)>> {
    Some(match id {
        "adjust_colors" | "crop" => vec![],
        "add_border" => vec![("size", RawValue::Int(0))],
        "color_convert" => vec![("strength", RawValue::Float(0.0))],
        "gaussian_blur" => vec![("sigma", RawValue::Float(0.0))],
        "sharpen" => vec![("amount", RawValue::Float(0.0))],
        "watermark" => vec![("opacity", RawValue::Float(0.0))],
        "edge_detect" | "flip" | "grayscale" | "resize" | "rotate" => return None,
        other => panic!("decide whether op {other} has identity parameters"),
    })
}

#[test]
fn identity_params_leave_the_image_unchanged() {
    let image = test_image(29, 31, 5, true);
    let plain = render_tiled(&image, &Chain::default(), 8).unwrap();
    for def in ops::registry() {
        let Some(pairs) = identity(def.id) else {
            continue;
        };
        let mut op = ChainOp::new(def);
        for (k, v) in &pairs {
            op.params.set(def.params, k, v).unwrap();
        }
        let out = render_tiled(
            &image,
            &Chain {
                name: None,
                vectorize: None,
                ops: vec![op],
            },
            8,
        )
        .unwrap();
        assert_eq!(out, plain, "{} with {pairs:?}", def.id);
    }
}

/// What a kernel says it does to grey pixels ([`ops::Grey`]) is what it does: at random
/// parameters, an op that keeps grey turns a grey image into a grey one, and one that makes
/// grey turns a colour image into a grey one (within f32 rounding). Renders written from such
/// plans keep one grey channel, so a wrong claim would drop colour.
#[test]
fn kernels_keep_and_make_grey_as_they_say() {
    use opossum::engine::{geom::Size, plan::Plan, render::grey_after};
    let grey = image::DynamicImage::ImageLuma8(test_image(23, 19, 4, false).to_luma8());
    let colour = test_image(23, 19, 4, false);
    let mut rng = Rng::new(11);
    let mut claims = std::collections::BTreeMap::new();
    for def in ops::registry() {
        for _ in 0..12 {
            let chain = chain_of(vec![random_op(def, &mut rng)]);
            let Ok(plan) = Plan::for_content(
                &chain,
                Size::new(23, 19),
                image::metadata::Orientation::NoTransforms,
                1.0,
                OutputLimits::default(),
                Default::default(),
                None,
            ) else {
                continue;
            };
            for (image, source_grey) in [(&grey, true), (&colour, false)] {
                if !grey_after(&plan, source_grey) {
                    continue;
                }
                *claims.entry(def.id).or_insert(0) += 1;
                let Some(out) = render_tiled(image, &chain, 8) else {
                    continue;
                };
                for px in out.data.chunks_exact(4) {
                    assert!(
                        (px[0] - px[1]).abs() < 1e-5 && (px[1] - px[2]).abs() < 1e-5,
                        "{} ({:?}) on a {} image gave {px:?}",
                        def.id,
                        chain.ops[0].params,
                        if source_grey { "grey" } else { "colour" }
                    );
                }
            }
        }
    }
    for id in [
        "gaussian_blur",
        "resize",
        "grayscale",
        "edge_detect",
        "crop",
        "adjust_colors",
    ] {
        assert!(
            claims.contains_key(id),
            "{id} never claimed to keep grey: {claims:?}"
        );
    }
}

/// A kernel that says it writes every value of its output gets an unzeroed buffer from the
/// renderer: run into a buffer of NaNs, it must give exactly what it gives into zeros, for
/// opaque and transparent inputs and for random parameters.
#[test]
fn kernels_that_skip_zeroing_write_every_value() {
    use opossum::engine::geom::Size;
    use opossum::engine::tile::Tile;
    use opossum::ops::{BuildCtx, Kernel};
    let mut rng = Rng::new(11);
    let mut checked = 0;
    for def in ops::registry() {
        for round in 0..6 {
            let op = if round == 0 {
                ChainOp::new(def)
            } else {
                random_op(def, &mut rng)
            };
            let image = test_image(23, 17, round, round % 2 == 1);
            let src = Tile {
                rect: Size::new(23, 17).rect(),
                data: image.to_rgba32f().into_raw().into_iter().collect(),
            };
            // Every preset in turn, so the box-blur variants are checked too.
            let quality = opossum::quality::QualityPreset::ALL[round as usize % 5];
            let ctx = BuildCtx {
                input: Size::new(23, 17),
                scale: 1.0,
                max_pixels: 1 << 24,
                max_side_px: 1 << 14,
                quality,
                detail: None,
                content: None,
            };
            let Ok(kernel) = (def.build)(&op.params, &ctx) else {
                continue;
            };
            let (k, out) = match &kernel {
                Kernel::Area(k) => (k, Size::new(23, 17).rect()),
                Kernel::Geometry { output, kernel } => (kernel, output.rect()),
                _ => continue,
            };
            if !k.writes_every_value() || out.is_empty() {
                continue;
            }
            let mut part = Tile::new(k.input_rect(out));
            part.copy_from(&src);
            let mut zeroed = Tile::new(out);
            k.run(&part, &mut zeroed);
            let mut poisoned = Tile::new(out);
            poisoned.data.fill(f32::NAN);
            k.run(&part, &mut poisoned);
            let same = zeroed
                .data
                .iter()
                .zip(&poisoned.data)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{} (round {round}) leaves values unwritten", def.id);
            checked += 1;
        }
    }
    assert!(checked >= 3, "no kernel claims to write every value");
}

/// 8-bit RGB(A) pixels and the working values they convert to (`v / 255` in f32) render to the
/// same bytes through every op. For runs of per-channel pointwise ops the 8-bit source goes
/// through lookup tables instead of f32 tiles (`engine::lut`), so this is what keeps the
/// tables honest; it also checks that the tables are really used.
#[test]
fn eight_bit_sources_render_the_same_bytes_as_their_working_values() {
    use opossum::config::Config;
    let engine = Engine::new(Config::default()).unwrap();
    let render = |image: &image::DynamicImage, chain: &Chain| {
        render_upright(&engine, image, chain).map(|(out, stats)| (out.to_rgba8(), stats, out.size))
    };
    let mut rng = Rng::new(0x1ab1e5);
    // Per-channel settings of the ops that have them (random ones mostly mix channels).
    let set = op_with;
    let mut used_tables = 0;
    let mut used_u8_resize = 0;
    for (alpha, grey) in [(false, false), (true, false), (false, true)] {
        let mut rgba = test_image(70, 45, 9, alpha).to_rgba8();
        if grey {
            for p in rgba.pixels_mut() {
                p.0 = [p.0[1], p.0[1], p.0[1], 255];
            }
        }
        let rgba = rgba;
        let eight = if alpha {
            image::DynamicImage::ImageRgba8(rgba.clone())
        } else if grey {
            image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(70, 45, |x, y| {
                image::Luma([rgba.get_pixel(x, y).0[0]])
            }))
        } else {
            image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(rgba.clone()).to_rgb8())
        };
        let working =
            image::DynamicImage::ImageRgba32F(image::Rgba32FImage::from_fn(70, 45, |x, y| {
                let p = rgba.get_pixel(x, y).0;
                let unit = |v: u8| f32::from(v) * (1.0 / 255.0);
                image::Rgba([
                    unit(p[0]),
                    unit(p[1]),
                    unit(p[2]),
                    if alpha { unit(p[3]) } else { 1.0 },
                ])
            }));
        let mut chains: Vec<Vec<ChainOp>> = Vec::new();
        for def in ops::registry() {
            for _ in 0..3 {
                chains.push(vec![random_op(def, &mut rng)]);
            }
        }
        for _ in 0..6 {
            let f = |rng: &mut Rng, lo: f64, hi: f64| RawValue::Float(lo + (hi - lo) * rng.unit());
            chains.push(vec![
                set(
                    "adjust_colors",
                    &[
                        ("brightness", f(&mut rng, 0.0, 3.0)),
                        ("contrast", f(&mut rng, 0.0, 3.0)),
                        ("exposure", f(&mut rng, -3.0, 3.0)),
                        ("gamma", f(&mut rng, 0.2, 5.0)),
                    ],
                ),
                set(
                    "color_convert",
                    &[
                        ("mode", RawValue::String("invert".into())),
                        ("strength", f(&mut rng, 0.0, 1.0)),
                    ],
                ),
            ]);
        }
        for ops in chains {
            let chain = Chain {
                name: None,
                vectorize: None,
                ops,
            };
            let ids: Vec<&str> = chain.ops.iter().map(|o| o.def.id).collect();
            match (render(&eight, &chain), render(&working, &chain)) {
                (Ok((a, stats, size)), Ok((b, ..))) => {
                    // A leading resize, exact blur or unsharp mask of 8-bit RGB runs on 8-bit
                    // kernels (engine::u8_lead): within rounding of the f32 path, not equal.
                    if stats
                        .stage_times
                        .iter()
                        .any(|(l, _)| l.ends_with("(8-bit)") || l.ends_with("(8-bit tables)"))
                    {
                        assert!(!alpha, "{ids:?}: 8-bit kernels on an image with alpha");
                        let psnr =
                            opossum::vectorize::metrics::psnr_rgba(&b, &a, size.width, size.height);
                        assert!(psnr >= 45.0, "{ids:?}: 8-bit kernels {psnr} dB");
                        used_u8_resize += 1;
                        continue;
                    }
                    assert!(
                        a == b,
                        "{ids:?} (alpha {alpha}, grey {grey}): 8-bit and f32 sources differ"
                    );
                    used_tables += usize::from(
                        stats
                            .stage_times
                            .iter()
                            .any(|(label, _)| label.ends_with("(tables)")),
                    );
                }
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{ids:?}: {:?} vs {:?}", a.err(), b.err()),
            }
        }
    }
    assert!(used_tables >= 12, "tables used {used_tables} times");
    assert!(used_u8_resize >= 1, "the 8-bit kernels never ran");
}

/// Op `id` with `params` set (the rest default).
fn op_with(id: &str, params: &[(&str, RawValue)]) -> ChainOp {
    let def = ops::find(id).unwrap();
    let mut op = ChainOp::new(def);
    for (k, v) in params {
        op.params.set(def.params, k, v).unwrap();
    }
    op
}

/// A chain of `ops`.
fn chain_of(ops: Vec<ChainOp>) -> Chain {
    Chain {
        name: None,
        vectorize: None,
        ops,
    }
}

/// `chain` over `image` in memory, 8-bit output, no EXIF turn.
fn render_upright(
    engine: &Engine,
    image: &image::DynamicImage,
    chain: &Chain,
) -> opossum::error::Result<(
    opossum::io::encode::OutputImage,
    opossum::engine::render::RenderStats,
)> {
    let upright = opossum::io::decode::Orientation::NoTransforms;
    engine.render_source(image, upright, chain, false, &Default::default())
}

/// An engine at `quality` with `tile_px` tiles (down to 16 px).
fn engine_at(quality: opossum::config::QualityPreset, tile_px: u32) -> Engine {
    let mut config = opossum::config::Config::default();
    config.performance.tile_size = tile_px;
    config.performance.min_tile_size = 16;
    Engine::new(config).unwrap().with_quality(quality)
}

/// `chain` over `image` in memory: RGBA bytes, size, and the stages that ran on 8-bit kernels.
fn render_8bit(
    engine: &Engine,
    image: &image::DynamicImage,
    chain: &Chain,
) -> (Vec<u8>, opossum::engine::geom::Size, Vec<String>) {
    let (out, stats) = render_upright(engine, image, chain).unwrap();
    let labels = stats
        .stage_times
        .iter()
        .map(|(l, _)| l.clone())
        .filter(|l| l.contains("(8-bit"))
        .collect();
    (out.to_rgba8(), out.size, labels)
}

/// `chain` over `photo` saved as a PNG file, written as a streamed PNG and as a whole TIFF:
/// each output's RGBA bytes, after checking that the stage `label` ran both times.
fn file_outputs(
    engine: &Engine,
    photo: &image::DynamicImage,
    chain: &Chain,
    label: &str,
) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("photo.png");
    photo.save(&input).unwrap();
    let mut written = Vec::new();
    for (format, name) in [
        (opossum::io::encode::OutputFormat::Png, "out.png"),
        (opossum::io::encode::OutputFormat::Tiff, "out.tif"),
    ] {
        let options = opossum::io::encode::EncodeOptions {
            format,
            quality: 90,
            lossless: true,
        };
        let out = dir.path().join(name);
        let report = engine
            .render_file(&input, chain, &out, &options, false, &Default::default())
            .unwrap();
        assert!(!report.streamed_input, "{name}");
        assert!(
            report.stats.stage_times.iter().any(|(l, _)| l == label),
            "{name}: {label} did not run"
        );
        written.push(image::open(&out).unwrap().to_rgba8().into_raw());
    }
    written
}

/// Below `ultra`, a leading Gaussian blur or unsharp mask of 8-bit RGB, exact or a box
/// cascade (and a run of per-channel ops before one) runs on 8-bit kernels
/// (engine::u8_filter, engine::u8_box): within rounding of the f32 path, the same at any tile
/// size, a file's pixels the same streamed or whole, and never for `ultra` or alpha.
#[test]
fn leading_blurs_and_sharpens_of_8_bit_rgb_take_8_bit_kernels_within_rounding() {
    use opossum::config::QualityPreset;
    use opossum::io::encode::Pixels;
    let (engine, render) = (engine_at, render_8bit);
    let (op, chain) = (op_with, chain_of);
    let blur = |sigma: f64| op("gaussian_blur", &[("sigma", RawValue::Float(sigma))]);
    let sharpen = |amount: f64, radius: f64, threshold: f64| {
        op(
            "sharpen",
            &[
                ("amount", RawValue::Float(amount)),
                ("radius", RawValue::Float(radius)),
                ("threshold", RawValue::Float(threshold)),
            ],
        )
    };
    let contrast = || {
        op(
            "adjust_colors",
            &[
                ("brightness", RawValue::Float(1.1)),
                ("contrast", RawValue::Float(1.2)),
            ],
        )
    };
    let fit = || {
        op(
            "resize",
            &[
                ("width", RawValue::Int(500)),
                ("height", RawValue::Int(400)),
                ("upscale", RawValue::Bool(true)),
            ],
        )
    };
    let photo = opossum::bench::synthetic_photo(600);
    let (high, high_tiny, ultra) = (
        engine(QualityPreset::High, 512),
        engine(QualityPreset::High, 32),
        engine(QualityPreset::Ultra, 512),
    );
    let cases: Vec<(Chain, &[&str])> = vec![
        (chain(vec![contrast()]), &["adjust_colors (8-bit tables)"]),
        (chain(vec![blur(0.8)]), &["gaussian_blur (8-bit)"]),
        (chain(vec![blur(3.0)]), &["gaussian_blur (8-bit)"]),
        (chain(vec![sharpen(1.5, 2.0, 0.0)]), &["sharpen (8-bit)"]),
        (chain(vec![sharpen(3.0, 1.0, 10.0)]), &["sharpen (8-bit)"]),
        (
            chain(vec![contrast(), sharpen(1.0, 1.0, 0.0)]),
            &["adjust_colors (8-bit tables)", "sharpen (8-bit)"],
        ),
        (
            chain(vec![fit(), contrast(), sharpen(1.0, 1.0, 0.0), blur(1.0)]),
            &[
                "resize (8-bit)",
                "adjust_colors (8-bit tables)",
                "sharpen (8-bit)",
                "gaussian_blur (8-bit)",
            ],
        ),
    ];
    for (chain, expected) in &cases {
        let ids: Vec<&str> = chain.ops.iter().map(|o| o.def.id).collect();
        let (fast, size, labels) = render(&high, &photo, chain);
        assert_eq!(&labels, expected, "{ids:?}");
        // Finished on 8-bit kernels: the output is their RGB samples, no RGBA copy.
        let (out, _) = render_upright(&high, &photo, chain).unwrap();
        assert!(matches!(out.pixels, Pixels::Rgb8(_)), "{ids:?}");
        let (tiny, _, _) = render(&high_tiny, &photo, chain);
        assert_eq!(fast, tiny, "{ids:?}: depends on the tile size");
        // `ultra` takes no 8-bit kernel but tables, which give the f32 path's bytes.
        let (exact, _, labels) = render(&ultra, &photo, chain);
        assert!(
            labels.iter().all(|l| l.ends_with("(8-bit tables)")),
            "ultra took 8-bit kernels: {labels:?}"
        );
        if !labels.is_empty() {
            assert_eq!(exact, fast, "{ids:?}: tables differ from the f32 path");
        }
        let psnr = opossum::vectorize::metrics::psnr_rgba(&exact, &fast, size.width, size.height);
        eprintln!("8-bit {ids:?}: {psnr:.1} dB against ultra");
        assert!(psnr >= 50.0, "{ids:?}: {psnr} dB");
    }
    // A blur after an op the 8-bit kernels cannot run (a border: a fill, not a pixel copy)
    // stays on f32; so does alpha.
    let border = || op("add_border", &[]);
    assert!(
        render(&high, &photo, &chain(vec![border(), blur(2.0)]))
            .2
            .is_empty()
    );
    let rgba = image::DynamicImage::ImageRgba8(photo.to_rgba8());
    assert!(render(&high, &rgba, &chain(vec![blur(2.0)])).2.is_empty());
    // An op after the 8-bit stages renders to RGBA as before.
    let (out, _) = render_upright(&high, &photo, &chain(vec![blur(2.0), border()])).unwrap();
    assert!(matches!(out.pixels, Pixels::U8(_)));
    // The box cascades the presets run from σ 8 (`high`) or less (`fast`: 1.5) are the f32
    // path's boxes within a level, at any tile size, from σ 8 on.
    let fast = engine(QualityPreset::Fast, 512);
    for (engine, chain) in [
        (&high, chain(vec![blur(20.0)])),
        (&high, chain(vec![contrast(), sharpen(1.0, 12.0, 0.0)])),
        (&fast, chain(vec![blur(9.0)])),
        (&fast, chain(vec![sharpen(2.0, 8.5, 0.0)])),
    ] {
        let ids: Vec<&str> = chain.ops.iter().map(|o| o.def.id).collect();
        let (boxes, size, labels) = render(engine, &photo, &chain);
        assert!(
            labels.last().is_some_and(|l| l.ends_with("(8-bit)")),
            "{ids:?}: {labels:?}"
        );
        let (f32_boxes, _, f32_labels) = render(engine, &rgba, &chain);
        assert!(f32_labels.is_empty(), "{f32_labels:?}");
        let worst = boxes
            .iter()
            .zip(&f32_boxes)
            .map(|(&a, &b)| a.abs_diff(b))
            .max()
            .unwrap();
        // Tables before the boxes round to levels that the unsharp mask then doubles.
        let (levels, min_psnr) = if chain.ops.len() > 1 {
            (2, 50.0)
        } else {
            (1, 55.0)
        };
        assert!(
            worst <= levels,
            "{ids:?}: {worst} levels from the f32 boxes"
        );
        let psnr =
            opossum::vectorize::metrics::psnr_rgba(&f32_boxes, &boxes, size.width, size.height);
        eprintln!("8-bit boxes {ids:?}: {psnr:.1} dB against the f32 boxes");
        assert!(psnr >= min_psnr, "{ids:?}: {psnr} dB");
    }
    assert_eq!(
        render(&high, &photo, &chain(vec![blur(20.0)])).0,
        render(&high_tiny, &photo, &chain(vec![blur(20.0)])).0
    );
    // Below σ 8 the 8-bit kernels run the exact blur where `fast` chose boxes (faster at 8
    // bits, and closer): the bytes of `high`'s exact blur, while the f32 path keeps the boxes.
    for chain in [chain(vec![blur(3.0)]), chain(vec![sharpen(2.0, 2.0, 0.0)])] {
        let ids: Vec<&str> = chain.ops.iter().map(|o| o.def.id).collect();
        let (fast_u8, _, labels) = render(&fast, &photo, &chain);
        assert!(
            labels.last().is_some_and(|l| l.ends_with("(8-bit)")),
            "{labels:?}"
        );
        assert_eq!(fast_u8, render(&high, &photo, &chain).0, "{ids:?}");
        let f32_boxes = render(&fast, &rgba, &chain).0;
        let f32_exact = render(&high, &rgba, &chain).0;
        assert_ne!(
            f32_boxes, f32_exact,
            "{ids:?}: the f32 path at `fast` runs boxes"
        );
    }
    // A file gives the same pixels streamed (PNG) or written whole (TIFF).
    let batch = chain(vec![fit(), contrast(), sharpen(1.0, 1.0, 0.0)]);
    let written = file_outputs(&high, &photo, &batch, "sharpen (8-bit)");
    assert_eq!(written[0], written[1]);
    let (in_memory, size, _) = render(&high, &photo, &batch);
    assert_eq!(written[0], in_memory);
    // Every format takes the RGB rows as they are: three channels, the same picture.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("photo.png");
    photo.save(&input).unwrap();
    for format in ["png", "jpg", "webp", "tif"] {
        let out = dir.path().join(format!("out.{format}"));
        let options = opossum::io::encode::EncodeOptions {
            format: opossum::io::encode::OutputFormat::from_name(format).unwrap(),
            quality: 95,
            lossless: false,
        };
        high.render_file(&input, &batch, &out, &options, false, &Default::default())
            .unwrap();
        let decoded = image::open(&out).unwrap();
        assert_eq!(decoded.color().channel_count(), 3, "{format}");
        let rgba = decoded.to_rgba8().into_raw();
        let psnr =
            opossum::vectorize::metrics::psnr_rgba(&in_memory, &rgba, size.width, size.height);
        assert!(
            psnr >= 38.0,
            "{format}: {psnr} dB from the in-memory render"
        );
    }
}

/// Below `ultra`, a leading greyscale conversion or Sobel edge detection of an 8-bit image runs
/// on an 8-bit kernel to one channel (engine::u8_grey), and the 8-bit steps after it run on
/// that channel: grey output (R = G = B, opaque; one channel where nothing follows), within
/// rounding of the f32 path, the same at any tile size, a file's pixels the same streamed or
/// whole; never for `ultra`, alpha or Canny.
#[test]
fn leading_grey_and_sobel_of_8_bit_images_run_on_one_8_bit_channel() {
    use opossum::config::QualityPreset;
    let (op, chain) = (op_with, chain_of);
    let grey = |method: &str| op("grayscale", &[("method", RawValue::String(method.into()))]);
    let sobel = || op("edge_detect", &[]);
    let blur = || op("gaussian_blur", &[("sigma", RawValue::Float(2.0))]);
    let sharpen = || op("sharpen", &[("amount", RawValue::Float(1.0))]);
    let contrast = || op("adjust_colors", &[("contrast", RawValue::Float(1.3))]);
    let fit = || op("resize", &[("width", RawValue::Int(450))]);
    let photo = opossum::bench::synthetic_photo(600);
    let grey_photo = image::DynamicImage::ImageLuma8(photo.to_luma8());
    let (high, high_tiny, ultra) = (
        engine_at(QualityPreset::High, 512),
        engine_at(QualityPreset::High, 32),
        engine_at(QualityPreset::Ultra, 512),
    );
    // (source, chain, the stages on 8-bit kernels, least PSNR against `ultra`, whether the
    // output is one channel)
    type Case<'a> = (&'a image::DynamicImage, Chain, &'a [&'a str], f64, bool);
    const G: &str = "grayscale (8-bit)";
    let cases: Vec<Case> = vec![
        (&photo, chain(vec![grey("rec709")]), &[G], 60.0, true),
        (&photo, chain(vec![grey("lightness")]), &[G], 55.0, true),
        (
            &photo,
            chain(vec![sobel()]),
            &["edge_detect (8-bit)"],
            45.0,
            true,
        ),
        (
            &photo,
            chain(vec![grey("rec601"), sobel()]),
            &[G, "edge_detect (8-bit)"],
            45.0,
            true,
        ),
        (
            &photo,
            chain(vec![contrast(), grey("average"), blur(), contrast()]),
            &["adjust_colors (8-bit tables)", G, "gaussian_blur (8-bit)"],
            50.0,
            false,
        ),
        (
            &photo,
            chain(vec![
                fit(),
                grey("rec709"),
                sharpen(),
                op("add_border", &[]),
            ]),
            &["resize (8-bit)", G, "sharpen (8-bit)"],
            // The 8-bit resize's rounding (52–58 dB alone), sharpened.
            45.0,
            false,
        ),
        (
            &grey_photo,
            chain(vec![sobel()]),
            &["edge_detect (8-bit)"],
            45.0,
            true,
        ),
        (
            &grey_photo,
            chain(vec![fit(), grey("rec709"), blur()]),
            &["resize (8-bit)", G, "gaussian_blur (8-bit)"],
            50.0,
            true,
        ),
    ];
    for (image, chain, expected, min_psnr, one_channel) in &cases {
        let ids: Vec<&str> = chain.ops.iter().map(|o| o.def.id).collect();
        let (fast, size, labels) = render_8bit(&high, image, chain);
        assert_eq!(&labels, expected, "{ids:?}");
        let (out, _) = render_upright(&high, image, chain).unwrap();
        assert_eq!(
            matches!(out.pixels, opossum::io::encode::Pixels::Grey8(_)),
            *one_channel,
            "{ids:?}: one channel"
        );
        assert!(
            fast.chunks_exact(4)
                .all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255),
            "{ids:?}: not opaque grey"
        );
        let (tiny, _, _) = render_8bit(&high_tiny, image, chain);
        assert_eq!(fast, tiny, "{ids:?}: depends on the tile size");
        let (exact, _, labels) = render_8bit(&ultra, image, chain);
        assert!(labels.is_empty(), "ultra took 8-bit kernels: {labels:?}");
        let psnr = opossum::vectorize::metrics::psnr_rgba(&exact, &fast, size.width, size.height);
        eprintln!("8-bit {ids:?}: {psnr:.1} dB against ultra");
        assert!(psnr >= *min_psnr, "{ids:?}: {psnr} dB");
    }
    // Canny and alpha keep the f32 path; a turn first is a pixel copy, and Sobel follows it
    // on 8-bit samples.
    let canny = op("edge_detect", &[("mode", RawValue::String("canny".into()))]);
    assert!(render_8bit(&high, &photo, &chain(vec![canny])).2.is_empty());
    let rgba = image::DynamicImage::ImageRgba8(photo.to_rgba8());
    assert!(
        render_8bit(&high, &rgba, &chain(vec![sobel()]))
            .2
            .is_empty()
    );
    let turned = chain(vec![op("rotate", &[("angle", RawValue::Int(90))]), sobel()]);
    assert_eq!(
        render_8bit(&high, &photo, &turned).2,
        ["rotate (8-bit)", "edge_detect (8-bit)"]
    );
    // A file gives the same pixels streamed (PNG) or written whole (TIFF).
    let edges = chain(vec![grey("rec709"), sobel()]);
    let written = file_outputs(&high, &photo, &edges, "edge_detect (8-bit)");
    assert_eq!(written[0], written[1]);
    assert_eq!(written[0], render_8bit(&high, &photo, &edges).0);
    grey_files_have_one_channel_unless_an_icc_profile_is_kept(&high, &photo, &edges);
}

/// `chain` (ending grey on 8-bit kernels) over `photo` written as every format: one-channel
/// PNG, JPEG and TIFF, RGB WebP (no grey mode), the same grey in each lossless one; from a
/// source with an ICC profile (which describes RGB), RGB files that keep the profile.
fn grey_files_have_one_channel_unless_an_icc_profile_is_kept(
    engine: &Engine,
    photo: &image::DynamicImage,
    chain: &Chain,
) {
    use opossum::io::encode::{self, EncodeOptions, OutputFormat, OutputImage, Pixels};
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.png");
    photo.save(&plain).unwrap();
    // The same pixels with a (made-up) ICC profile: passed through, never parsed.
    let profile = b"an ICC profile for the test".to_vec();
    let rgba = OutputImage {
        size: opossum::engine::geom::Size::new(photo.width(), photo.height()),
        pixels: Pixels::U8(photo.to_rgba8().into_raw()),
    };
    let png = EncodeOptions {
        format: OutputFormat::Png,
        quality: 90,
        lossless: true,
    };
    let tagged = dir.path().join("tagged.png");
    let bytes = encode::encode(&rgba, &png, Some(&profile), Default::default()).unwrap();
    std::fs::write(&tagged, bytes).unwrap();
    let expected = render_8bit(engine, photo, chain).0;
    for (input, grey_files) in [(&plain, true), (&tagged, false)] {
        for format in [
            OutputFormat::Png,
            OutputFormat::Jpeg,
            OutputFormat::Tiff,
            OutputFormat::Webp,
        ] {
            let out = dir.path().join(format!("out.{}", format.extension()));
            let options = EncodeOptions {
                format,
                quality: 90,
                lossless: true,
            };
            // Progress still reaches the end, with no tiles to count.
            let last = std::sync::Mutex::new((0, 0));
            let progress = |done: usize, total: usize| *last.lock().unwrap() = (done, total);
            let control = opossum::engine::render::RenderControl {
                cancel: None,
                progress: Some(&progress),
            };
            engine
                .render_file(input, chain, &out, &options, false, &control)
                .unwrap();
            let (done, total) = *last.lock().unwrap();
            assert!(
                total > 0 && done == total,
                "{format:?}: progress {done}/{total}"
            );
            let mut decoder = image::ImageReader::open(&out)
                .unwrap()
                .with_guessed_format()
                .unwrap()
                .into_decoder()
                .unwrap();
            let kept = image::ImageDecoder::icc_profile(&mut decoder).unwrap();
            let decoded = image::DynamicImage::from_decoder(decoder).unwrap();
            let colour = if grey_files && format != OutputFormat::Webp {
                image::ColorType::L8
            } else {
                image::ColorType::Rgb8
            };
            assert_eq!(decoded.color(), colour, "{format:?} from {input:?}");
            if format != OutputFormat::Jpeg {
                assert_eq!(decoded.to_rgba8().into_raw(), expected, "{format:?}");
            }
            // Every format keeps the profile (WebP in an ICCP chunk, TIFF in its ICC tag).
            let want = (!grey_files).then_some(&profile[..]);
            assert_eq!(kept.as_deref(), want, "{format:?}: profile");
        }
    }
}

/// Below `ultra`, a leading uncropped resize of 8-bit RGB runs on `fast_image_resize`'s 8-bit
/// kernels (engine::u8_lead): within rounding of the f32 path, the same at any tile size,
/// and never for `ultra`, alpha, crops or nearest-neighbour.
#[test]
fn leading_resizes_of_8_bit_rgb_take_8_bit_kernels_within_rounding() {
    use opossum::config::QualityPreset;
    let engine = engine_at;
    let render = |engine: &Engine, image: &image::DynamicImage, chain: &Chain| {
        let (out, size, labels) = render_8bit(engine, image, chain);
        (out, size, labels.iter().any(|l| l == "resize (8-bit)"))
    };
    let resize = |w: i64, h: i64, mode: &str, filter: &str| {
        let def = ops::find("resize").unwrap();
        let mut op = ChainOp::new(def);
        for (k, v) in [
            ("width", RawValue::Int(w)),
            ("height", RawValue::Int(h)),
            ("mode", RawValue::String(mode.into())),
            ("filter", RawValue::String(filter.into())),
            ("upscale", RawValue::Bool(true)),
        ] {
            op.params.set(def.params, k, &v).unwrap();
        }
        let contrast = ops::find("adjust_colors").unwrap();
        let mut after = ChainOp::new(contrast);
        after
            .params
            .set(contrast.params, "contrast", &RawValue::Float(1.2))
            .unwrap();
        Chain {
            name: None,
            vectorize: None,
            ops: vec![op, after],
        }
    };
    let photo = opossum::bench::synthetic_photo(600);
    let (high, high_tiny, ultra) = (
        engine(QualityPreset::High, 512),
        engine(QualityPreset::High, 32),
        engine(QualityPreset::Ultra, 512),
    );
    for filter in ["lanczos3", "bicubic", "bilinear"] {
        for (w, h) in [(150, 150), (333, 200), (599, 599), (900, 900)] {
            let chain = resize(w, h, "fit", filter);
            let (fast, size, used) = render(&high, &photo, &chain);
            assert!(used, "{filter} {w}x{h}: the 8-bit resize did not run");
            let (tiny, _, _) = render(&high_tiny, &photo, &chain);
            assert_eq!(fast, tiny, "{filter} {w}x{h}: depends on the tile size");
            let (exact, _, used) = render(&ultra, &photo, &chain);
            assert!(!used, "ultra took the 8-bit resize");
            let psnr =
                opossum::vectorize::metrics::psnr_rgba(&exact, &fast, size.width, size.height);
            eprintln!("8-bit resize {filter} {w}x{h}: {psnr:.1} dB against ultra");
            assert!(psnr >= 50.0, "{filter} {w}x{h}: {psnr} dB");
        }
    }
    // A file gives the same pixels whether its output is streamed (PNG) or written whole
    // (TIFF): it is decoded whole for the 8-bit resize either way, not read row by row.
    let chain = resize(333, 200, "fit", "lanczos3");
    let written = file_outputs(&high, &photo, &chain, "resize (8-bit)");
    assert_eq!(written[0], written[1]);
    assert_eq!(written[0], render(&high, &photo, &chain).0);
    // Not for alpha, crops or nearest-neighbour: those keep the f32 path.
    let rgba = image::DynamicImage::ImageRgba8(photo.to_rgba8());
    assert!(!render(&high, &rgba, &resize(150, 150, "fit", "lanczos3")).2);
    assert!(!render(&high, &photo, &resize(300, 100, "fill", "lanczos3")).2);
    assert!(!render(&high, &photo, &resize(150, 150, "fit", "nearest")).2);
}

/// A crop, flip or quarter turn of an opaque 8-bit image (an op's, or the EXIF
/// orientation's) is a pixel copy on 8-bit samples at every preset, with the f32 path's bytes,
/// and the 8-bit kernels after it still run (engine::u8_lead).
#[test]
fn leading_turns_flips_and_crops_of_8_bit_images_copy_8_bit_pixels_exactly() {
    use opossum::config::QualityPreset;
    use opossum::io::decode::Orientation;
    let op = |name: &str, values: &[(&str, RawValue)]| {
        let def = ops::find(name).unwrap();
        let mut op = ChainOp::new(def);
        for (k, v) in values {
            op.params.set(def.params, k, v).unwrap();
        }
        op
    };
    let copies = || {
        vec![
            op("rotate", &[("angle", RawValue::String("90".into()))]),
            op(
                "crop",
                &[
                    ("x", RawValue::Int(7)),
                    ("y", RawValue::Int(5)),
                    ("width", RawValue::Int(100)),
                ],
            ),
            op("flip", &[("direction", RawValue::String("both".into()))]),
        ]
    };
    let mut blurred = copies();
    blurred.push(op("gaussian_blur", &[("sigma", RawValue::Float(2.0))]));
    let chains = [copies(), blurred].map(|ops| Chain {
        name: None,
        vectorize: None,
        ops,
    });
    let render = |engine: &Engine, image: &image::DynamicImage, turn, chain: &Chain| {
        let (out, stats) = engine
            .render_source(image, turn, chain, false, &Default::default())
            .unwrap();
        let eight_bit = stats
            .stage_times
            .iter()
            .filter(|(l, _)| l.contains("(8-bit"))
            .count();
        (out.to_rgba8(), out.size, eight_bit)
    };
    // Not square, so that a turn shows; RGB and grey.
    let rgb = opossum::bench::synthetic_photo(300).crop_imm(0, 0, 300, 170);
    let grey = image::DynamicImage::ImageLuma8(rgb.to_luma8());
    let (high, ultra) = (
        engine_at(QualityPreset::High, 64),
        engine_at(QualityPreset::Ultra, 64),
    );
    for source in [&rgb, &grey] {
        // The same pixels as RGBA, which the 8-bit kernels never take: the f32 path.
        let rgba = image::DynamicImage::ImageRgba8(source.to_rgba8());
        for turn in [
            Orientation::NoTransforms,
            Orientation::Rotate90,
            Orientation::Rotate180,
            Orientation::Rotate270,
            Orientation::FlipHorizontal,
            Orientation::FlipVertical,
            Orientation::Rotate90FlipH,
            Orientation::Rotate270FlipH,
        ] {
            let turn_stages = match turn {
                Orientation::NoTransforms => 0,
                Orientation::Rotate90FlipH | Orientation::Rotate270FlipH => 2,
                _ => 1,
            };
            let what = format!("{:?} {turn:?}", source.color());
            let (f32_copy, size, f32_8bit) = render(&high, &rgba, turn, &chains[0]);
            assert_eq!(f32_8bit, 0, "{what}: RGBA took 8-bit kernels");
            assert_eq!(size.width, 100, "{what}");
            for engine in [&high, &ultra] {
                let (copy, copy_size, eight_bit) = render(engine, source, turn, &chains[0]);
                assert_eq!(
                    eight_bit,
                    turn_stages + 3,
                    "{what}: copies not on 8-bit samples"
                );
                assert_eq!(
                    (copy_size, &copy),
                    (size, &f32_copy),
                    "{what}: not the f32 bytes"
                );
            }
            // A blur after the copies runs on 8-bit kernels too, within its rounding.
            let (f32_blur, _, _) = render(&high, &rgba, turn, &chains[1]);
            let (blur, _, eight_bit) = render(&high, source, turn, &chains[1]);
            assert_eq!(
                eight_bit,
                turn_stages + 4,
                "{what}: the blur left the 8-bit kernels"
            );
            let worst = blur
                .iter()
                .zip(&f32_blur)
                .map(|(a, b)| a.abs_diff(*b))
                .max();
            assert!(
                worst <= Some(1),
                "{what}: {worst:?} levels from the f32 blur"
            );
        }
    }
}
