//! Image I/O: decoding by content, every bad-image category with its exact error kind and no
//! output left behind, unusual but valid images, EXIF orientation, encoders and atomic writes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{encode, jpeg_with_orientation, lying_png, test_image};
use image::{DynamicImage, ImageFormat};
use opossum::chain::raw::RawValue;
use opossum::chain::{Chain, ChainOp, OutputLimits};
use opossum::config::{ByteSize, Config};
use opossum::engine::Engine;
use opossum::error::{Category, Error};
use opossum::io::decode::{DecodeLimits, decode_file};
use opossum::io::encode::{EncodeOptions, OutputFormat};
use opossum::ops;

fn engine(memory: u64) -> Engine {
    let mut config = Config::default();
    config.performance.max_memory_usage = ByteSize(memory);
    config.performance.max_cpu_cores = 2;
    config.performance.tile_size = 64;
    Engine::new(config).unwrap()
}

fn blur_chain() -> Chain {
    let def = ops::find("gaussian_blur").unwrap();
    let mut op = ChainOp::new(def);
    op.params
        .set(def.params, "sigma", &RawValue::Float(1.5))
        .unwrap();
    Chain {
        name: None,
        vectorize: None,
        ops: vec![op],
    }
}

fn png_options() -> EncodeOptions {
    EncodeOptions {
        format: OutputFormat::Png,
        quality: 90,
        lossless: false,
    }
}

