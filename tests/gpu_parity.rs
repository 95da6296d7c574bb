//! The GPU preview path against the CPU renderer, on a real wgpu device (Mesa's lavapipe in CI;
//! these tests fail, never skip, when no adapter exists: `.ci/run` installs one).
//!
//! Tolerances (working values are 0..1 floats):
//! - every op × random parameters × odd sizes, at full and half scale: max abs error ≤ 2/10000
//!   per channel and PSNR ≥ 80 dB (random 3-op chains: ≤ 5/10000) (measured worst cases are printed with `--nocapture`; f32
//!   sums in the same order, so differences come only from FMA contraction and `pow`/`sqrt`
//!   precision);
//! - preview at pyramid level L against the full-resolution export downsampled to level L:
//!   PSNR ≥ 30 dB on RGB (the pyramid filters the source before the chain instead of after it,
//!   which is the approximation every pyramid preview makes).
#![cfg(feature = "gpu")]

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use common::{Rng, random_chain, random_op, render_scaled_for, test_image};
use image::DynamicImage;
use opossum::chain::raw::RawValue;
use opossum::chain::{Chain, ChainOp, OutputLimits};
use opossum::engine::pyramid::Pyramid;
use opossum::engine::tile::Tile;
use opossum::gpu::{Backend, GpuContext, GpuRenderer, GpuRequest};
use opossum::io::decode::Orientation;
use opossum::ops;

fn context() -> GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::headless().unwrap_or_else(|e| {
            panic!("{e}: the GPU tests need a Vulkan adapter (Mesa's lavapipe: apt-get install mesa-vulkan-drivers, WGPU_BACKEND=vulkan)")
        })
    })
    .clone()
}

/// One renderer per test binary, like the app's (lavapipe devices are not cheap to open).
fn renderer() -> std::sync::MutexGuard<'static, GpuRenderer> {
    static R: OnceLock<Mutex<GpuRenderer>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(GpuRenderer::new(context())))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn gpu_render(
    renderer: &mut GpuRenderer,
    pyramid: &Arc<Pyramid>,
    level: usize,
    chain: &Chain,
) -> Result<(Tile, opossum::gpu::GpuFrame), opossum::gpu::GpuError> {
    let frame = renderer.render(
        &GpuRequest {
            chain,
            pyramid,
            orientation: Orientation::NoTransforms,
            level,
            region: None,
            limits: OutputLimits::default(),
            quality: opossum::quality::QualityPreset::default(),
        },
        &AtomicBool::new(false),
    )?;
    let tile = frame.read_back(renderer.context()).unwrap();
    Ok((tile, frame))
}

/// Max abs error and PSNR (dB) over the channels in `channels`, where the pixel is visible.
fn compare(a: &Tile, b: &Tile, channels: std::ops::Range<usize>) -> (f32, f64) {
    let d = diff(a, b, channels);
    (d.max, d.psnr_db)
}

/// How two tiles differ, with the worst pixel for failure messages.
struct Diff {
    max: f32,
    psnr_db: f64,
    /// Pixel index, then its values in `a` and in `b`.
    worst: (usize, [f32; 4], [f32; 4]),
}

fn diff(a: &Tile, b: &Tile, channels: std::ops::Range<usize>) -> Diff {
    assert_eq!(a.rect, b.rect, "sizes differ");
    let (mut max, mut sq, mut n) = (0f32, 0f64, 0usize);
    let mut worst = (0, [0f32; 4], [0f32; 4]);
    for (i, (pa, pb)) in a
        .data
        .chunks_exact(4)
        .zip(b.data.chunks_exact(4))
        .enumerate()
    {
        // Colour under zero alpha is invisible and not defined the same way by every op.
        let visible = pa[3] > 0.0 || pb[3] > 0.0;
        for c in channels.clone() {
            if c < 3 && !visible {
                continue;
            }
            let d = (pa[c] - pb[c]).abs();
            if d > max {
                max = d;
                let px = |p: &[f32]| [p[0], p[1], p[2], p[3]];
                worst = (i, px(pa), px(pb));
            }
            sq += f64::from(d) * f64::from(d);
            n += 1;
        }
    }
    let mse = sq / n.max(1) as f64;
    let psnr_db = if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (1.0 / mse).log10()
    };
    Diff {
        max,
        psnr_db,
        worst,
    }
}

