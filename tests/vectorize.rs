//! Vectorization end to end: known shapes traced and rendered back within stated bounds, no
//! gaps at any scale, transparency kept, valid and deterministic SVG, and the CLI's errors.

use std::process::Command;
use std::sync::atomic::AtomicBool;

use opossum::vectorize::{self, Preset, VectorizeOptions, metrics};

/// Renders one of our own tiny SVG drawings to straight-alpha RGBA.
fn raster(svg: &str, w: u32, h: u32) -> Vec<[u8; 4]> {
    metrics::render(svg, w, h)
        .unwrap()
        .pixels()
        .iter()
        .map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect()
}

fn svg(w: u32, h: u32, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">{body}</svg>"
    )
}

fn trace(pixels: &[[u8; 4]], w: u32, h: u32, preset: Preset) -> vectorize::Vectorized {
    vectorize::vectorize(
        pixels,
        w,
        h,
        &VectorizeOptions::preset(preset),
        true,
        &AtomicBool::new(false),
    )
    .unwrap()
}

#[test]
fn known_shapes_come_back_within_their_bounds() {
    // (name, drawing, least PSNR in dB): bounds with a margin under what the tracer gives.
    let shapes = [
        (
            "disc",
            r##"<rect width="64" height="64" fill="#fff"/><circle cx="32" cy="32" r="20" fill="#c03020"/>"##,
            30.0,
        ),
        (
            "square with a hole",
            r##"<rect width="64" height="64" fill="#fff"/><path fill-rule="evenodd" d="M8 8h48v48H8zM24 24v16h16V24z" fill="#2040a0"/>"##,
            40.0,
        ),
        (
            "two touching regions",
            r##"<rect width="64" height="64" fill="#fff"/><rect x="8" y="8" width="24" height="48" fill="#e0a000"/><rect x="32" y="8" width="24" height="48" fill="#008060"/>"##,
            40.0,
        ),
        (
            "checkerboard",
            &(0..8)
                .flat_map(|y| (0..8).map(move |x| (x, y)))
                .map(|(x, y)| {
                    let fill = if (x + y) % 2 == 0 { "#000" } else { "#fff" };
                    format!(
                        r#"<rect x="{}" y="{}" width="8" height="8" fill="{fill}"/>"#,
                        x * 8,
                        y * 8
                    )
                })
                .collect::<String>(),
            40.0,
        ),
        (
            "thin line",
            r##"<rect width="64" height="64" fill="#fff"/><rect x="4" y="30" width="56" height="2" fill="#000"/>"##,
            35.0,
        ),
    ];
    for (name, body, least_db) in shapes {
        let pixels = raster(&svg(64, 64, body), 64, 64);
        let out = trace(&pixels, 64, 64, Preset::Logo);
        let f = out.stats.fidelity.unwrap();
        eprintln!(
            "{name}: PSNR {:.2} dB, SSIM {:.4}, {} paths, {} nodes, {} B",
            f.psnr_db, f.ssim, out.stats.paths, out.stats.nodes, out.stats.svg_bytes
        );
        assert!(
            f.psnr_db >= least_db,
            "{name}: PSNR {} < {least_db}",
            f.psnr_db
        );
        assert_eq!(f.uncovered_fraction, 0.0, "{name}: uncovered pixels");
        resvg::usvg::Tree::from_str(&out.svg, &Default::default())
            .unwrap_or_else(|e| panic!("{name}: the SVG does not parse: {e}"));
    }
}

#[test]
fn a_one_pixel_image_and_a_fully_transparent_one() {
    let out = trace(&[[10, 200, 30, 255]], 1, 1, Preset::Logo);
    let back = raster(&out.svg, 1, 1);
    assert_eq!(back[0], [10, 200, 30, 255], "{}", out.svg);

    let out = trace(&vec![[0, 0, 0, 0]; 100], 10, 10, Preset::Logo);
    assert_eq!(out.stats.paths, 0, "{}", out.svg);
    assert!(raster(&out.svg, 10, 10).iter().all(|p| p[3] == 0));
    let out = trace(&vec![[0, 0, 0, 0]; 100], 10, 10, Preset::Lineart);
    assert_eq!(out.stats.paths, 0);
}