/// Render `input` to `dir/out.png`; on failure check nothing is left in `dir` but the input.
fn render_expect_error(input: &Path, dir: &Path) -> Error {
    let before = common::files_in(dir);
    let out = dir.join("out.png");
    let err = engine(1 << 30)
        .render_file(
            input,
            &blur_chain(),
            &out,
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap_err();
    assert_eq!(common::files_in(dir), before, "nothing written for {err}");
    let text = err.to_string();
    assert!(
        text.contains(&input.display().to_string()),
        "message names the file: {text}"
    );
    assert!(!err.hint().is_empty());
    err
}

#[test]
fn bad_images_fail_with_their_category_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = encode(&test_image(40, 30, 1, false), ImageFormat::Png);
    let jpeg = encode(
        &DynamicImage::ImageRgb8(test_image(40, 30, 1, false).to_rgb8()),
        ImageFormat::Jpeg,
    );

    std::fs::write(d.join("empty.png"), b"").unwrap();
    assert!(matches!(
        render_expect_error(&d.join("empty.png"), d),
        Error::EmptyFile { .. }
    ));

    std::fs::write(d.join("text.png"), b"hello, I am not an image\n").unwrap();
    let e = render_expect_error(&d.join("text.png"), d);
    assert!(matches!(e, Error::UnknownFormat { .. }), "{e}");
    assert_eq!(e.category(), Category::Unsupported);

    std::fs::write(d.join("trunc.png"), &png[..png.len() / 2]).unwrap();
    assert_eq!(
        render_expect_error(&d.join("trunc.png"), d).category(),
        Category::Corrupt
    );
    std::fs::write(d.join("trunc.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    let e = render_expect_error(&d.join("trunc.jpg"), d);
    assert!(matches!(e.category(), Category::Corrupt), "{e}");

    let mut corrupt = png.clone();
    for b in corrupt.iter_mut().skip(40) {
        *b ^= 0x5a;
    }
    std::fs::write(d.join("corrupt.png"), &corrupt).unwrap();
    assert_eq!(
        render_expect_error(&d.join("corrupt.png"), d).category(),
        Category::Corrupt
    );

    std::fs::create_dir(d.join("folder.png")).unwrap();
    assert!(matches!(
        render_expect_error(&d.join("folder.png"), d),
        Error::NotAFile { .. }
    ));

    let missing = render_expect_error(&d.join("missing.png"), d);
    assert_eq!(missing.category(), Category::Io);
}

#[cfg(unix)]
#[test]
fn a_fifo_is_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let t = Instant::now();
    let e = render_expect_error(&fifo, dir.path());
    assert!(matches!(e, Error::NotAFile { kind: "a FIFO", .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn wrong_extension_is_decoded_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("really_a_png.jpg");
    std::fs::write(&path, encode(&test_image(9, 7, 2, true), ImageFormat::Png)).unwrap();
    let decoded = decode_file(&path, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.format, ImageFormat::Png);
    assert_eq!((decoded.image.width(), decoded.image.height()), (9, 7));
}

#[test]
fn lying_headers_are_refused_fast_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h, category) in [
        (100_000, 100_000, Category::Limits),
        (60_000, 60_000, Category::Limits),
        (30_000, 30_000, Category::Limits),
    ] {
        let path = dir.path().join(format!("lying_{w}.png"));
        std::fs::write(&path, lying_png(w, h)).unwrap();
        let t = Instant::now();
        let err = decode_file(&path, &DecodeLimits::default()).unwrap_err();
        let elapsed = t.elapsed();
        assert_eq!(err.category(), category, "{err}");
        assert!(
            elapsed < Duration::from_millis(100),
            "{w}x{h} took {elapsed:?}"
        );
    }
}

#[test]
fn a_real_decompression_bomb_is_refused_or_streamed_within_the_memory_limit() {
    // 6000×6000 grey zeros: 36 MB of pixels in a file of a few tens of KB.
    let dir = tempfile::tempdir().unwrap();
    let bomb = DynamicImage::ImageLuma8(image::GrayImage::new(6000, 6000));
    let path = dir.path().join("bomb.png");
    std::fs::write(&path, encode(&bomb, ImageFormat::Png)).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 200_000);
    // TIFF output needs the whole image: refused by a 16 MiB budget, nothing written.
    let tif = dir.path().join("out.tif");
    let options = EncodeOptions {
        format: OutputFormat::Tiff,
        quality: 90,
        lossless: false,
    };
    let err = engine(16 << 20)
        .render_file(
            &path,
            &blur_chain(),
            &tif,
            &options,
            false,
            &Default::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Budget { .. }), "{err}");
    assert!(!tif.exists());
    // PNG in and out stream row by row: the same budget suffices.
    let png_out = dir.path().join("out.png");
    let report = engine(16 << 20)
        .render_file(
            &path,
            &blur_chain(),
            &png_out,
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap();
    assert!(report.streamed_input && report.streamed_output);
    let back = image::open(&png_out).unwrap();
    assert_eq!((back.width(), back.height()), (6000, 6000));
}

#[test]
fn unusual_valid_images_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let eng = engine(1 << 30);
    let mut cases: Vec<(&str, Vec<u8>, (u32, u32))> = vec![
        (
            "tall.png",
            encode(&test_image(1, 37, 3, false), ImageFormat::Png),
            (1, 37),
        ),
        (
            "wide.png",
            encode(&test_image(41, 1, 3, false), ImageFormat::Png),
            (41, 1),
        ),
        (
            "grey_alpha.png",
            encode(
                &DynamicImage::ImageLumaA8(test_image(12, 8, 3, true).to_luma_alpha8()),
                ImageFormat::Png,
            ),
            (12, 8),
        ),
        (
            "img.bmp",
            encode(
                &DynamicImage::ImageRgb8(test_image(13, 9, 4, false).to_rgb8()),
                ImageFormat::Bmp,
            ),
            (13, 9),
        ),
        (
            "img.tif",
            encode(&test_image(13, 9, 4, true), ImageFormat::Tiff),
            (13, 9),
        ),
        (
            "img.webp",
            encode(&test_image(13, 9, 4, true), ImageFormat::WebP),
            (13, 9),
        ),
    ];
    // Palette PNG with a transparent entry.
    let mut palette = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut palette, 4, 2);
        enc.set_color(png::ColorType::Indexed);
        enc.set_palette(vec![255, 0, 0, 0, 0, 255]);
        enc.set_trns(vec![0, 255]);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0, 1, 0, 1, 1, 0, 1, 0]).unwrap();
    }
    cases.push(("palette.png", palette, (4, 2)));
    // Animated GIF: two frames, the first is used.
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        for v in [10u8, 200] {
            let frame = image::RgbaImage::from_pixel(6, 5, image::Rgba([v, v, v, 255]));
            enc.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    cases.push(("anim.gif", gif, (6, 5)));
    for (name, bytes, (w, h)) in cases {
        let input = d.join(name);
        std::fs::write(&input, bytes).unwrap();
        let out = d.join(format!("{name}.out.png"));
        // The palette case checks alpha pixel by pixel, so it is not blurred.
        let chain = if name == "palette.png" {
            Chain::default()
        } else {
            blur_chain()
        };
        let report = eng
            .render_file(
                &input,
                &chain,
                &out,
                &png_options(),
                false,
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (report.output_size.width, report.output_size.height),
            (w, h),
            "{name}"
        );
        let back = image::open(&out).unwrap();
        assert_eq!((back.width(), back.height()), (w, h));
        if name == "palette.png" {
            let px = back.to_rgba8();
            assert_eq!(
                px.get_pixel(0, 0)[3],
                0,
                "transparent palette entry stays transparent"
            );
            assert_eq!(px.get_pixel(1, 0)[3], 255);
        }
        if name == "anim.gif" {
            let v = back.to_rgb8().get_pixel(2, 2)[0];
            assert!(v < 30, "first frame used, got {v}");
        }
    }
}