#[test]
fn every_op_matches_the_cpu_at_odd_sizes_and_scales() {
    let mut renderer = renderer();
    let sizes = [(1, 1), (3, 5), (17, 9), (31, 23), (64, 37)];
    let mut rng = Rng::new(0x6770_7531);
    let mut worst: Vec<(String, f32, f64)> = Vec::new();
    // Every case runs; the failures are listed together at the end.
    let mut failures: Vec<String> = Vec::new();
    for def in ops::registry() {
        let mut op_worst = (0f32, f64::INFINITY);
        for (i, &(w, h)) in sizes.iter().enumerate() {
            let image = test_image(w, h, i as u64 + 7, i % 2 == 0);
            let pyramid = Arc::new(Pyramid::build(&image).unwrap());
            for _ in 0..4 {
                let chain = Chain {
                    name: None,
                    vectorize: None,
                    ops: vec![random_op(def, &mut rng)],
                };
                for level in 0..pyramid.levels.len().min(2) {
                    let l = &pyramid.levels[level];
                    let cpu =
                        render_scaled_for(&l.image, &chain, 16, l.scale, Some(pyramid.detail));
                    let gpu = gpu_render(&mut renderer, &pyramid, level, &chain);
                    let Some(cpu) = cpu else {
                        // Not buildable for this size (e.g. a crop outside it): the GPU path
                        // must refuse it the same way.
                        assert!(
                            matches!(gpu, Err(opossum::gpu::GpuError::Chain(_))),
                            "{}: CPU refused, GPU did not ({:?})",
                            def.id,
                            chain.to_toml_string()
                        );
                        continue;
                    };
                    let (gpu, _) = gpu.unwrap_or_else(|e| panic!("{}: {e}", def.id));
                    let d = diff(&cpu, &gpu, 0..4);
                    let (max, psnr) = (d.max, d.psnr_db);
                    if !(max <= 2e-4 && psnr >= 80.0) {
                        let (i, c, g) = d.worst;
                        failures.push(format!(
                            "{} at {w}x{h} level {level}: max abs {max}, PSNR {psnr:.1} dB; worst pixel {i}: CPU {c:?}, GPU {g:?}\n{}",
                            def.id,
                            chain.to_toml_string()
                        ));
                    }
                    op_worst = (op_worst.0.max(max), op_worst.1.min(psnr));
                }
            }
        }
        worst.push((def.id.to_owned(), op_worst.0, op_worst.1));
    }
    for (id, max, psnr) in &worst {
        println!("{id:>14}: worst max abs error {max:.2e}, worst PSNR {psnr:.1} dB");
    }
    assert!(
        failures.is_empty(),
        "{} case(s) over the tolerance:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn random_chains_match_the_cpu() {
    let mut renderer = renderer();
    let mut rng = Rng::new(42);
    let mut rendered = 0;
    for case in 0..40u64 {
        let (w, h) = (rng.range(1, 48) as u32, rng.range(1, 48) as u32);
        let image = test_image(w, h, case, case % 3 == 0);
        let pyramid = Arc::new(Pyramid::build(&image).unwrap());
        let chain = random_chain(&mut rng, 3);
        let Some(cpu) = render_scaled_for(&image, &chain, 16, 1.0, Some(pyramid.detail)) else {
            continue;
        };
        let (gpu, _) = gpu_render(&mut renderer, &pyramid, 0, &chain)
            .unwrap_or_else(|e| panic!("{e}\n{}", chain.to_toml_string()));
        let (max, psnr) = compare(&cpu, &gpu, 0..4);
        assert!(
            max <= 5e-4 && psnr >= 80.0,
            "case {case} {w}x{h}: max abs {max}, PSNR {psnr:.1}\n{}",
            chain.to_toml_string()
        );
        rendered += 1;
    }
    assert!(rendered > 20, "only {rendered} chains could be built");
}

fn step(id: &str, pairs: &[(&str, RawValue)]) -> ChainOp {
    opossum::bench::step(id, pairs)
}

#[test]
fn editing_op_k_reruns_only_ops_k_to_n_and_gives_the_same_pixels() {
    let mut renderer = renderer();
    let image = test_image(96, 80, 3, true);
    let pyramid = Arc::new(Pyramid::build(&image).unwrap());
    let mut chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![
            step("gaussian_blur", &[("sigma", RawValue::Float(2.0))]),
            step("adjust_colors", &[("brightness", RawValue::Float(1.2))]),
            step("sharpen", &[("amount", RawValue::Float(1.0))]),
        ],
    };
    gpu_render(&mut renderer, &pyramid, 0, &chain).unwrap();
    let specs = chain.ops[1].def.params;
    chain.ops[1]
        .params
        .set(specs, "brightness", &RawValue::Float(0.8))
        .unwrap();
    let (edited, frame) = gpu_render(&mut renderer, &pyramid, 0, &chain).unwrap();
    let backends: Vec<(String, Backend)> = frame
        .stages
        .iter()
        .map(|s| (s.label.clone(), s.backend))
        .collect();
    assert!(
        backends.contains(&("source".into(), Backend::Cached)),
        "{backends:?}"
    );
    assert!(
        backends.contains(&("gaussian_blur".into(), Backend::Cached)),
        "{backends:?}"
    );
    assert!(
        backends.contains(&("adjust_colors".into(), Backend::Gpu)),
        "{backends:?}"
    );
    assert!(
        backends.contains(&("sharpen".into(), Backend::Gpu)),
        "{backends:?}"
    );
    assert_eq!(frame.cache_hits, 2);
    // The same as a render from scratch.
    let mut fresh = GpuRenderer::new(context());
    let (scratch, frame) = gpu_render(&mut fresh, &pyramid, 0, &chain).unwrap();
    assert_eq!(frame.cache_hits, 0);
    assert_eq!(edited.data, scratch.data);
}

