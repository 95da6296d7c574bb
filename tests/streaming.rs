//! Streaming renders (PNG/JPEG rows in, PNG/JPEG bands out) give the same pixels as whole-image
//! renders, fall back where rows cannot arrive in order, refuse truncated files, and keep peak
//! memory bounded by the budget rather than the image size.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Rng, encode, random_chain, test_image};
use image::{DynamicImage, ImageEncoder as _, ImageFormat};
use opossum::chain::raw::RawValue;
use opossum::chain::{Chain, ChainOp};
use opossum::config::{ByteSize, Config};
use opossum::engine::Engine;
use opossum::error::Category;
use opossum::io::encode::{EncodeOptions, OutputFormat};
use opossum::ops;

fn engine(memory: u64, tile: u32) -> Engine {
    let mut config = Config::default();
    config.performance.max_memory_usage = ByteSize(memory);
    config.performance.max_cpu_cores = 2;
    config.performance.tile_size = tile;
    Engine::new(config).unwrap()
}

fn options(format: OutputFormat) -> EncodeOptions {
    EncodeOptions {
        format,
        quality: 90,
        lossless: false,
    }
}

fn read(path: &Path) -> image::RgbaImage {
    image::ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .decode()
        .unwrap()
        .to_rgba8()
}

#[test]
fn streamed_png_equals_the_whole_image_render() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(77);
    let mut streamed_inputs = 0;
    for case in 0..24 {
        let (w, h) = (rng.range(1, 90) as u32, rng.range(1, 90) as u32);
        let input = dir.path().join(format!("in{case}.png"));
        std::fs::write(
            &input,
            encode(&test_image(w, h, case, case % 2 == 0), ImageFormat::Png),
        )
        .unwrap();
        let len = rng.range(1, 4) as usize;
        let chain = random_chain(&mut rng, len);
        let eng = engine(1 << 30, 16);
        let png = dir.path().join(format!("out{case}.png"));
        let tif = dir.path().join(format!("out{case}.tif"));
        let streamed = eng.render_file(
            &input,
            &chain,
            &png,
            &options(OutputFormat::Png),
            false,
            &Default::default(),
        );
        let whole = eng.render_file(
            &input,
            &chain,
            &tif,
            &options(OutputFormat::Tiff),
            false,
            &Default::default(),
        );
        match (streamed, whole) {
            (Ok(report), Ok(_)) => {
                streamed_inputs += usize::from(report.streamed_input);
                let ids: Vec<&str> = chain.ops.iter().map(|o| o.def.id).collect();
                assert_eq!(read(&png), read(&tif), "case {case} {w}x{h} {ids:?}");
            }
            (Err(a), Err(b)) => assert_eq!(a.category(), b.category()),
            (a, b) => panic!("case {case}: streamed {:?} vs whole {:?}", a.err(), b.err()),
        }
    }
    assert!(
        streamed_inputs >= 8,
        "only {streamed_inputs} cases streamed their input"
    );
}

#[test]
fn large_jpeg_streams_through_libjpeg_and_matches_closely() {
    let dir = tempfile::tempdir().unwrap();
    let img = DynamicImage::ImageRgb8(test_image(1600, 1200, 3, false).to_rgb8());
    let input = dir.path().join("big.jpg");
    std::fs::write(&input, encode(&img, ImageFormat::Jpeg)).unwrap();
    let def = ops::find("gaussian_blur").unwrap();
    let mut op = ChainOp::new(def);
    op.params
        .set(def.params, "sigma", &RawValue::Float(2.0))
        .unwrap();
    let chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![op],
    };
    // 1600×1200×3 = 5.8 MB decoded, over a quarter of 16 MiB: streamed.
    let out = dir.path().join("out.jpg");
    let report = engine(16 << 20, 128)
        .render_file(
            &input,
            &chain,
            &out,
            &options(OutputFormat::Jpeg),
            false,
            &Default::default(),
        )
        .unwrap();
    assert!(report.streamed_input && report.streamed_output);
    let whole = dir.path().join("whole.tif");
    engine(1 << 30, 128)
        .render_file(
            &input,
            &chain,
            &whole,
            &options(OutputFormat::Tiff),
            false,
            &Default::default(),
        )
        .unwrap();
    // Two JPEG decoders and a JPEG encode: close, not identical.
    let (a, b) = (read(&out), read(&whole));
    let diffs: Vec<i32> = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
        .collect();
    let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
    assert!(mean < 2.0, "mean abs diff {mean}");
}

