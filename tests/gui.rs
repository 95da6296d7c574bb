//! The desktop app driven as a user would, through its accessible widgets (egui_kittest), with
//! the real wgpu renderer (lavapipe in CI): load the sample, add ops, change a slider, reorder,
//! toggle, undo/redo, save and reload the chain, and check the preview pixels change. Plus a
//! snapshot of the main window.
#![cfg(feature = "gui")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use opossum::config::Config;
use opossum::gui::dialogs::ScriptedDialogs;
use opossum::gui::{GuiOptions, OpossumApp};

fn options(chain: PathBuf) -> GuiOptions {
    let mut config = Config::default();
    config.performance.max_cpu_cores = 2;
    // Deterministic levels: no deadline-aware coarsening (its own test switches it on).
    config.performance.preview_frame_budget_ms = 0;
    GuiOptions {
        image: Some(opossum::gui::app::sample_image_path()),
        chain: Some(chain),
        screenshot: None,
        config,
        config_path: None,
        fresh_state: true,
        hide_timings: true,
        cache_dir: None,
    }
}

fn harness<'a>(chain: PathBuf, dialogs: ScriptedDialogs) -> Harness<'a, OpossumApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .wgpu()
        .build_eframe(move |cc| OpossumApp::new(cc, options(chain), Box::new(dialogs)))
}

/// Step the UI until the preview shows the current chain (background renders finish).
fn settle(harness: &mut Harness<'_, OpossumApp>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        if harness.state().preview_is_current() {
            // One more frame so the new texture is drawn.
            harness.step();
            return;
        }
        assert!(Instant::now() < deadline, "preview did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ids(app: &OpossumApp) -> Vec<(&'static str, bool)> {
    app.chain()
        .ops
        .iter()
        .map(|op| (op.def.id, op.enabled))
        .collect()
}

#[test]
fn editing_a_chain_like_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "version = 1\n").unwrap();
    let saved = dir.path().join("saved.toml");
    let dialogs = ScriptedDialogs {
        chain_saves: vec![saved.clone()],
        chains: vec![saved.clone()],
        ..Default::default()
    };
    let mut h = harness(empty, dialogs);
    settle(&mut h);
    let (original, size) = h
        .state()
        .preview_pixels()
        .map(|(p, s)| (p.to_vec(), s))
        .unwrap();
    assert_eq!(
        size,
        [600, 400],
        "the sample is shown 1:1 at this window size"
    );

    // Add three operations from the palette.
    for label in ["+ Gaussian blur", "+ Adjust colours", "+ Greyscale"] {
        h.get_by_label(label).click();
        h.run_steps(2);
    }
    assert_eq!(
        ids(h.state()),
        vec![
            ("gaussian_blur", true),
            ("adjust_colors", true),
            ("grayscale", true)
        ]
    );
    settle(&mut h);
    let grey = h.state().preview_pixels().unwrap().0.to_vec();
    assert_ne!(grey, original, "the preview changed");
    assert!(
        grey.chunks_exact(4)
            .all(|px| px[0] == px[1] && px[1] == px[2]),
        "greyscale preview"
    );

    // Select the blur and raise its sigma with the keyboard on the slider.
    h.get_by_label("1. Gaussian blur").click();
    h.run_steps(2);
    if std::env::var("GUI_DEBUG").is_ok() {
        eprintln!("{:#?}", h.root());
    }
    let sigma_before = h.state().chain().ops[0].params.float("sigma");
    h.get_by_label("Sigma").focus();
    h.run_steps(1);
    for _ in 0..5 {
        h.key_press(Key::ArrowRight);
        h.run_steps(1);
    }
    let sigma_after = h.state().chain().ops[0].params.float("sigma");
    assert!(
        sigma_after > sigma_before,
        "{sigma_before} -> {sigma_after}"
    );

    // Reorder: move the blur down below the colour adjustment.
    h.get_by_label("Move down").click();
    h.run_steps(2);
    assert_eq!(h.state().chain().ops[1].def.id, "gaussian_blur");

    // Toggle greyscale off: the preview is colourful again.
    h.get_by_label("Enable 3. Greyscale").click();
    h.run_steps(2);
    assert!(!h.state().chain().ops[2].enabled);
    settle(&mut h);
    let colour = h.state().preview_pixels().unwrap().0.to_vec();
    assert!(
        colour.chunks_exact(4).any(|px| px[0] != px[2]),
        "colour is back"
    );

    // Undo the toggle and the move; redo the move.
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert!(
        h.state().chain().ops[2].enabled,
        "undo re-enables greyscale"
    );
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(
        h.state().chain().ops[0].def.id,
        "gaussian_blur",
        "undo the move"
    );
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    h.run_steps(2);
    assert_eq!(
        h.state().chain().ops[1].def.id,
        "gaussian_blur",
        "redo the move"
    );

    // Save the chain, change it, load it back.
    let before_save = h.state().chain().clone();
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_steps(2);
    assert!(saved.exists(), "saved through the (scripted) dialog");
    h.get_by_label("+ Flip").click();
    h.run_steps(2);
    assert_eq!(h.state().chain().ops.len(), 4);
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::O);
    h.run_steps(2);
    assert_eq!(
        h.state().chain(),
        &before_save,
        "reloaded chain equals the saved one"
    );
    assert!(h.state().error_message().is_none());
}