#[test]
fn outputs_over_the_texture_limit_render_as_tiles_with_the_same_pixels() {
    let mut ctx = context();
    ctx.max_side_px = 40;
    let mut small = GpuRenderer::new(ctx);
    let image = test_image(100, 70, 9, true);
    let pyramid = Arc::new(Pyramid::build(&image).unwrap());
    let chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![
            step("gaussian_blur", &[("sigma", RawValue::Float(1.5))]),
            step("rotate", &[("angle", RawValue::String("90".into()))]),
            step("sharpen", &[("amount", RawValue::Float(2.0))]),
            step(
                "resize",
                &[("width", RawValue::Int(90)), ("height", RawValue::Int(0))],
            ),
        ],
    };
    let (tiled, frame) = gpu_render(&mut small, &pyramid, 0, &chain).unwrap();
    assert!(frame.tiles.len() > 4, "{} tiles", frame.tiles.len());
    for t in &frame.tiles {
        assert!(t.rect.width <= 40 && t.rect.height <= 40, "{:?}", t.rect);
    }
    let (whole, frame) = gpu_render(&mut renderer(), &pyramid, 0, &chain).unwrap();
    assert_eq!(frame.tiles.len(), 1);
    let (max, _) = compare(&whole, &tiled, 0..4);
    assert!(max <= 1e-6, "tiled differs from whole by {max}");
    let cpu = render_scaled_for(&image, &chain, 16, 1.0, Some(pyramid.detail)).unwrap();
    let (max, _) = compare(&cpu, &tiled, 0..4);
    assert!(max <= 1e-3, "tiled differs from the CPU by {max}");
}

