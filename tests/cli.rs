//! The `opossum` binary end to end: exit codes (0 ok, 1 input failed, 2 usage/config), messages
//! that name the file, category and hint, no output or temp files left on failure, no panics.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{bin, encode, files_in, test_image};
use image::ImageFormat;

const CHAIN: &str = r##"version = 1
name = "web"

[[ops]]
op = "resize"
width = 40
height = 30

[[ops]]
op = "adjust_colors"
brightness = 1.1
contrast = 1.2

[[ops]]
op = "sharpen"
amount = 0.3

[[ops]]
op = "watermark"
text = "© Opossum"
font_size = 8

[[ops]]
op = "add_border"
size = 5
color = "#000000"
"##;

/// Run the binary in `dir` with an isolated config home.
fn run(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("HOME", dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        !stderr.contains("RUST_BACKTRACE"),
        "backtrace hint: {stderr}"
    );
    out
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.toml"), CHAIN).unwrap();
    std::fs::write(
        dir.path().join("in.jpg"),
        encode(
            &image::DynamicImage::ImageRgb8(test_image(120, 80, 1, false).to_rgb8()),
            ImageFormat::Jpeg,
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn version_and_ops() {
    let dir = setup();
    let out = run(dir.path(), &["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = run(dir.path(), &["ops"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for def in opossum::ops::registry() {
        assert!(text.contains(def.id), "{} missing", def.id);
    }
    assert!(
        text.contains("sigma") && text.contains("0..=500 px"),
        "{text}"
    );
    let out = run(dir.path(), &["ops", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json.as_array().unwrap().len(),
        opossum::ops::registry().len()
    );
}

#[test]
fn renders_end_to_end_in_every_format() {
    let dir = setup();
    for (name, extra) in [
        ("out/a.png", vec![]),
        ("out/a.jpg", vec!["--quality", "70"]),
        ("out/a.webp", vec!["--quality", "85"]),
        ("out/b.webp", vec!["--lossless"]),
        ("out/a.tif", vec![]),
        ("out/noext", vec!["--format", "png"]),
    ] {
        let mut args = vec!["render", "in.jpg", "--chain", "chain.toml", "-o", name];
        args.extend(extra);
        let out = run(dir.path(), &args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("wrote"));
        let img = image::ImageReader::open(dir.path().join(name))
            .unwrap()
            .with_guessed_format()
            .unwrap()
            .decode()
            .unwrap();
        // 120×80 fits 40×30 as 40×27, plus a 5 px border on each side.
        assert_eq!((img.width(), img.height()), (50, 37), "{name}");
    }
    assert!(
        files_in(&dir.path().join("out"))
            .iter()
            .all(|n| !n.starts_with('.'))
    );
}

#[test]
fn profile_prints_stages_and_saves_a_capture() {
    let dir = setup();
    let out = run(
        dir.path(),
        &[
            "render",
            "in.jpg",
            "-c",
            "chain.toml",
            "-o",
            "out/p.png",
            "--profile-out",
            "out/run.puffin",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for stage in [
        "decode_file",
        "op resize",
        "op sharpen",
        // Run as 8-bit tables before the 8-bit sharpen (engine::u8_lead).
        "op adjust_colors (8-bit tables)",
        "pointwise watermark",
        "encode",
        "tile",
    ] {
        assert!(text.contains(stage), "missing {stage} in\n{text}");
    }
    let capture = std::fs::metadata(dir.path().join("out/run.puffin")).unwrap();
    assert!(capture.len() > 100);
}

#[test]
fn bad_inputs_exit_1_with_file_category_and_hint() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("empty.png"), b"").unwrap();
    std::fs::write(d.join("notes.png"), b"just text").unwrap();
    let png = encode(&test_image(30, 30, 2, false), ImageFormat::Png);
    std::fs::write(d.join("cut.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(d.join("lying.png"), common::lying_png(100_000, 100_000)).unwrap();
    for (input, category) in [
        ("empty.png", "corrupt"),
        ("notes.png", "unsupported"),
        ("cut.png", "corrupt"),
        ("lying.png", "limits"),
        ("missing.png", "io"),
        ("out", "unsupported"),
    ] {
        let out = run(
            d,
            &["render", input, "-c", "chain.toml", "-o", "out/result.png"],
        );
        assert_eq!(out.status.code(), Some(1), "{input}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(input), "names the file: {err}");
        assert!(
            err.contains(&format!("category: {category}")),
            "{input}: {err}"
        );
        assert!(err.contains("hint: "), "{err}");
        assert!(
            files_in(&d.join("out")).is_empty(),
            "{input} left {:?}",
            files_in(&d.join("out"))
        );
    }
}

#[test]
fn outputs_that_are_not_regular_files_are_refused_and_kept() {
    let dir = setup();
    let d = dir.path();
    let mut targets = vec![("out", "a directory")];
    #[cfg(unix)]
    {
        let made = Command::new("mkfifo").arg(d.join("pipe")).status().unwrap();
        assert!(made.success());
        targets.push(("pipe", "a FIFO"));
    }
    for (target, kind) in targets {
        for args in [
            vec![
                "render",
                "in.jpg",
                "-c",
                "chain.toml",
                "--format",
                "png",
                "-o",
                target,
            ],
            vec!["vectorize", "in.jpg", "-o", target],
        ] {
            let out = run(d, &args);
            let err = stderr(&out);
            // A folder is refused before the work, as a command-line mistake; a FIFO when
            // the output would be written.
            let (code, says) = match kind {
                "a directory" => (2, "names a folder".to_owned()),
                kind => (1, format!("the output path is {kind}")),
            };
            assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
            assert!(
                err.contains(&says) && err.contains(target),
                "{args:?}: {err}"
            );
            let meta = std::fs::metadata(d.join(target)).unwrap();
            assert!(!meta.is_file(), "{target} was replaced by a file");
        }
    }
    assert!(
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".opossum-tmp")),
        "a temporary file was left"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_stops_a_render_quickly_and_leaves_no_temp_file() {
    let dir = setup();
    let d = dir.path();
    // 5000×4000 and three wide blurs: seconds of work, written band by band.
    let big = image::RgbImage::from_fn(5000, 4000, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
    });
    big.save(d.join("big.png")).unwrap();
    std::fs::write(
        d.join("slow.toml"),
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 40\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 40\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 40\n",
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["render", "big.png", "-c", "slow.toml", "-o", "out/big.png"])
        .current_dir(d)
        .env("XDG_CONFIG_HOME", d.join("xdg-config"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once the output is being written (its temp file exists).
    let waiting = std::time::Instant::now();
    while files_in(&d.join("out")).is_empty() {
        assert!(waiting.elapsed().as_secs() < 60, "no temp file appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let sent = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed().as_secs_f64() < 2.0,
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        files_in(&d.join("out")).is_empty(),
        "{:?}",
        files_in(&d.join("out"))
    );
}

#[test]
fn usage_and_config_errors_exit_2() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("bad.toml"),
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = -1\n",
    )
    .unwrap();
    let out = run(
        d,
        &["render", "in.jpg", "-c", "bad.toml", "-o", "out/x.png"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ops[0] (gaussian_blur).sigma"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("bad.toml"));

    let out = run(
        d,
        &["render", "in.jpg", "-c", "chain.toml", "-o", "out/x.bmpx"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A command-line mistake says so, and where to look (not "fix the config file").
    assert!(
        stderr(&out).contains("category: usage") && stderr(&out).contains("--help"),
        "{}",
        stderr(&out)
    );
    for args in [
        &[
            "render",
            "in.jpg",
            "-c",
            "chain.toml",
            "-o",
            "out/x.png",
            "--quality",
            "0",
        ][..],
        &["render", "in.jpg", "-c", "missing.toml", "-o", "out/x.png"][..],
        &["bench", "ops", "--sizes", "0"][..],
        &["bench", "ops", "--runs", "0"][..],
        &[
            "watch",
            "-c",
            "chain.toml",
            "-i",
            ".",
            "-o",
            "out",
            "--poll-ms",
            "0",
        ][..],
    ] {
        let out = run(d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    // A mistyped command is not opened as an image.
    let out = run(d, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a command"), "{}", stderr(&out));

    std::fs::write(d.join("cfg.toml"), "[performance]\ntile_size = 3\n").unwrap();
    let out = run(
        d,
        &[
            "--config",
            "cfg.toml",
            "render",
            "in.jpg",
            "-c",
            "chain.toml",
            "-o",
            "out/x.png",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("performance.tile_size") && stderr(&out).contains("cfg.toml"));
    let out = run(
        d,
        &[
            "render",
            "in.jpg",
            "-c",
            "chain.toml",
            "-o",
            "out/x.png",
            "--max-memory",
            "lots",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(files_in(&d.join("out")).is_empty());
}

/// Output options that contradict each other or the output's name, and files that could
/// not be written at the end, are refused before any work: exit 2, nothing written.
#[test]
fn contradicting_output_options_are_refused_before_any_work() {
    let dir = setup();
    let d = dir.path();
    let gif = image::RgbaImage::from_pixel(6, 5, image::Rgba([10, 20, 30, 255]));
    gif.save(d.join("anim.gif")).unwrap();
    let render = |extra: &[&str]| {
        let mut args = vec!["render", "in.jpg", "-c", "chain.toml"];
        args.extend_from_slice(extra);
        run(d, &args)
    };
    let batch = |extra: &[&str]| {
        let mut args = vec!["batch", "-c", "chain.toml", "-i", "in.jpg", "-o", "out/b"];
        args.extend_from_slice(extra);
        run(d, &args)
    };
    for (out, expect) in [
        (
            render(&["--format", "jpeg", "-o", "out/b.png"]),
            "rename it to .jpg",
        ),
        (render(&["-o", "-"]), "not standard output"),
        (
            render(&["-o", "out/x.jpg", "--lossless"]),
            "cannot be written lossless",
        ),
        (
            render(&["-o", "out/x.png", "--profile-out", "nodir/x.puffin"]),
            "does not exist",
        ),
        (render(&["-o", "in.jpg"]), "would overwrite the input"),
        (
            run(d, &["vectorize", "in.jpg", "-o", "out/e.png"]),
            "vectorize writes SVG",
        ),
        (
            batch(&["--format", "jpeg", "--name-template", "{stem}.png"]),
            "names PNG files",
        ),
        (
            batch(&["--name-template", "{stem}.png"]),
            "each input's own",
        ),
        (batch(&["--report", "nodir/r.json"]), "does not exist"),
        (batch(&["--report", "out"]), "names a folder"),
        (batch(&["--report", "out/b"]), "names a folder"),
        (batch(&["--report", "in.jpg"]), "would replace"),
        (batch(&["--report", "chain.toml"]), "would replace"),
        (
            batch(&["--format", "png", "--name-template", "{stem}.{srcext}"]),
            "ends in the input's extension",
        ),
        (
            run(
                d,
                &[
                    "batch",
                    "-c",
                    "chain.toml",
                    "-i",
                    "anim.gif",
                    "-o",
                    "out/b",
                    "--name-template",
                    "{name}",
                ],
            ),
            "written as PNG",
        ),
        (
            render(&["-o", "out/p.png", "--profile-out", "in.jpg"]),
            "would replace",
        ),
        (
            render(&["-o", "out/p.png", "--profile-out", "out/p.png"]),
            "would replace",
        ),
        (
            render(&["-o", "out/p.png", "--profile-out", "chain.toml"]),
            "would replace",
        ),
        (render(&["-o", "nodir/x.png"]), "does not exist"),
        (render(&["-o", "out"]), "names a folder"),
        (render(&["-o", "out/x.gif"]), "does not write .gif"),
        (
            run(d, &["vectorize", "in.jpg", "-o", "out/e.svgz"]),
            "not compressed .svgz",
        ),
    ] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expect), "{expect:?} not in {err}");
        assert!(err.contains("category: usage"), "{err}");
        assert!(files_in(&d.join("out")).is_empty(), "{err}");
    }
    // Options the format ignores are noted, and the render goes ahead.
    let out = render(&["-o", "out/q.png", "--quality", "90", "--lossless"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("note: --quality 90 is ignored") && err.contains("always lossless"),
        "{err}"
    );
    // A report inside the output folder the batch creates.
    let out = batch(&["--report", "out/b/r.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.join("out/b/r.json").is_file());
    // A name without extension gets the format asked for.
    let out = run(
        d,
        &[
            "batch",
            "-c",
            "chain.toml",
            "-i",
            "in.jpg",
            "-o",
            "out/c",
            "--format",
            "webp",
            "--name-template",
            "{stem}",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        image::guess_format(&std::fs::read(d.join("out/c/in")).unwrap()).unwrap(),
        ImageFormat::WebP
    );
    // No or an unknown extension: --format decides.
    let out = render(&["-o", "out/plain", "--format", "webp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        image::guess_format(&std::fs::read(d.join("out/plain")).unwrap()).unwrap(),
        ImageFormat::WebP
    );
}

/// Errors read as one line in our words: no Rust debug output, no line breaks inside the
/// message, the config key or chain location at fault, and format limits before any work.
#[test]
fn error_messages_are_one_line_in_our_words() {
    let dir = setup();
    let d = dir.path();
    let png = encode(&test_image(30, 20, 3, false), ImageFormat::Png);
    let mut flipped = png.clone();
    let idat = flipped.windows(4).position(|w| w == b"IDAT").unwrap();
    flipped[idat + 1] ^= 0x20;
    std::fs::write(d.join("flipped.png"), flipped).unwrap();
    let mut garbage = b"\xff\xd8\xff\xe0".to_vec();
    garbage.extend_from_slice(&[7u8; 40]);
    std::fs::write(d.join("garbage.jpg"), garbage).unwrap();
    std::fs::write(
        d.join("wide.toml"),
        "version = 1\n[[ops]]\nop = \"resize\"\nwidth = 65520\nheight = 2\nmode = \"exact\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("crop.toml"),
        "version = 1\n[[ops]]\nop = \"crop\"\nx = 5000\n",
    )
    .unwrap();
    std::fs::write(
        d.join("cfg.toml"),
        "[performance]\nmax_cpu_cores = \"lots\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("vec.toml"),
        "version = 1\n[vectorize]\ncolours = 3\n",
    )
    .unwrap();
    for (args, code, expect) in [
        (
            &[
                "render",
                "flipped.png",
                "-c",
                "chain.toml",
                "-o",
                "out/x.png",
            ][..],
            1,
            "PNG: Unrecognized critical chunk: chunk \"IdAT\": flipped.png",
        ),
        (
            &[
                "render",
                "garbage.jpg",
                "-c",
                "chain.toml",
                "-o",
                "out/x.png",
            ][..],
            1,
            "the file ends early (truncated): garbage.jpg",
        ),
        (
            &["render", "in.jpg", "-c", "wide.toml", "-o", "out/x.jpg"][..],
            1,
            "JPEG cannot hold 65520x2 px (at most 65500 px a side)",
        ),
        (
            &["render", "in.jpg", "-c", "crop.toml", "-o", "out/x.png"][..],
            2,
            "ops[0] (crop).x: left edge 5000 is outside the 120 px wide image (input in.jpg): crop.toml",
        ),
        (
            &[
                "--config",
                "cfg.toml",
                "render",
                "in.jpg",
                "-c",
                "chain.toml",
                "-o",
                "out/x.png",
            ][..],
            2,
            "performance.max_cpu_cores: line 2: invalid type",
        ),
        (
            &["render", "in.jpg", "-c", "vec.toml", "-o", "out/x.svg"][..],
            2,
            "vectorize.colours: unknown key; allowed: preset, mode, colors",
        ),
        (
            &["vectorize", "in.jpg", "-o", "out/x.svg", "--colors", "1"][..],
            2,
            "--colors: 1 is outside 2..=256",
        ),
    ] {
        let out = run(d, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(expect), "{expect:?} not in {err}");
        assert!(
            err.lines().nth(1).unwrap().starts_with("  category: "),
            "{err}"
        );
        assert!(
            !err.contains("ChunkType") && !err.contains("Unknown("),
            "{err}"
        );
        assert!(files_in(&d.join("out")).is_empty(), "{err}");
    }
}

/// Without a display the app says so, in our words (no library source paths), exit 2.
#[cfg(feature = "gui")]
#[test]
fn the_app_without_a_display_says_so() {
    let dir = setup();
    let out = Command::new(bin())
        .arg("in.jpg")
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot open the window") && err.contains("category: app"),
        "{err}"
    );
    assert!(!err.contains(".rs:") && !err.contains("registry"), "{err}");
}

#[test]
fn memory_limit_and_tiny_tiles_from_the_command_line() {
    let dir = setup();
    let out = run(
        dir.path(),
        &[
            "render",
            "in.jpg",
            "-c",
            "chain.toml",
            "-o",
            "out/t.png",
            "--tile-size",
            "16",
            "--threads",
            "1",
            "--max-memory",
            "64MiB",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let reference = run(
        dir.path(),
        &["render", "in.jpg", "-c", "chain.toml", "-o", "out/r.png"],
    );
    assert!(reference.status.success());
    let a = image::open(dir.path().join("out/t.png"))
        .unwrap()
        .to_rgba8();
    let b = image::open(dir.path().join("out/r.png"))
        .unwrap()
        .to_rgba8();
    assert_eq!(a, b, "tile size and threads do not change the result");
}

#[test]
fn bundled_presets_render_the_bundled_samples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let presets = std::fs::read_dir(root.join("assets/presets")).unwrap();
    let mut count = 0;
    for preset in presets {
        let preset = preset.unwrap().path();
        for sample in ["coffee.png", "rocket.jpg"] {
            let out_name = format!(
                "{}_{}.png",
                preset.file_stem().unwrap().to_string_lossy(),
                sample
            );
            let out = run(
                dir.path(),
                &[
                    "render",
                    root.join("assets/samples").join(sample).to_str().unwrap(),
                    "-c",
                    preset.to_str().unwrap(),
                    "-o",
                    &out_name,
                ],
            );
            assert!(
                out.status.success(),
                "{}: {}",
                preset.display(),
                stderr(&out)
            );
            count += 1;
        }
    }
    assert!(count >= 8);
}

#[cfg(unix)]
#[test]
fn hostile_file_names_work() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = setup();
    let d = dir.path();
    let weird = std::ffi::OsStr::from_bytes(b"-caf\xe9\nline.jpg");
    std::fs::copy(d.join("in.jpg"), d.join(weird)).unwrap();
    let long = format!("{}.png", "x".repeat(240));
    let out = Command::new(bin())
        .current_dir(d)
        .env("XDG_CONFIG_HOME", d.join("xdg-config"))
        .arg("render")
        .arg("-c")
        .arg("chain.toml")
        .arg("-o")
        .arg(&long)
        .arg("--")
        .arg(weird)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.join(&long).exists());
    // A failing hostile name is reported, not mangled into a crash.
    let missing = std::ffi::OsStr::from_bytes(b"-missing\xff.png");
    let out = Command::new(bin())
        .current_dir(d)
        .args(["render", "-c", "chain.toml", "-o", "out/x.png", "--"])
        .arg(missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("-missing"), "{}", stderr(&out));
}

#[test]
fn bench_preview_reports_both_paths() {
    let dir = setup();
    let json = dir.path().join("preview.json");
    let out = run(
        dir.path(),
        &[
            "bench",
            "preview",
            "--source",
            "640x480",
            "--viewport",
            "320x240",
            "--runs",
            "3",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("pyramid level 1 (320x240 px)"), "{stdout}");
    assert!(stdout.contains("cpu   p50"), "{stdout}");
    if cfg!(feature = "gpu") {
        assert!(stdout.contains("gpu   p50"), "{stdout}");
        assert!(stdout.contains("adjust_colors · GPU"), "{stdout}");
        assert!(stdout.contains("resize · cached"), "{stdout}");
    } else {
        assert!(stdout.contains("gpu   not measured"), "{stdout}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let paths = report.as_array().unwrap();
    assert_eq!(paths[0]["runs_ms"].as_array().unwrap().len(), 3);
    assert!(paths[0]["p95_ms"].as_f64().unwrap() >= paths[0]["p50_ms"].as_f64().unwrap());

    let bad = run(dir.path(), &["bench", "preview", "--viewport", "wide"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected WIDTHxHEIGHT"));
}

/// `opossum render INPUT -c CHAIN -o OUT --quality-preset PRESET` in `dir`: stdout and the
/// output's pixels.
fn render_at(
    dir: &Path,
    input: &str,
    chain: &str,
    out: &str,
    preset: &str,
) -> (String, image::RgbImage) {
    let o = run(
        dir,
        &[
            "render",
            input,
            "-c",
            chain,
            "-o",
            out,
            "--quality-preset",
            preset,
        ],
    );
    assert!(o.status.success(), "{preset}: {}", stderr(&o));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        image::open(dir.join(out)).unwrap().to_rgb8(),
    )
}

/// PSNR of two 8-bit RGB images, dB.
fn psnr_db(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

#[test]
fn quality_presets_change_the_algorithms_within_their_tolerance() {
    let dir = setup();
    std::fs::write(
        dir.path().join("blur.toml"),
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 6.0\n",
    )
    .unwrap();
    let (_, ultra) = render_at(dir.path(), "in.jpg", "blur.toml", "out/ultra.png", "ultra");
    let (_, draft) = render_at(dir.path(), "in.jpg", "blur.toml", "out/draft.png", "draft");
    // The draft preset blurs with two box passes: different pixels, close to the Gaussian.
    assert_ne!(ultra, draft);
    let psnr = psnr_db(&ultra, &draft);
    assert!(psnr > 30.0, "draft vs ultra: {psnr:.1} dB");
    // The config key does the same as the flag.
    let config = dir.path().join("draft.toml");
    std::fs::write(&config, "[performance]\nquality = \"draft\"\n").unwrap();
    let blur_to = |out: &'static str, extra: &[&str]| {
        let args = [
            &["render", "in.jpg", "-c", "blur.toml", "-o", out][..],
            extra,
        ]
        .concat();
        run(dir.path(), &args)
    };
    let o = blur_to("out/config.png", &["--config", config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let from_config = image::open(dir.path().join("out/config.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(from_config, draft);
    // An unknown preset is a usage error naming the choices.
    let o = blur_to("out/x.png", &["--quality-preset", "best"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("balanced"), "{}", stderr(&o));
    assert!(!dir.path().join("out/x.png").exists());
}

#[test]
fn bench_quality_measures_every_preset() {
    let dir = setup();
    // With alpha, so that `draft` runs its box blurs (opaque 8-bit images blur exactly below
    // sigma 8 at every preset) and differs from `ultra` at this size (no resize).
    std::fs::write(
        dir.path().join("in.png"),
        encode(&test_image(120, 80, 1, true), ImageFormat::Png),
    )
    .unwrap();
    let o = run(
        dir.path(),
        &[
            "bench", "quality", "in.png", "--runs", "1", "--format", "png", "--json", "q.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for preset in ["ultra", "high", "balanced", "fast", "draft"] {
        assert!(text.contains(preset), "{text}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("q.json")).unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["min_psnr_db"].as_f64(), Some(100.0));
    assert!(rows[4]["min_psnr_db"].as_f64().unwrap() < 100.0);
}

#[test]
fn jpeg_shrink_on_load_keeps_the_output_and_stays_close_to_a_full_decode() {
    let dir = setup();
    std::fs::write(
        dir.path().join("big.jpg"),
        encode(
            &image::DynamicImage::ImageRgb8(test_image(2400, 1600, 7, false).to_rgb8()),
            ImageFormat::Jpeg,
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("thumb.toml"),
        "version = 1\n[[ops]]\nop = \"resize\"\nwidth = 600\nheight = 600\n[[ops]]\nop = \"sharpen\"\n",
    )
    .unwrap();
    let (full_log, full) = render_at(dir.path(), "big.jpg", "thumb.toml", "out/full.png", "ultra");
    assert!(!full_log.contains("decoded at"), "{full_log}");
    assert_eq!(full.dimensions(), (600, 400));
    for (preset, out, eighths, floor_db) in [
        ("balanced", "out/balanced.png", "4/8", 30.0),
        ("draft", "out/draft.webp", "2/8", 24.0),
    ] {
        let (log, reduced) = render_at(dir.path(), "big.jpg", "thumb.toml", out, preset);
        assert!(
            log.contains(&format!("JPEG decoded at {eighths} size")),
            "{log}"
        );
        assert_eq!(reduced.dimensions(), full.dimensions(), "{preset}");
        let psnr = psnr_db(&full, &reduced);
        assert!(
            psnr > floor_db,
            "{preset}: {psnr:.1} dB against a full decode"
        );
    }
}

#[test]
fn tune_quick_saves_its_choices_in_the_config_file() {
    let dir = setup();
    let config = dir.path().join("opossum.toml");
    std::fs::write(&config, "[performance]\nquality = \"fast\"\n").unwrap();
    let path = config.to_str().unwrap();
    let o = run(dir.path(), &["tune", "--quick", "--config", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("saved to"));
    let text = std::fs::read_to_string(&config).unwrap();
    let parsed = opossum::config::Config::parse(&text).unwrap();
    // The user's own settings stay; the choices and the figures are added.
    assert_eq!(
        parsed.performance.quality,
        opossum::quality::QualityPreset::Fast
    );
    let tuning = parsed.tuning.expect("a [tuning] table");
    assert_eq!(parsed.performance.min_tile_size, tuning.min_tile_size);
    assert_eq!(parsed.performance.parallel_images, tuning.parallel_images);
    // --dry-run measures and prints, and leaves the file as it was.
    let o = run(
        dir.path(),
        &["tune", "--quick", "--dry-run", "--config", path],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
}

#[test]
fn cache_stats_and_clear_show_and_empty_only_the_cache_folder() {
    use opossum::cache::Key;
    use opossum::cache::disk::{DiskCache, Kind};
    let dir = setup();
    let d = dir.path();
    let root = d.join("xdg-cache");
    let cache_dir = root.join("opossum/previews-v1");
    {
        let cache =
            DiskCache::open(&cache_dir, 1 << 30, std::time::Duration::from_secs(60)).unwrap();
        cache.put(Kind::Thumbnail, Key(1), &[1; 1000]).unwrap();
        cache.put(Kind::Result, Key(2), &[2; 3000]).unwrap();
        assert!(cache.get(Kind::Result, Key(2)).is_some());
        assert!(cache.get(Kind::Result, Key(3)).is_none());
    }
    std::fs::write(cache_dir.join("mine.txt"), b"not an entry").unwrap();
    let cache_run = |args: &[&str]| {
        let out = Command::new(bin())
            .args(args)
            .env("XDG_CONFIG_HOME", d.join("xdg-config"))
            .env("XDG_CACHE_HOME", &root)
            .env("HOME", d)
            .env_remove("OPOSSUM_CACHE_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = cache_run(&["cache", "stats"]);
    assert!(text.contains(&cache_dir.display().to_string()), "{text}");
    assert!(text.contains("entries        2 (1 pyramids"), "{text}");
    assert!(text.contains("1 hits, 1 misses: 50.0 % hit rate"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&cache_run(&["cache", "stats", "--json"])).unwrap();
    assert_eq!(json["entries"], 2);
    assert_eq!(json["lookups"]["hits"], 1);
    let text = cache_run(&["cache", "clear"]);
    assert!(text.contains("removed 2 cache entries"), "{text}");
    assert!(
        cache_dir.join("mine.txt").exists(),
        "only entries are removed"
    );
    let text = cache_run(&["cache", "stats"]);
    assert!(text.contains("entries        0"), "{text}");
    assert!(text.contains("lookups        none yet"), "{text}");
    // A cache folder that names a file is an error, not an empty cache.
    let out = Command::new(bin())
        .args(["cache", "stats"])
        .env("XDG_CONFIG_HOME", d.join("xdg-config"))
        .env("OPOSSUM_CACHE_DIR", d.join("in.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("lies under a file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_cache_measures_every_level() {
    let dir = setup();
    let d = dir.path();
    image::RgbImage::from_fn(900, 700, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .save(d.join("photo.png"))
    .unwrap();
    let out = run(
        d,
        &[
            "bench",
            "cache",
            "photo.png",
            "--runs",
            "1",
            "--json",
            "cache.json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("intermediate (memory)"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("cache.json")).unwrap()).unwrap();
    let levels = json["latencies"].as_array().unwrap();
    assert_eq!(levels.len(), 5);
    for level in levels {
        assert!(level["miss_ms"].as_f64().unwrap() > 0.0, "{level}");
        assert!(level["hit_ms"].as_f64().unwrap() >= 0.0, "{level}");
    }
    let session = json["session"].as_array().unwrap();
    assert!(
        session
            .iter()
            .any(|l| l["name"] == "intermediate" && l["hits"].as_u64().unwrap() > 0)
    );
    // A one-op chain cannot show the intermediate level: a clear usage error.
    std::fs::write(
        d.join("one.toml"),
        "version = 1\n[[ops]]\nop = \"sharpen\"\n",
    )
    .unwrap();
    let out = run(d, &["bench", "cache", "photo.png", "--chain", "one.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least two enabled ops"));
}