#[test]
fn sixteen_bit_png_stays_sixteen_bit() {
    let dir = tempfile::tempdir().unwrap();
    let img = image::ImageBuffer::from_fn(5, 4, |x, y| {
        image::Rgb([x as u16 * 13_001, y as u16 * 257 + 1, 40_001u16])
    });
    let input = dir.path().join("deep.png");
    std::fs::write(
        &input,
        encode(&DynamicImage::ImageRgb16(img.clone()), ImageFormat::Png),
    )
    .unwrap();
    let out = dir.path().join("deep_out.png");
    engine(1 << 30)
        .render_file(
            &input,
            &Chain::default(),
            &out,
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap();
    let back = image::open(&out).unwrap();
    assert_eq!(back.color(), image::ColorType::Rgb16);
    assert_eq!(
        back.to_rgb16(),
        img,
        "an empty chain is lossless at 16 bits"
    );
}

/// `chain` on `input` rendered by `eng` to `name` in `dir` as `format` (quality 90, lossless
/// WebP), read back.
fn render_into(
    eng: &Engine,
    dir: &Path,
    input: &Path,
    chain: &Chain,
    name: &str,
    format: OutputFormat,
) -> DynamicImage {
    let out = dir.join(name);
    let options = EncodeOptions {
        format,
        quality: 90,
        lossless: true,
    };
    eng.render_file(input, chain, &out, &options, false, &Default::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    image::open(&out).unwrap()
}

fn chain_of(ops_and_params: &[(&str, &[(&str, RawValue)])]) -> Chain {
    let ops = ops_and_params
        .iter()
        .map(|(id, params)| {
            let def = ops::find(id).unwrap();
            let mut op = ChainOp::new(def);
            for (k, v) in *params {
                op.params.set(def.params, k, v).unwrap();
            }
            op
        })
        .collect();
    Chain {
        name: None,
        vectorize: None,
        ops,
    }
}

/// A grey source whose chain keeps it grey is written with one grey channel, at its depth,
/// whether the output is streamed (PNG, JPEG) or encoded whole (TIFF); a chain that colours it
/// gives RGB. An opaque source with an alpha channel (a GIF) loses the channel; one with
/// transparent pixels keeps it.
#[test]
fn outputs_keep_one_grey_channel_and_no_alpha_the_pixels_do_not_need() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let eng = engine(1 << 30);
    let grey16 = test_image(64, 48, 5, false).to_luma16();
    let input = d.join("scan.png");
    std::fs::write(
        &input,
        encode(&DynamicImage::ImageLuma16(grey16), ImageFormat::Png),
    )
    .unwrap();
    let render = |input: &Path, chain: &Chain, name: &str, format: OutputFormat| {
        render_into(&eng, d, input, chain, name, format)
    };
    let keeps = chain_of(&[
        ("gaussian_blur", &[("sigma", RawValue::Float(1.5))]),
        ("adjust_colors", &[("saturation", RawValue::Float(1.3))]),
        (
            "add_border",
            &[
                ("size", RawValue::Int(3)),
                ("color", RawValue::String("#808080".into())),
            ],
        ),
    ]);
    let png = render(&input, &keeps, "keeps.png", OutputFormat::Png);
    let tif = render(&input, &keeps, "keeps.tif", OutputFormat::Tiff);
    let jpg = render(&input, &keeps, "keeps.jpg", OutputFormat::Jpeg);
    let webp = render(&input, &keeps, "keeps.webp", OutputFormat::Webp);
    assert_eq!(png.color(), image::ColorType::L16);
    assert_eq!(tif.color(), image::ColorType::L16);
    assert_eq!(jpg.color(), image::ColorType::L8);
    assert_eq!(png.to_luma16(), tif.to_luma16(), "streamed and whole agree");
    // The grey samples are the colour render's: WebP (no grey mode) has them in each channel.
    let from_webp: Vec<u8> = webp.to_rgb8().pixels().map(|p| p.0[0]).collect();
    assert_eq!(png.to_luma8().into_raw(), from_webp);
    for (name, chain) in [
        (
            "sepia.png",
            chain_of(&[(
                "color_convert",
                &[("mode", RawValue::String("sepia".into()))],
            )]),
        ),
        (
            "red.png",
            chain_of(&[(
                "add_border",
                &[
                    ("size", RawValue::Int(3)),
                    ("color", RawValue::String("#ff0000".into())),
                ],
            )]),
        ),
    ] {
        let out = render(&input, &chain, name, OutputFormat::Png);
        assert_eq!(out.color(), image::ColorType::Rgb16, "{name}");
    }
    // A colour source made grey is written grey, on the f32 path as on the 8-bit one.
    let colour = d.join("colour.png");
    std::fs::write(
        &colour,
        encode(&test_image(40, 30, 2, false), ImageFormat::Png),
    )
    .unwrap();
    let made = render(
        &colour,
        &chain_of(&[
            ("grayscale", &[]),
            ("gaussian_blur", &[("sigma", RawValue::Float(2.0))]),
        ]),
        "made.png",
        OutputFormat::Png,
    );
    assert_eq!(made.color(), image::ColorType::L8);
    // GIFs decode with alpha: opaque ones are written without it.
    for (name, alpha) in [("opaque.gif", 255u8), ("clear.gif", 0)] {
        let mut gif = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
            let frame = image::RgbaImage::from_fn(6, 5, |x, _| {
                image::Rgba([200, 40 * x as u8, 10, if x == 0 { alpha } else { 255 }])
            });
            enc.encode_frame(image::Frame::new(frame)).unwrap();
        }
        let input = d.join(name);
        std::fs::write(&input, gif).unwrap();
        let out = render(
            &input,
            &blur_chain(),
            &format!("{name}.png"),
            OutputFormat::Png,
        );
        let expect = if alpha == 255 {
            image::ColorType::Rgb8
        } else {
            image::ColorType::Rgba8
        };
        assert_eq!(out.color(), expect, "{name}");
    }
}