#[test]
fn a_bad_image_shows_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "version = 1\n").unwrap();
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let dialogs = ScriptedDialogs {
        images: vec![bad],
        ..Default::default()
    };
    let mut h = harness(empty, dialogs);
    settle(&mut h);
    h.key_press_modifiers(Modifiers::COMMAND, Key::O);
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.state().error_message().is_none() {
        h.step();
        assert!(Instant::now() < deadline, "no error shown");
        std::thread::sleep(Duration::from_millis(10));
    }
    let message = h.state().error_message().unwrap().to_owned();
    assert!(message.contains("broken.png"), "{message}");
    h.run_steps(2);
    h.get_by_label("Dismiss").click();
    h.run_steps(2);
    assert!(h.state().error_message().is_none());
    // The previous image is still shown.
    assert!(h.state().preview_pixels().is_some());
}

#[test]
fn export_runs_in_the_background_and_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.toml");
    std::fs::write(&chain, "version = 1\n[[ops]]\nop = \"grayscale\"\n").unwrap();
    let out = dir.path().join("export.png");
    let dialogs = ScriptedDialogs {
        exports: vec![out.clone()],
        ..Default::default()
    };
    let mut h = harness(chain, dialogs);
    settle(&mut h);
    h.key_press_modifiers(Modifiers::COMMAND, Key::E);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        h.step();
        if !h.state().exporting() && h.state().last_export().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "export did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    let img = image::open(&out).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (600, 400));
    assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
}

#[test]
fn main_window_snapshot() {
    let chain = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/presets/vintage.toml");
    let mut h = harness(chain, ScriptedDialogs::default());
    settle(&mut h);
    h.get_by_label("3. Gaussian blur").click();
    h.run_steps(3);
    h.snapshot("main_window");
}