#[test]
fn colour_presets_keep_the_colours_of_a_smooth_gradient() {
    // 400 × 300 px, blue to red across and green down: no 15-bit colour bin holds many
    // pixels (the photo preset once traced this as one grey rectangle, 11 dB).
    let (w, h) = (400u32, 300u32);
    let pixels: Vec<[u8; 4]> = (0..h)
        .flat_map(|y| {
            (0..w).map(move |x| {
                let (r, g) = ((x * 255 / (w - 1)) as u8, (y * 255 / (h - 1)) as u8);
                [r, g, 255 - r, 255]
            })
        })
        .collect();
    for preset in [Preset::Logo, Preset::Poster, Preset::Photo] {
        let out = trace(&pixels, w, h, preset);
        let fidelity = out.stats.fidelity.unwrap();
        assert!(out.stats.colors >= 8, "{preset:?}: {:?}", out.stats);
        assert!(fidelity.psnr_db > 20.0, "{preset:?}: {:?}", out.stats);
    }
}

/// A drawing with transparency around and inside: shapes touching each other, a ring with a
/// transparent hole holding an island. Nothing sits under the shared edges.
fn transparent_drawing() -> (Vec<[u8; 4]>, u32, u32) {
    let body = r##"<rect x="5" y="6" width="30" height="40" fill="#d03030"/>
<rect x="35" y="6" width="25.5" height="40" fill="#3050d0"/>
<path d="M20 20 C40 10 50 30 45 40 L20 40 Z" fill="#30a050"/>
<circle cx="80" cy="60" r="25" fill="#e0c020"/>
<circle cx="80" cy="60" r="12" fill="#fff" fill-opacity="0" />
<circle cx="80" cy="60" r="6" fill="#202020"/>"##;
    // The hole is punched with an even-odd path rather than a transparent fill.
    let body = body.replace(
        r##"<circle cx="80" cy="60" r="25" fill="#e0c020"/>
<circle cx="80" cy="60" r="12" fill="#fff" fill-opacity="0" />"##,
        r##"<path fill-rule="evenodd" fill="#e0c020" d="M55 60a25 25 0 1 0 50 0a25 25 0 1 0-50 0zM68 60a12 12 0 1 0 24 0a12 12 0 1 0-24 0z"/>"##,
    );
    (raster(&svg(110, 90, &body), 110, 90), 110, 90)
}

#[test]
fn no_pixel_inside_the_shapes_is_left_uncovered_at_any_scale() {
    let (pixels, w, h) = transparent_drawing();
    let out = trace(&pixels, w, h, Preset::Logo);
    for scale in [1.0, 1.7, 3.0, 4.5] {
        let (sw, sh) = (
            (f64::from(w) * scale).round() as u32,
            (f64::from(h) * scale).round() as u32,
        );
        let back = raster(&out.svg, sw, sh);
        let mut checked = 0;
        for y in 0..sh {
            for x in 0..sw {
                // Source pixel under this one, and whether all its neighbours are opaque too
                // (inside the union, away from its outer edge).
                let (sx, sy) = ((f64::from(x) + 0.5) / scale, (f64::from(y) + 0.5) / scale);
                let (sx, sy) = (sx as i64, sy as i64);
                let inside = (-2..=2).all(|dy| {
                    (-2..=2).all(|dx| {
                        let (nx, ny) = (sx + dx, sy + dy);
                        nx >= 0
                            && ny >= 0
                            && nx < i64::from(w)
                            && ny < i64::from(h)
                            && pixels[(ny * i64::from(w) + nx) as usize][3] == 255
                    })
                });
                if inside {
                    checked += 1;
                    let a = back[(y * sw + x) as usize][3];
                    assert!(a >= 250, "scale {scale}: pixel {x},{y} has alpha {a}");
                }
            }
        }
        assert!(
            checked > 1000,
            "scale {scale}: only {checked} pixels checked"
        );
    }
}

#[test]
fn transparency_stays_transparent() {
    let (pixels, w, h) = transparent_drawing();
    let out = trace(&pixels, w, h, Preset::Logo);
    let back = raster(&out.svg, w, h);
    // Outside everything, and inside the ring's hole (between the island and the ring).
    for (x, y) in [(2, 2), (100, 5), (80, 51), (71, 60)] {
        assert_eq!(pixels[(y * w + x) as usize][3], 0);
        assert!(
            back[(y * w + x) as usize][3] < 5,
            "pixel {x},{y} drawn in {}",
            out.svg
        );
    }
    // The island in the hole is drawn.
    assert!(back[(60 * w + 80) as usize][3] > 250);
    let f = out.stats.fidelity.unwrap();
    assert!(f.psnr_db > 28.0, "PSNR {}", f.psnr_db);
}

#[test]
fn the_same_input_gives_the_same_svg_whatever_the_threads() {
    let (pixels, w, h) = transparent_drawing();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| trace(&pixels, w, h, Preset::Poster).svg)
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(2));
}