#[test]
fn truncated_jpeg_is_refused_when_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let img = DynamicImage::ImageRgb8(test_image(1600, 1200, 4, false).to_rgb8());
    let bytes = encode(&img, ImageFormat::Jpeg);
    let input = dir.path().join("cut.jpg");
    std::fs::write(&input, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = dir.path().join("out.png");
    let err = engine(16 << 20, 128)
        .render_file(
            &input,
            &Chain::default(),
            &out,
            &options(OutputFormat::Png),
            false,
            &Default::default(),
        )
        .unwrap_err();
    assert_eq!(err.category(), Category::Corrupt, "{err}");
    assert_eq!(common::files_in(dir.path()), vec!["cut.jpg"]);
}

#[test]
fn rows_out_of_order_fall_back_to_a_whole_decode() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        encode(&test_image(70, 50, 5, true), ImageFormat::Png),
    )
    .unwrap();
    for (id, key, value) in [
        ("rotate", "angle", RawValue::Int(90)),
        ("flip", "direction", RawValue::String("vertical".into())),
        ("edge_detect", "mode", RawValue::String("canny".into())),
    ] {
        let def = ops::find(id).unwrap();
        let mut op = ChainOp::new(def);
        op.params.set(def.params, key, &value).unwrap();
        let chain = Chain {
            name: None,
            vectorize: None,
            ops: vec![op],
        };
        let eng = engine(1 << 30, 16);
        let png = dir.path().join(format!("{id}.png"));
        let tif = dir.path().join(format!("{id}.tif"));
        let report = eng
            .render_file(
                &input,
                &chain,
                &png,
                &options(OutputFormat::Png),
                false,
                &Default::default(),
            )
            .unwrap();
        // A quarter turn needs every source row for every band (the window is the whole
        // image, still correct); a vertical flip reads bottom-up and Canny is global.
        if id != "rotate" {
            assert!(!report.streamed_input, "{id} cannot read rows in order");
        }
        eng.render_file(
            &input,
            &chain,
            &tif,
            &options(OutputFormat::Tiff),
            false,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(read(&png), read(&tif), "{id}");
    }
}

#[test]
fn cancelling_leaves_no_output() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    std::fs::write(
        &input,
        encode(&test_image(300, 300, 6, false), ImageFormat::Png),
    )
    .unwrap();
    let cancel = AtomicBool::new(true);
    let control = opossum::engine::render::RenderControl {
        cancel: Some(&cancel),
        progress: None,
    };
    for (name, format) in [
        ("out.png", OutputFormat::Png),
        ("out.webp", OutputFormat::Webp),
    ] {
        let err = engine(1 << 30, 64)
            .render_file(
                &input,
                &Chain::default(),
                &dir.path().join(name),
                &options(format),
                false,
                &control,
            )
            .unwrap_err();
        assert_eq!(err.category(), Category::Cancelled);
    }
    assert_eq!(common::files_in(dir.path()), vec!["in.png"]);
}

/// Write a large RGB image as PNG quickly (fast deflate): the big-input tests' sources.
fn write_fast_png(path: &Path, img: &image::RgbImage) {
    let file = std::fs::File::create(path).unwrap();
    image::codecs::png::PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    )
    .write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
}

/// Peak resident memory of a child process, polled from /proc while it runs.
#[cfg(target_os = "linux")]
fn run_and_measure_peak_kib(cmd: &mut std::process::Command) -> (std::process::ExitStatus, u64) {
    let mut child = cmd.spawn().unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn peak_memory_stays_within_the_budget_on_a_large_png() {
    // 6000×4000 RGB: 72 MB decoded, 96 MB as an RGBA output buffer. With a 48 MiB budget a
    // whole-image render is refused, so finishing proves the streamed path ran, and the child's
    // peak RSS must stay under budget + baseline.
    let dir = tempfile::tempdir().unwrap();
    write_fast_png(
        &dir.path().join("large.png"),
        &image::RgbImage::from_fn(6000, 4000, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 256) as u8])
        }),
    );
    std::fs::write(
        dir.path().join("chain.toml"),
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 3\n[[ops]]\nop = \"adjust_colors\"\nbrightness = 1.1\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(common::bin());
    cmd.current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .args([
            "render",
            "large.png",
            "-c",
            "chain.toml",
            "-o",
            "out.png",
            "--max-memory",
            "48MiB",
            "--tile-size",
            "256",
        ]);
    let (status, peak_kib) = run_and_measure_peak_kib(&mut cmd);
    assert!(status.success());
    let back = image::image_dimensions(dir.path().join("out.png")).unwrap();
    assert_eq!(back, (6000, 4000));
    eprintln!("peak RSS {peak_kib} KiB for a 6000x4000 render with a 48 MiB budget");
    assert!(peak_kib < (48 + 100) * 1024, "peak RSS {peak_kib} KiB");
}