#[test]
fn zooming_in_refines_the_visible_region_at_full_resolution() {
    use opossum::engine::Engine;
    use opossum::io::decode::Orientation;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("large.png");
    let photo = opossum::bench::synthetic_photo(2400);
    photo.save(&input).unwrap();
    let chain_path = dir.path().join("chain.toml");
    std::fs::write(
        &chain_path,
        // Sigma under 1.5 px: exact at every preset whatever the content, so the GPU's
        // refinement equals the CPU's render to the byte (box passes agree within 10^-4 only).
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 1.2\n[[ops]]\nop = \"adjust_colors\"\ncontrast = 1.3\n",
    )
    .unwrap();
    let mut opts = options(chain_path.clone());
    opts.image = Some(input);
    let config = opts.config.clone();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .wgpu()
        .build_eframe(move |cc| OpossumApp::new(cc, opts, Box::new(ScriptedDialogs::default())));
    settle(&mut h);
    let fit_size = h.state().preview_pixels().unwrap().1;
    assert!(
        fit_size[0] < 2400,
        "at fit the preview uses a smaller pyramid level"
    );
    assert!(h.state().refined_pixels().is_none());

    h.get_by_label("100%").click();
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.state().refined_pixels().is_none() {
        h.step();
        assert!(Instant::now() < deadline, "no refinement");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (region, pixels) = h
        .state()
        .refined_pixels()
        .map(|(r, p)| (r, p.to_vec()))
        .unwrap();
    assert!(region.width > 200 && region.height > 200, "{region:?}");

    // The refined pixels are exactly that part of the full-resolution render on the f32 path
    // (an RGBA copy takes it; a whole export of opaque 8-bit RGB would run the blur on 8-bit
    // kernels, within a level of these: engine::u8_lead).
    let engine = Engine::new(config).unwrap();
    let chain = opossum::chain::Chain::load(&chain_path, engine.output_limits()).unwrap();
    let (full, _) = engine
        .render_source(
            &image::DynamicImage::ImageRgba8(photo.to_rgba8()),
            Orientation::NoTransforms,
            &chain,
            false,
            &Default::default(),
        )
        .unwrap();
    let full = full.to_rgba8();
    let width = 2400usize;
    for y in 0..region.height as usize {
        let start = ((region.y as usize + y) * width + region.x as usize) * 4;
        let expected = &full[start..start + region.width as usize * 4];
        let got = &pixels[y * region.width as usize * 4..(y + 1) * region.width as usize * 4];
        assert_eq!(got, expected, "row {y} of the refined region");
    }
}

#[test]
fn extreme_shapes_and_sizes_never_exceed_the_texture_limit() {
    // The test renderer allows 2048 px textures: 1×20000, 20000×1 and 4096² sources, and a
    // chain that enlarges past the limit, must all show a preview without a texture panic.
    let dir = tempfile::tempdir().unwrap();
    let enlarge = dir.path().join("enlarge.toml");
    std::fs::write(
        &enlarge,
        "version = 1\n[[ops]]\nop = \"resize\"\nwidth = 6000\nheight = 6000\nmode = \"exact\"\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "version = 1\n").unwrap();
    let cases = [
        (1u32, 20_000u32, &empty),
        (20_000, 1, &empty),
        (4096, 4096, &empty),
        (600, 400, &enlarge),
    ];
    for (i, (w, h, chain)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("img{i}.png"));
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        })
        .save(&path)
        .unwrap();
        let mut opts = options(chain.clone());
        opts.image = Some(path);
        let mut harness = Harness::builder()
            .with_size(egui::vec2(1400.0, 860.0))
            .wgpu()
            .build_eframe(move |cc| {
                OpossumApp::new(cc, opts, Box::new(ScriptedDialogs::default()))
            });
        settle(&mut harness);
        let (sizes, limit) = harness.state().preview_texture_sizes();
        assert!(!sizes.is_empty(), "case {i}: no preview shown");
        for size in sizes {
            assert!(
                size[0] as usize <= limit && size[1] as usize <= limit,
                "case {i}: a {size:?} texture over the {limit} px limit"
            );
        }
        harness.get_by_label("100%").click();
        harness.run_steps(3);
    }
}