#[test]
fn line_art_traces_ink_with_holes() {
    let body = r##"<rect width="80" height="80" fill="#fff"/><circle cx="40" cy="40" r="25" fill="none" stroke="#000" stroke-width="4"/><path d="M10 70 L70 10" stroke="#000" stroke-width="2"/>"##;
    let pixels = raster(&svg(80, 80, body), 80, 80);
    let out = trace(&pixels, 80, 80, Preset::Lineart);
    let f = out.stats.fidelity.unwrap();
    assert!(f.psnr_db > 22.0, "PSNR {}", f.psnr_db);
    assert_eq!(out.stats.paths, 1, "one ink path: {}", out.svg);
    // The ring's inside stays paper.
    let back = raster(&out.svg, 80, 80);
    assert!(back[(40 * 80 + 30) as usize][3] < 5);
}

fn opossum(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opossum"))
        .args(args)
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("opossum-vectorize-test-config"),
        )
        .output()
        .unwrap()
}

#[test]
fn the_cli_writes_the_svg_and_its_figures_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logo.png");
    let (pixels, w, h) = transparent_drawing();
    image::RgbaImage::from_raw(w, h, pixels.iter().flatten().copied().collect())
        .unwrap()
        .save(&input)
        .unwrap();
    let output = dir.path().join("logo.svg");
    let out = opossum(&[
        "vectorize".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        output.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["stats"]["fidelity"]["psnr_db"].as_f64().unwrap() > 28.0);
    assert_eq!(
        json["stats"]["svg_bytes"].as_u64().unwrap(),
        std::fs::metadata(&output).unwrap().len()
    );

    // A bad option value names the field; a bad input names the file; nothing is written.
    let bad = dir.path().join("bad.svg");
    let out = opossum(&[
        "vectorize".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        bad.as_os_str(),
        "--colors".as_ref(),
        "1".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--colors: 1 is outside"));
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not an image at all").unwrap();
    let out = opossum(&[
        "vectorize".as_ref(),
        junk.as_os_str(),
        "-o".as_ref(),
        bad.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.png"));
    assert!(!bad.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");

    // An image too faint to trace gives an empty SVG, and a note that says why.
    let faint = dir.path().join("faint.png");
    image::RgbaImage::from_pixel(30, 20, image::Rgba([200, 30, 30, 100]))
        .save(&faint)
        .unwrap();
    let empty = dir.path().join("faint.svg");
    let out = opossum(&[
        "vectorize".as_ref(),
        faint.as_os_str(),
        "-o".as_ref(),
        empty.as_os_str(),
    ]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no pixel is at least half opaque"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chains_end_in_svg_through_render_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (pixels, w, h) = transparent_drawing();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for name in ["a.png", "b.png"] {
        image::RgbaImage::from_raw(w, h, pixels.iter().flatten().copied().collect())
            .unwrap()
            .save(input.join(name))
            .unwrap();
    }
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"flip\"\ndirection = \"horizontal\"\n\n[vectorize]\npreset = \"poster\"\ncolors = 6\n",
    )
    .unwrap();
    // render: the output's extension picks SVG; the chain's [vectorize] table sets the tracer.
    let svg = dir.path().join("one.svg");
    let out = opossum(&[
        "render".as_ref(),
        input.join("a.png").as_os_str(),
        "-c".as_ref(),
        chain.as_os_str(),
        "-o".as_ref(),
        svg.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let tree = resvg::usvg::Tree::from_str(&text, &Default::default()).unwrap();
    assert_eq!(tree.size().width() as u32, w);
    // Flipped: the ring (right in the source) is now on the left.
    let back = raster(&text, w, h);
    assert!(back[(60 * w + 110 - 1 - 80) as usize][3] > 250);
    assert!(back[(60 * w + 80) as usize][3] < 5);

    // batch --format svg: one SVG per input.
    let outdir = dir.path().join("out");
    let out = opossum(&[
        "batch".as_ref(),
        "-c".as_ref(),
        chain.as_os_str(),
        "-i".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        outdir.as_os_str(),
        "--format".as_ref(),
        "svg".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["a.svg", "b.svg"] {
        let text = std::fs::read_to_string(outdir.join(name)).unwrap();
        resvg::usvg::Tree::from_str(&text, &Default::default()).unwrap();
    }

    // A bad [vectorize] entry is a chain error naming it.
    std::fs::write(
        &chain,
        "version = 1\n[vectorize]\npreset = \"logo\"\ncolours = 6\n",
    )
    .unwrap();
    let out = opossum(&[
        "render".as_ref(),
        input.join("a.png").as_os_str(),
        "-c".as_ref(),
        chain.as_os_str(),
        "-o".as_ref(),
        dir.path().join("never.svg").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vectorize") && err.contains("colours"),
        "{err}"
    );
    assert!(!dir.path().join("never.svg").exists());
}