#[test]
fn grey_with_alpha_keeps_one_grey_channel_and_its_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let eng = engine(1 << 30);
    let render = |input: &Path, chain: &Chain, name: &str, format: OutputFormat| {
        render_into(&eng, d, input, chain, name, format)
    };
    // A half-transparent ramp, grey with alpha, at 8 and 16 bits: streamed (blur), and
    // rendered whole (Canny edges need the whole image).
    let la16 = image::ImageBuffer::<image::LumaA<u16>, _>::from_fn(40, 30, |x, y| {
        image::LumaA([(x * 1500 + y * 700) as u16, (x * 1600 + 1000) as u16])
    });
    let la8 = DynamicImage::ImageLumaA16(la16.clone()).to_luma_alpha8();
    let canny = chain_of(&[("edge_detect", &[("mode", RawValue::String("canny".into()))])]);
    for (name, source) in [
        ("la16.png", DynamicImage::ImageLumaA16(la16)),
        ("la8.png", DynamicImage::ImageLumaA8(la8)),
    ] {
        let input = d.join(name);
        std::fs::write(&input, encode(&source, ImageFormat::Png)).unwrap();
        for (label, chain) in [("blur", blur_chain()), ("canny", canny.clone())] {
            let case = format!("{label} {name}");
            let png = render(
                &input,
                &chain,
                &format!("{label}-{name}"),
                OutputFormat::Png,
            );
            // The RGBA render (TIFF keeps RGBA for grey with alpha) has R = G = B, and the
            // PNG holds its grey and alpha, at its bit depth.
            let tif = render(
                &input,
                &chain,
                &format!("{label}-{name}.tif"),
                OutputFormat::Tiff,
            );
            let rgba = tif.to_rgba16();
            assert!(
                rgba.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]),
                "{case}"
            );
            let transparent = rgba.pixels().any(|p| p.0[3] < u16::MAX);
            let want = match (tif.color(), transparent) {
                (image::ColorType::Rgba16, true) => image::ColorType::La16,
                (image::ColorType::Rgba8, true) => image::ColorType::La8,
                (image::ColorType::Rgb16 | image::ColorType::Rgba16, false) => {
                    image::ColorType::L16
                }
                (image::ColorType::Rgb8 | image::ColorType::Rgba8, false) => image::ColorType::L8,
                (other, _) => panic!("{case}: TIFF {other:?}"),
            };
            assert_eq!(png.color(), want, "{case}");
            let from_tif: Vec<[u16; 2]> = rgba.pixels().map(|p| [p.0[0], p.0[3]]).collect();
            let from_png: Vec<[u16; 2]> = png.to_luma_alpha16().pixels().map(|p| p.0).collect();
            assert_eq!(from_png, from_tif, "{case}");
            // JPEG has no alpha: grey flattened over white, one channel.
            let jpg = render(
                &input,
                &chain,
                &format!("{label}-{name}.jpg"),
                OutputFormat::Jpeg,
            );
            assert_eq!(jpg.color(), image::ColorType::L8, "{case}");
        }
        assert!(
            image::open(d.join(format!("blur-{name}")))
                .unwrap()
                .color()
                .has_alpha(),
            "the blur keeps the ramp's alpha"
        );
    }
    // An opaque grey source that a half-transparent grey border gives alpha: grey and alpha.
    let grey = d.join("grey.png");
    let luma = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([(x * 5 + y) as u8]));
    std::fs::write(
        &grey,
        encode(&DynamicImage::ImageLuma8(luma), ImageFormat::Png),
    )
    .unwrap();
    let border = chain_of(&[(
        "add_border",
        &[
            ("size", RawValue::Int(3)),
            ("color", RawValue::String("#80808080".into())),
        ],
    )]);
    let png = render(&grey, &border, "bordered-grey.png", OutputFormat::Png);
    assert_eq!(png.color(), image::ColorType::La8);
    assert_eq!(png.to_luma_alpha8().get_pixel(0, 0).0, [128, 128]);
}