#[test]
fn dropping_a_file_on_the_window_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "version = 1\n").unwrap();
    let dropped = dir.path().join("dropped.png");
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 40, 40]))
        .save(&dropped)
        .unwrap();
    let mut h = harness(empty, ScriptedDialogs::default());
    settle(&mut h);
    h.input_mut().dropped_files.push(egui::DroppedFile {
        path: Some(dropped),
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        h.step();
        if let Some((pixels, size)) = h.state().preview_pixels()
            && size == [64, 48]
        {
            assert_eq!(&pixels[..4], &[200, 40, 40, 255]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped image was not opened"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A dropped folder goes to the Batch panel (and opens it); with the panel open, so do
    // dropped images; the image shown stays.
    let folder = dir.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    h.input_mut().dropped_files.push(egui::DroppedFile {
        path: Some(folder.clone()),
        ..Default::default()
    });
    h.run_steps(3);
    assert!(
        h.query_by_label("Run batch").is_some(),
        "the Batch panel is not open"
    );
    let extra = dir.path().join("extra.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]))
        .save(&extra)
        .unwrap();
    h.input_mut().dropped_files.push(egui::DroppedFile {
        path: Some(extra.clone()),
        ..Default::default()
    });
    h.run_steps(3);
    assert_eq!(h.state().batch_panel().inputs(), [folder, extra]);
    assert_eq!(h.state().preview_pixels().unwrap().1, [64, 48]);
}

#[test]
fn settings_window_snapshot_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "version = 1\n").unwrap();
    let mut h = harness(empty, ScriptedDialogs::default());
    settle(&mut h);
    h.get_by_label("Edit").click();
    h.run_steps(2);
    h.get_by_label("Settings…").click();
    h.run_steps(3);
    h.snapshot("settings_window");
    h.get_by_label("Save settings").click();
    h.run_steps(2);
    h.get_by_label_contains("Applied for this session");
}

#[test]
fn profiler_window_opens_and_records_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.toml");
    std::fs::write(&chain, "version = 1\n[[ops]]\nop = \"sharpen\"\n").unwrap();
    let mut h = harness(chain, ScriptedDialogs::default());
    settle(&mut h);
    h.get_by_label("View").click();
    h.run_steps(2);
    h.get_by_label("Profiler").click();
    h.run_steps(2);
    // An edit while profiling renders a new preview with its scopes recorded.
    h.get_by_label("1. Sharpen").click();
    h.run_steps(2);
    h.get_by_label("Amount").focus();
    h.key_press(Key::ArrowRight);
    settle(&mut h);
    for _ in 0..5 {
        h.step();
    }
    h.get_by_label_contains("UI frame time p50");
    assert!(puffin::are_scopes_on());
    // Where each op of the last preview ran, and the stage cache: the edit of op 1 reused the
    // uploaded source.
    h.get_by_label_contains("Preview path: GPU");
    h.get_by_label_contains("Stage cache: 1 of 2 stages reused");
    // The content measure and what it chose (sharpen keeps the preset's blur).
    h.get_by_label_contains("Image detail ");
    h.get_by_label_contains("No op of this chain picks its algorithm by content");
    assert!(
        !h.get_all_by_label("sharpen · GPU")
            .collect::<Vec<_>>()
            .is_empty()
    );
}

#[test]
fn previews_run_on_the_gpu_and_match_the_cpu_path_when_it_is_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 3.0\n[[ops]]\nop = \"adjust_colors\"\nsaturation = 1.4\n[[ops]]\nop = \"watermark\"\n",
    )
    .unwrap();
    let mut h = harness(chain, ScriptedDialogs::default());
    settle(&mut h);
    assert!(
        h.state().preview_on_gpu(),
        "the kittest renderer has a wgpu device"
    );
    let (gpu_pixels, gpu_size) = h.state().preview_pixels().unwrap();
    // Settings → GPU previews off → the next preview renders on the CPU.
    h.get_by_label("Edit").click();
    h.run_steps(2);
    h.get_by_label("Settings…").click();
    h.run_steps(3);
    h.get_by_label("GPU previews").click();
    h.run_steps(1);
    h.get_by_label("Save settings").click();
    h.run_steps(2);
    settle(&mut h);
    assert!(!h.state().preview_on_gpu());
    let (cpu_pixels, cpu_size) = h.state().preview_pixels().unwrap();
    assert_eq!(gpu_size, cpu_size);
    let worst = gpu_pixels
        .iter()
        .zip(&cpu_pixels)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 1, "GPU and CPU previews differ by {worst} levels");
}

/// Click the widget labelled `label`, as a user would, and let the UI react.
fn click(h: &mut Harness<'_, OpossumApp>, label: &str) {
    h.get_by_label(label).click();
    h.run_steps(3);
}

/// A colourful PNG (so a grayscale op would be visible in the outputs).
fn write_png(path: &std::path::Path, width: u32, height: u32) {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 11) as u8, 200 - (x + y) as u8])
    })
    .save_with_format(path, image::ImageFormat::Png)
    .unwrap();
}

fn step_until(h: &mut Harness<'_, OpossumApp>, what: &str, done: impl Fn(&OpossumApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(h.state()) {
        h.step();
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}