#[cfg(target_os = "linux")]
#[test]
fn an_icc_profile_that_inflates_to_hundreds_of_megabytes_is_ignored_in_bounded_memory() {
    // A 64×64 PNG whose iCCP chunk inflates to 256 MiB (zeros: about 256 KB in the file).
    let dir = tempfile::tempdir().unwrap();
    let mut info = png::Info::with_size(64, 64);
    info.color_type = png::ColorType::Rgb;
    info.bit_depth = png::BitDepth::Eight;
    info.icc_profile = Some(std::borrow::Cow::Owned(vec![0u8; 256 << 20]));
    let mut bytes = Vec::new();
    let mut writer = png::Encoder::with_info(&mut bytes, info)
        .unwrap()
        .write_header()
        .unwrap();
    writer.write_image_data(&[90u8; 64 * 64 * 3]).unwrap();
    writer.finish().unwrap();
    assert!(bytes.len() < 4 << 20, "{} bytes", bytes.len());
    std::fs::write(dir.path().join("bomb.png"), &bytes).unwrap();
    drop(bytes);
    for args in [
        &["render", "bomb.png", "-c", "chain.toml", "-o", "out.png"][..],
        &["vectorize", "bomb.png", "-o", "out.svg"][..],
    ] {
        std::fs::write(
            dir.path().join("chain.toml"),
            "version = 1\n[[ops]]\nop = \"adjust_colors\"\nbrightness = 1.1\n",
        )
        .unwrap();
        let mut cmd = std::process::Command::new(common::bin());
        cmd.current_dir(dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .args(args)
            .args(["--max-memory", "64MiB"]);
        let (status, peak_kib) = run_and_measure_peak_kib(&mut cmd);
        assert!(status.success(), "{args:?}");
        // The profile is over the 4 MiB ICC cap, so it is not kept either.
        eprintln!("{args:?}: peak RSS {peak_kib} KiB");
        assert!(peak_kib < 128 * 1024, "{args:?}: peak RSS {peak_kib} KiB");
    }
    let out = image::open(dir.path().join("out.png")).unwrap();
    assert_eq!((out.width(), out.height()), (64, 64));
}

#[test]
fn a_strong_reduction_narrows_its_bands_to_fit_the_budget_and_errors_name_the_file() {
    // 6000×6000 RGB (108 MB decoded: streamed under a 96 MiB budget) resized to 100 px wide:
    // every output row reads 60 source rows, so 256-row bands would need a 1.4 GB tile.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wide.png");
    write_fast_png(
        &input,
        &image::RgbImage::from_fn(6000, 6000, |x, y| {
            image::Rgb([(x / 24) as u8, (y / 24) as u8, 128])
        }),
    );
    let chain = Chain {
        name: None,
        vectorize: None,
        ops: vec![opossum::bench::step(
            "resize",
            &[("width", RawValue::Int(100))],
        )],
    };
    let output = dir.path().join("small.png");
    let report = engine(96 << 20, 256)
        .render_file(
            &input,
            &chain,
            &output,
            &options(OutputFormat::Png),
            false,
            &Default::default(),
        )
        .unwrap();
    assert!(report.streamed_input);
    let small = read(&output);
    assert_eq!(small.dimensions(), (100, 100));
    // The gradient survives: left to right and top to bottom, 0 to 250.
    let (left, right) = (small.get_pixel(0, 50)[0], small.get_pixel(99, 50)[0]);
    let (top, bottom) = (small.get_pixel(50, 0)[1], small.get_pixel(50, 99)[1]);
    assert!(
        left < 5 && right > 245 && top < 5 && bottom > 245,
        "{left} {right} {top} {bottom}"
    );
    // One output pixel reads every source row: no band fits; the error names the file, and
    // nothing is left behind.
    std::fs::remove_file(&output).unwrap();
    let dot = Chain {
        name: None,
        vectorize: None,
        ops: vec![opossum::bench::step(
            "resize",
            &[("width", RawValue::Int(1)), ("height", RawValue::Int(1))],
        )],
    };
    let err = engine(16 << 20, 256)
        .render_file(
            &input,
            &dot,
            &output,
            &options(OutputFormat::Png),
            false,
            &Default::default(),
        )
        .unwrap_err();
    assert_eq!(err.category(), Category::Limits);
    assert!(err.to_string().contains("wide.png"), "{err}");
    assert_eq!(common::files_in(dir.path()), vec!["wide.png"]);
}