#[test]
fn exif_orientation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    // Left half black, right half white, 16×8.
    let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(16, 8, |x, _| {
        if x < 8 {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    }));
    let input = dir.path().join("rot.jpg");
    // 6 = rotate 90° clockwise to display.
    std::fs::write(&input, jpeg_with_orientation(&img, 6)).unwrap();
    let out = dir.path().join("rot.png");
    let report = engine(1 << 30)
        .render_file(
            &input,
            &Chain::default(),
            &out,
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(
        (report.output_size.width, report.output_size.height),
        (8, 16)
    );
    let back = image::open(&out).unwrap().to_rgb8();
    // After a clockwise turn the left (black) half is on top.
    assert!(back.get_pixel(4, 2)[0] < 40);
    assert!(back.get_pixel(4, 13)[0] > 215);
}

#[test]
fn every_encoder_writes_a_readable_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        encode(&test_image(33, 21, 9, true), ImageFormat::Png),
    )
    .unwrap();
    let eng = engine(1 << 30);
    for (format, lossless, ext) in [
        (OutputFormat::Png, false, "png"),
        (OutputFormat::Jpeg, false, "jpg"),
        (OutputFormat::Webp, false, "webp"),
        (OutputFormat::Webp, true, "webp"),
        (OutputFormat::Tiff, false, "tif"),
    ] {
        let out = dir.path().join(format!("out_{lossless}.{ext}"));
        let options = EncodeOptions {
            format,
            quality: 80,
            lossless,
        };
        eng.render_file(
            &input,
            &blur_chain(),
            &out,
            &options,
            false,
            &Default::default(),
        )
        .unwrap();
        let back = image::open(&out).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_eq!((back.width(), back.height()), (33, 21), "{ext}");
    }
    assert!(
        common::files_in(dir.path())
            .iter()
            .all(|n| !n.starts_with(".opossum-tmp"))
    );
}

#[test]
fn the_input_is_never_overwritten_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    let bytes = encode(&test_image(8, 8, 1, false), ImageFormat::Png);
    std::fs::write(&input, &bytes).unwrap();
    let err = engine(1 << 30)
        .render_file(
            &input,
            &blur_chain(),
            &input,
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::WouldOverwriteInput { .. }));
    assert_eq!(std::fs::read(&input).unwrap(), bytes);
    engine(1 << 30)
        .render_file(
            &input,
            &blur_chain(),
            &input,
            &png_options(),
            true,
            &Default::default(),
        )
        .unwrap();
    assert_ne!(std::fs::read(&input).unwrap(), bytes);
}