#[test]
fn batch_panel_runs_a_chain_snapshot_over_a_folder_and_reports_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"resize\"\nwidth = 32\nheight = 0\n",
    )
    .unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for name in ["a.png", "b.png", "c.png"] {
        write_png(&input.join(name), 64, 48);
    }
    std::fs::write(input.join("bad.png"), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
    let not_a_folder = dir.path().join("file.txt");
    std::fs::write(&not_a_folder, "x").unwrap();
    let out = dir.path().join("out");
    let opened = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // Answers are taken from the end: the input folder, a file picked as output folder, then
    // the real output folder.
    let dialogs = ScriptedDialogs {
        folders: vec![out.clone(), not_a_folder.clone(), input.clone()],
        opened: opened.clone(),
        ..Default::default()
    };
    let mut h = harness(chain, dialogs);
    settle(&mut h);
    click(&mut h, "Process");
    click(&mut h, "Batch…");
    // Nothing to run yet: the button says why.
    assert!(
        h.query_by_label("Add images or folders to process.")
            .is_some()
    );
    click(&mut h, "Add folder…");
    click(&mut h, "Choose output folder…");
    // An output "folder" that is a file: a clear error naming it, nothing written.
    h.get_by_label("Run batch").click();
    step_until(&mut h, "the failed start", |app| {
        !app.batch_panel().running() && app.batch_panel().error().is_some()
    });
    let error = h.state().batch_panel().error().unwrap().to_owned();
    assert!(error.contains("file.txt"), "{error}");
    click(&mut h, "Choose output folder…");
    h.get_by_label("Run batch").click();
    h.step();
    // Editing the chain while the batch runs does not change the batch.
    h.state_mut()
        .command(opossum::gui::app::Command::AddOp("grayscale"));
    step_until(&mut h, "the batch", |app| {
        !app.batch_panel().running() && app.batch_panel().finished().is_some()
    });
    assert_eq!(h.state().chain().ops.len(), 2);
    let finished = h.state().batch_panel().finished().unwrap();
    assert_eq!(
        finished.report.succeeded(),
        3,
        "{}",
        finished.report.summary()
    );
    assert_eq!(finished.report.failed(), 1);
    for name in ["a.png", "b.png", "c.png"] {
        let img = image::open(out.join(name)).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (32, 24), "{name}");
        assert!(
            img.pixels().any(|p| p[0] != p[1] || p[1] != p[2]),
            "{name} is grey: the edit made during the batch leaked into it"
        );
    }
    assert!(!out.join("bad.png").exists());
    let report_path = finished.report_path.clone().expect("a report");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["succeeded"], 3);
    assert_eq!(report["failed"], 1);
    // The results table lists each file; the failure says why.
    assert!(h.query_by_label("bad.png").is_some());
    click(&mut h, "Only failures");
    assert!(h.query_by_label("a.png").is_none());
    assert!(h.query_by_label("bad.png").is_some());
    click(&mut h, "Open report");
    assert_eq!(*opened.lock().unwrap(), vec![report_path]);
    // The inputs are untouched.
    assert_eq!(
        std::fs::read(input.join("bad.png")).unwrap(),
        b"\x89PNG\r\n\x1a\ntruncated"
    );
}

#[test]
fn watch_panel_renders_arrivals_live_counts_them_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.toml");
    std::fs::write(&chain, "version = 1\n[[ops]]\nop = \"flip\"\n").unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let out = dir.path().join("out");
    let opened = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let dialogs = ScriptedDialogs {
        folders: vec![out.clone(), input.clone()],
        opened: opened.clone(),
        ..Default::default()
    };
    let mut h = harness(chain, dialogs);
    settle(&mut h);
    click(&mut h, "Process");
    click(&mut h, "Watch folder…");
    click(&mut h, "Choose watched folder…");
    click(&mut h, "Choose output folder…");
    h.get_by_label("Start watching").click();
    step_until(&mut h, "the watcher", |app| {
        app.watch_panel().log().any(|l| l.contains("watching"))
    });
    // A temp-then-rename writer and a broken file.
    let part = input.join("photo.png.part");
    write_png(&part, 40, 30);
    std::fs::rename(&part, input.join("photo.png")).unwrap();
    std::fs::write(input.join("broken.jpg"), b"\xff\xd8\xff not a jpeg").unwrap();
    step_until(&mut h, "both files", |app| {
        let c = app.watch_panel().counters();
        c.written == 1 && c.failed == 1
    });
    assert!(h.state().watch_panel().running());
    let log: Vec<String> = h.state().watch_panel().log().map(str::to_owned).collect();
    assert!(
        log.iter()
            .any(|l| l.contains(" ok ") && l.contains("photo.png")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains(" error ") && l.contains("broken.jpg")),
        "{log:#?}"
    );
    assert_eq!(image::open(out.join("photo.png")).unwrap().width(), 40);
    click(&mut h, "Open error log");
    assert_eq!(
        *opened.lock().unwrap(),
        vec![out.join(opossum::watch::ERROR_LOG)]
    );
    h.get_by_label("Stop watching").click();
    step_until(&mut h, "the watch to stop", |app| {
        !app.watch_panel().running()
    });
    assert!(h.state().watch_panel().error().is_none());
    // The status bar no longer says it is watching; the counters stay.
    assert!(h.query_by_label_contains("Watching:").is_none());
    assert_eq!(h.state().watch_panel().counters().written, 1);
}

