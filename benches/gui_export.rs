//! UI responsiveness during a full-resolution export: opens the app (egui_kittest harness with
//! the wgpu renderer) on a 50-megapixel image, starts an export and steps the UI until it
//! finishes, timing every frame. Prints frame-time percentiles; asserts nothing (a benchmark).
//! `cargo bench --bench gui_export` (needs a Vulkan driver, e.g. lavapipe).

use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use image::ImageEncoder as _;
use opossum::config::Config;
use opossum::gui::dialogs::ScriptedDialogs;
use opossum::gui::{GuiOptions, OpossumApp};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let side = 7072; // 50 Mpx
    let input = dir.path().join("large.png");
    let photo = opossum::bench::synthetic_photo(side).to_rgb8();
    let file = std::fs::File::create(&input).expect("create");
    image::codecs::png::PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    )
    .write_image(photo.as_raw(), side, side, image::ExtendedColorType::Rgb8)
    .expect("encode");
    drop(photo);
    let chain = dir.path().join("chain.toml");
    std::fs::write(
        &chain,
        "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 3\n[[ops]]\nop = \"adjust_colors\"\nbrightness = 1.1\ncontrast = 1.2\n[[ops]]\nop = \"sharpen\"\namount = 0.5\n",
    )
    .expect("chain");
    let output = dir.path().join("export.jpg");
    let mut config = Config::default();
    config.performance.max_memory_usage = opossum::config::ByteSize(2 << 30);
    let options = GuiOptions {
        image: Some(input),
        chain: Some(chain),
        screenshot: None,
        config,
        config_path: None,
        fresh_state: true,
        hide_timings: false,
        cache_dir: None,
    };
    let dialogs = ScriptedDialogs {
        exports: vec![output.clone()],
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
    h.key_press_modifiers(Modifiers::COMMAND, Key::E);
    let started = Instant::now();
    let mut frames = Vec::new();
    h.step();
    while h.state().exporting() {
        let t = Instant::now();
        h.step();
        frames.push(t.elapsed().as_secs_f64() * 1000.0);
        // A UI idles between events; poll like a 60 Hz display would.
        std::thread::sleep(Duration::from_millis(16));
        assert!(Instant::now() < deadline, "export timed out");
    }
    let export_s = started.elapsed().as_secs_f64();
    frames.sort_by(f64::total_cmp);
    let p = |q: f64| frames[((frames.len() - 1) as f64 * q) as usize];
    println!(
        "50 Mpx export ({side}x{side} PNG -> JPEG, blur + colour + sharpen): {export_s:.1} s, {} UI frames during it: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        frames.len(),
        p(0.5),
        p(0.95),
        p(0.99),
        p(1.0)
    );
    println!("{}", h.state().last_export().unwrap_or("no result"));
}