#[test]
fn a_missing_output_folder_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        encode(&test_image(8, 8, 1, false), ImageFormat::Png),
    )
    .unwrap();
    let out = dir.path().join("no/such/dir/out.png");
    let err = engine(1 << 30)
        .render_file(
            &input,
            &blur_chain(),
            &out,
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap_err();
    assert_eq!(err.category(), Category::Encode, "{err}");
    assert_eq!(common::files_in(dir.path()), vec!["in.png"]);
}

#[test]
fn webp_refuses_oversized_output_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        encode(&test_image(20, 2, 1, false), ImageFormat::Png),
    )
    .unwrap();
    let def = ops::find("resize").unwrap();
    let mut op = ChainOp::new(def);
    for (k, v) in [("width", 17_000), ("height", 2)] {
        op.params.set(def.params, k, &RawValue::Int(v)).unwrap();
    }
    op.params
        .set(def.params, "mode", &RawValue::String("exact".into()))
        .unwrap();
    let chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![op],
    };
    let out = dir.path().join("wide.webp");
    let options = EncodeOptions {
        format: OutputFormat::Webp,
        quality: 80,
        lossless: false,
    };
    let err = engine(1 << 30)
        .render_file(&input, &chain, &out, &options, false, &Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("16383"), "{err}");
    assert!(!out.exists());
    let _ = OutputLimits::default();
}

#[test]
fn cmyk_jpeg_decodes_to_rgb() {
    // A CMYK JPEG (as print workflows write): pure cyan on the left, white on the right.
    let (w, h) = (16u16, 8u16);
    let mut cmyk = Vec::new();
    for _y in 0..h {
        for x in 0..w {
            cmyk.extend_from_slice(if x < 8 {
                &[255, 0, 0, 0]
            } else {
                &[0, 0, 0, 0]
            });
        }
    }
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 95)
        .encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cmyk.jpg");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("cmyk.png");
    engine(1 << 30)
        .render_file(
            &input,
            &Chain::default(),
            &out,
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap();
    let back = image::open(&out).unwrap().to_rgb8();
    let cyan = back.get_pixel(2, 4);
    let white = back.get_pixel(13, 4);
    assert!(
        cyan[0] < 60 && cyan[1] > 180 && cyan[2] > 180,
        "cyan: {cyan:?}"
    );
    assert!(white.0.iter().all(|&v| v > 230), "white: {white:?}");
}

#[cfg(unix)]
#[test]
fn outputs_get_the_usual_file_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        encode(&test_image(8, 8, 1, false), ImageFormat::Png),
    )
    .unwrap();
    let reference = dir.path().join("reference");
    std::fs::File::create(&reference).unwrap();
    let expected = std::fs::metadata(&reference).unwrap().permissions().mode() & 0o777;
    for name in ["out.png", "out.tif"] {
        let out = dir.path().join(name);
        let format = OutputFormat::from_path(&out).unwrap();
        let options = EncodeOptions {
            format,
            quality: 90,
            lossless: false,
        };
        engine(1 << 30)
            .render_file(
                &input,
                &blur_chain(),
                &out,
                &options,
                false,
                &Default::default(),
            )
            .unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected, "{name}");
    }
}

#[test]
fn stale_temp_files_from_a_crash_are_cleaned_and_fresh_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(".opossum-tmp-crashed.tmp");
    let fresh = dir.path().join(".opossum-tmp-busy.tmp");
    let other = dir.path().join("keep.tmp");
    for p in [&stale, &fresh, &other] {
        std::fs::write(p, b"partial").unwrap();
    }
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&other)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        encode(&test_image(8, 8, 1, false), ImageFormat::Png),
    )
    .unwrap();
    engine(1 << 30)
        .render_file(
            &input,
            &blur_chain(),
            &dir.path().join("out.png"),
            &png_options(),
            false,
            &Default::default(),
        )
        .unwrap();
    assert!(!stale.exists(), "a crashed run's temp file is removed");
    assert!(fresh.exists(), "a temp file still being written is kept");
    assert!(other.exists(), "other files are never touched");
}