#[test]
fn vectorize_panel_traces_live_switches_views_and_exports_full_resolution_svg() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"adjust_colors\"\nexposure = 0.3\n",
    )
    .unwrap();
    let out = dir.path().join("traced.svg");
    let dialogs = ScriptedDialogs {
        svg_exports: vec![out.clone()],
        ..Default::default()
    };
    let mut h = harness(chain, dialogs);
    settle(&mut h);
    click(&mut h, "Process");
    click(&mut h, "Vectorize…");
    let traced = |app: &OpossumApp| {
        let p = app.vectorize_panel();
        !p.is_tracing() && p.figures().is_some()
    };
    step_until(&mut h, "the first trace", traced);
    let first = h.state().vectorize_panel().figures().unwrap().clone();
    assert!(first.paths > 0 && first.colors > 1, "{first:?}");
    let psnr = first.fidelity.unwrap().psnr_db;
    assert!(psnr > 15.0, "preview PSNR {psnr}");
    // Every view draws.
    for view in ["Outline", "Overlay", "Side by side"] {
        click(&mut h, view);
    }
    // An edit re-traces: binary mode draws ink only.
    click(&mut h, "Binary");
    step_until(&mut h, "the binary trace", |app| {
        traced(app) && app.vectorize_panel().figures().unwrap().colors == 1
    });
    // Export at full resolution, with the options as set.
    click(&mut h, "Export SVG…");
    step_until(&mut h, "the export", |app| {
        app.vectorize_panel().last_export().is_some()
    });
    let line = h
        .state()
        .vectorize_panel()
        .last_export()
        .unwrap()
        .to_owned();
    assert!(line.starts_with("Exported traced.svg"), "{line}");
    let svg = std::fs::read_to_string(&out).unwrap();
    let tree = resvg::usvg::Tree::from_str(&svg, &Default::default()).unwrap();
    let (w, h_px) = image::image_dimensions(opossum::gui::app::sample_image_path()).unwrap();
    assert_eq!(
        (tree.size().width() as u32, tree.size().height() as u32),
        (w, h_px)
    );
    assert_eq!(svg.matches("<path").count(), 1, "binary mode: one ink path");
}

#[test]
fn slow_previews_go_coarser_while_editing_and_refine_when_edits_pause() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.toml");
    std::fs::write(&chain, "version = 1\n").unwrap();
    let mut opts = options(chain);
    // A 1-ms budget: every preview misses it.
    opts.config.performance.preview_frame_budget_ms = 1;
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .wgpu()
        .build_eframe(move |cc| OpossumApp::new(cc, opts, Box::new(ScriptedDialogs::default())));
    settle(&mut h);
    let needed = h.state().preview_level();
    // Edits in quick succession, as when dragging a slider.
    click(&mut h, "+ Gaussian blur");
    step_until(&mut h, "a coarser preview while editing", |app| {
        app.preview_is_current() && app.preview_level() > needed
    });
    assert!(h.state().preview_coarsening() > 0);
    // Pause: the preview refines to the level the view needs.
    std::thread::sleep(Duration::from_millis(400));
    step_until(&mut h, "the refined preview", |app| {
        app.preview_coarsening() == 0 && app.preview_is_current() && app.preview_level() == needed
    });
}

