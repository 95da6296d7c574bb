//! UI responsiveness while the Batch panel runs: opens the app (egui_kittest harness with the
//! wgpu renderer) on a 6-megapixel photo, then edits a parameter every 150 ms and times each
//! UI frame and each edit-to-preview round trip, first with nothing else running (baseline),
//! then while a batch of 6-megapixel JPEGs renders on the export pool. Prints percentiles and
//! the batch's own throughput; asserts nothing (a benchmark).
//! `cargo bench --bench gui_batch` (needs a Vulkan driver, e.g. lavapipe).

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use opossum::chain::raw::RawValue;
use opossum::config::Config;
use opossum::gui::app::Command;
use opossum::gui::dialogs::ScriptedDialogs;
use opossum::gui::{GuiOptions, OpossumApp};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIDE_PX: u32 = 2450; // 6 Mpx
const FILES: usize = 64;

fn write_jpeg(path: &Path, seed: u32) {
    let mut photo = opossum::bench::synthetic_photo(SIDE_PX).to_rgb8();
    for p in photo.pixels_mut().step_by(97) {
        p[0] = p[0].wrapping_add(seed as u8);
    }
    photo
        .save_with_format(path, image::ImageFormat::Jpeg)
        .expect("encode");
}

fn percentiles(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n {} · p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms · max {:.1} ms",
        ms.len(),
        p(0.5),
        p(0.95),
        p(0.99),
        p(1.0)
    );
}

/// Edit brightness every 150 ms for `duration` (or while `busy`), stepping the UI like a 60 Hz
/// display; returns (frame times, edit-to-preview times), ms.
fn edit_and_measure(
    h: &mut Harness<'_, OpossumApp>,
    duration: Duration,
    busy: impl Fn(&OpossumApp) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let started = Instant::now();
    let mut frames = Vec::new();
    let mut previews = Vec::new();
    let mut edit: Option<Instant> = None;
    let mut last_edit = Instant::now() - Duration::from_secs(1);
    let mut brightness = 1.0;
    while started.elapsed() < duration && busy(h.state()) {
        if edit.is_none() && last_edit.elapsed() >= Duration::from_millis(150) {
            brightness = if brightness > 1.05 { 1.0 } else { 1.1 };
            h.state_mut().command(Command::SetParam {
                index: 1,
                key: "brightness",
                value: RawValue::Float(brightness),
                dragging: false,
            });
            edit = Some(Instant::now());
            last_edit = Instant::now();
        }
        let t = Instant::now();
        h.step();
        frames.push(t.elapsed().as_secs_f64() * 1000.0);
        if let Some(at) = edit
            && h.state().preview_is_current()
        {
            previews.push(at.elapsed().as_secs_f64() * 1000.0);
            edit = None;
        }
        std::thread::sleep(Duration::from_millis(16));
    }
    (frames, previews)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir(&input).expect("mkdir");
    for i in 0..FILES {
        write_jpeg(&input.join(format!("photo{i:02}.jpg")), i as u32);
    }
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"resize\"\nwidth = 1600\nheight = 0\n[[ops]]\nop = \"adjust_colors\"\nbrightness = 1.05\ncontrast = 1.1\n[[ops]]\nop = \"sharpen\"\namount = 0.5\n",
    )
    .expect("chain");
    let options = GuiOptions {
        image: Some(input.join("photo00.jpg")),
        chain: Some(chain),
        screenshot: None,
        config: Config::default(),
        config_path: None,
        fresh_state: true,
        hide_timings: false,
        cache_dir: None,
    };
    let dialogs = ScriptedDialogs {
        folders: vec![out.clone(), input.clone()],
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 860.0))
        .wgpu()
        .build_eframe(move |cc| OpossumApp::new(cc, options, Box::new(dialogs)));
    let deadline = Instant::now() + Duration::from_secs(300);
    while !h.state().preview_is_current() {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
        assert!(Instant::now() < deadline, "preview timed out");
    }
    let (frames, previews) = edit_and_measure(&mut h, Duration::from_secs(10), |_| true);
    println!(
        "{FILES} JPEGs of {SIDE_PX}x{SIDE_PX}, chain resize 1600 + adjust_colors + sharpen, preview on the {}",
        if h.state().preview_on_gpu() {
            "GPU"
        } else {
            "CPU"
        }
    );
    percentiles("idle: UI frame", frames);
    percentiles("idle: edit to preview", previews);

    h.state_mut().command(Command::ToggleBatch);
    h.run_steps(3);
    h.get_by_label("Add folder…").click();
    h.run_steps(2);
    h.get_by_label("Choose output folder…").click();
    h.run_steps(2);
    h.get_by_label("Run batch").click();
    h.step();
    let started = Instant::now();
    let (frames, previews) = edit_and_measure(&mut h, Duration::from_secs(600), |app| {
        app.batch_panel().running()
    });
    let batch_s = started.elapsed().as_secs_f64();
    percentiles("batch running: UI frame", frames);
    percentiles("batch running: edit to preview", previews);
    h.run_steps(3);
    match h.state().batch_panel().finished() {
        Some(f) => println!("batch: {:.1} s, {}", batch_s, f.report.summary()),
        None => println!(
            "batch did not finish: {:?}",
            h.state().batch_panel().error()
        ),
    }
}