#[test]
fn canny_is_the_documented_cpu_exception_and_still_matches() {
    let mut renderer = renderer();
    let image = test_image(50, 41, 5, false);
    let pyramid = Arc::new(Pyramid::build(&image).unwrap());
    let chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![
            step("adjust_colors", &[("contrast", RawValue::Float(1.5))]),
            step("edge_detect", &[("mode", RawValue::String("canny".into()))]),
            step("gaussian_blur", &[("sigma", RawValue::Float(1.0))]),
        ],
    };
    let (gpu, frame) = gpu_render(&mut renderer, &pyramid, 0, &chain).unwrap();
    let canny = frame
        .stages
        .iter()
        .find(|s| s.label == "edge_detect")
        .unwrap();
    assert_eq!(canny.backend, Backend::Cpu);
    let cpu = render_scaled_for(&image, &chain, 16, 1.0, Some(pyramid.detail)).unwrap();
    let (max, _) = compare(&cpu, &gpu, 0..4);
    assert!(max <= 1e-3, "{max}");
}

#[test]
fn histogram_counts_every_shown_pixel() {
    let mut renderer = renderer();
    let image = test_image(33, 21, 8, true);
    let pyramid = Arc::new(Pyramid::build(&image).unwrap());
    let chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![step("grayscale", &[])],
    };
    let (tile, frame) = gpu_render(&mut renderer, &pyramid, 0, &chain).unwrap();
    for channel in frame.histogram.iter() {
        assert_eq!(channel.iter().sum::<u32>(), 33 * 21);
    }
    let mut red = [0u32; 256];
    for px in tile.data.chunks_exact(4) {
        red[opossum::engine::sink::to_u8(px[0]) as usize] += 1;
    }
    assert_eq!(frame.histogram[0], red);
}

/// The "preview matches export" promise: the preview rendered from pyramid level L equals the
/// full-resolution render downsampled to level L, within the stated tolerance.
#[test]
fn preview_at_a_pyramid_level_matches_the_export_downsampled() {
    let mut renderer = renderer();
    let source = opossum::bench::synthetic_photo(1024);
    let pyramid = Arc::new(Pyramid::build(&source).unwrap());
    let chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![
            step(
                "adjust_colors",
                &[
                    ("brightness", RawValue::Float(1.1)),
                    ("saturation", RawValue::Float(1.3)),
                ],
            ),
            step("gaussian_blur", &[("sigma", RawValue::Float(6.0))]),
            step(
                "sharpen",
                &[
                    ("amount", RawValue::Float(0.8)),
                    ("radius", RawValue::Float(4.0)),
                ],
            ),
            step(
                "add_border",
                &[
                    ("size", RawValue::Int(32)),
                    ("color", RawValue::String("#204080ff".into())),
                ],
            ),
        ],
    };
    let export = render_scaled_for(&source, &chain, 256, 1.0, Some(pyramid.detail)).unwrap();
    let export_rgba = DynamicImage::ImageRgba8(
        image::RgbaImage::from_raw(
            export.rect.width,
            export.rect.height,
            export
                .data
                .iter()
                .map(|&v| opossum::engine::sink::to_u8(v))
                .collect(),
        )
        .unwrap(),
    );
    let downsampled = Pyramid::build(&export_rgba).unwrap();
    for level in 1..=2 {
        let (preview, _) = gpu_render(&mut renderer, &pyramid, level, &chain).unwrap();
        let reference = downsampled.levels[level].image.to_rgba8();
        let expected = Tile {
            rect: preview.rect,
            data: reference
                .as_raw()
                .iter()
                .map(|&v| f32::from(v) / 255.0)
                .collect(),
        };
        let (max, psnr) = compare(&expected, &preview, 0..3);
        println!("level {level}: PSNR {psnr:.1} dB, max abs {max:.3}");
        assert!(psnr >= 30.0, "level {level}: PSNR {psnr:.1} dB");
    }
}