/// The app on the sample with `chain`, its disk cache in `cache`, GPU previews on or off.
fn cached_app<'a>(chain: PathBuf, cache: PathBuf, gpu: bool) -> Harness<'a, OpossumApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .wgpu()
        .build_eframe(move |cc| {
            let mut options = options(chain);
            options.config.performance.gpu_enabled = gpu;
            options.cache_dir = Some(cache);
            OpossumApp::new(cc, options, Box::new(ScriptedDialogs::default()))
        })
}

/// Finished preview frames in the disk cache folder.
fn result_entries(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("result-"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn reopening_an_image_shows_its_cached_preview_at_once() {
    use opossum::engine::cached::Served;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 2.0\n[[ops]]\nop = \"adjust_colors\"\nsaturation = 1.5\n",
    )
    .unwrap();
    // The CPU path: its frames are the ones kept in the result and disk caches.
    let start = |chain: PathBuf, cache: PathBuf| cached_app(chain, cache, false);
    let mut first = start(chain.clone(), cache.clone());
    settle(&mut first);
    assert!(matches!(
        first.state().preview_served(),
        Some(Served::Rendered { .. })
    ));
    let pixels = first.state().preview_pixels().unwrap();
    // Once the preview has stayed on screen, it is written to the disk cache.
    let deadline = Instant::now() + Duration::from_secs(30);
    while result_entries(&cache) == 0 {
        first.step();
        assert!(
            Instant::now() < deadline,
            "the settled preview was not persisted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(first);

    // "Tomorrow": a new app on the same cache folder shows the same pixels without decoding or
    // rendering: the pyramid (the sample is small, so all of it) and the frame come from disk.
    let mut second = start(chain, cache);
    settle(&mut second);
    assert_eq!(second.state().preview_served(), Some(Served::Disk));
    assert_eq!(second.state().image_complete(), Some(true));
    assert_eq!(second.state().preview_pixels().unwrap(), pixels);
    let disk = second
        .state()
        .cache_stats()
        .into_iter()
        .find(|l| l.name == "disk")
        .unwrap();
    assert_eq!(
        (disk.hits, disk.misses),
        (2, 0),
        "pyramid and preview from disk"
    );

    // The profiler lists the levels; Clear caches empties them and the preview renders again.
    second.get_by_label("View").click();
    second.run_steps(2);
    second.get_by_label("Profiler").click();
    second.run_steps(2);
    second.get_by_label("thumbnail");
    click(&mut second, "Clear caches");
    second.get_by_label_contains("Cleared the memory caches and 2 disk entries");
    settle(&mut second);
    assert!(matches!(
        second.state().preview_served(),
        Some(Served::Rendered { .. })
    ));
    assert_eq!(second.state().preview_pixels().unwrap(), pixels);
}

#[test]
fn gpu_previews_are_kept_on_disk_too() {
    use opossum::engine::cached::Served;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"adjust_colors\"\ncontrast = 1.4\n",
    )
    .unwrap();
    let start = |chain: PathBuf, cache: PathBuf| cached_app(chain, cache, true);
    let results = |cache: &Path| result_entries(cache);
    let mut first = start(chain.clone(), cache.clone());
    settle(&mut first);
    assert!(first.state().preview_on_gpu());
    // The settled GPU frame is read back and written to the disk cache.
    let deadline = Instant::now() + Duration::from_secs(30);
    while results(&cache) == 0 {
        first.step();
        assert!(
            Instant::now() < deadline,
            "the settled GPU preview was not persisted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(first);
    // Reopened, the GPU path shows the kept frame instead of rendering.
    let mut second = start(chain.clone(), cache.clone());
    settle(&mut second);
    assert_eq!(second.state().preview_served(), Some(Served::Disk));
    assert_eq!(results(&cache), 1);
    drop(second);
    // The CPU path never shows the GPU's frame: it renders its own.
    let mut third = cached_app(chain, cache.clone(), false);
    settle(&mut third);
    assert!(matches!(
        third.state().preview_served(),
        Some(Served::Rendered { .. })
    ));
}
