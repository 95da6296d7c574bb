//! `opossum vectorize` and `opossum bench vectorize`.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::args::{BenchVectorizeArgs, GlobalArgs, VectorizeArgs};
use super::load_config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::vectorize::{self, VectorStats, VectorizeOptions};

fn options(args: &VectorizeArgs) -> VectorizeOptions {
    VectorizeOptions {
        preset: args.preset,
        mode: args.mode,
        colors: args.colors,
        speckle_px: args.speckle,
        smoothness: args.smoothness,
        corner_threshold_deg: args.corner_threshold,
        max_error_px: args.max_error,
        threshold_level: args.threshold,
        max_kib_per_mpx: args.max_kib_per_mpx,
    }
}

/// Traces the input and writes the SVG atomically; prints the figures when asked.
pub fn run(global: &GlobalArgs, args: &VectorizeArgs) -> Result<()> {
    let engine = Engine::new(load_config(global)?)?;
    let options = options(args);
    check(&options)?;
    super::checks::svg_output(&args.output)?;
    super::checks::output_file(&args.output)?;
    if crate::io::same_file(&args.input, &args.output) {
        return Err(Error::WouldOverwriteInput {
            path: args.output.clone(),
        });
    }
    let started = Instant::now();
    let (pixels, w, h) = vectorize::load_rgba(&args.input, &engine.decode_limits())?;
    let decode_ms = started.elapsed().as_secs_f64() * 1000.0;
    let measure = args.stats || args.json;
    let cancel = super::cancel_on_signal();
    let result = engine
        .pool()
        .install(|| vectorize::vectorize(&pixels, w, h, &options, measure, &cancel))?;
    crate::io::write_atomic(&args.output, |out| out.write_all(result.svg.as_bytes()))?;
    let s = &result.stats;
    if s.paths == 0 {
        // An empty drawing is a valid answer, but rarely the one wanted: say why.
        let why = if pixels.iter().all(|p| p[3] < 128) {
            "no pixel is at least half opaque (alpha 128), and fainter ones are not traced"
        } else {
            "the image has a single colour region (its background)"
        };
        errln!("note: the SVG has no shapes: {why}");
    }
    if args.json {
        let json = serde_json::json!({
            "input": args.input,
            "output": args.output,
            "width": w,
            "height": h,
            "preset": args.preset.name(),
            "decode_ms": decode_ms,
            "stats": s,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        outln!(
            "wrote {} ({w}x{h} px traced in {:.0} ms): {} paths, {} nodes, {} colours, {}",
            args.output.display(),
            s.time_ms,
            s.paths,
            s.nodes,
            s.colors,
            human(s.svg_bytes),
        );
        if let Some(f) = s.fidelity {
            outln!(
                "rendered back: PSNR {:.2} dB, SSIM {:.4}, uncovered {:.3}% (on white, against the input)",
                f.psnr_db,
                f.ssim,
                100.0 * f.uncovered_fraction
            );
        }
    }
    Ok(())
}

/// The options' ranges, errors named by their flags (`--colors 1 is outside 2..=256`).
fn check(options: &VectorizeOptions) -> Result<()> {
    options.check().map_err(|e| {
        let flag = match e.field {
            "speckle_px" => "speckle",
            "corner_threshold_deg" => "corner-threshold",
            "max_error_px" => "max-error",
            "threshold_level" => "threshold",
            "max_kib_per_mpx" => "max-kib-per-mpx",
            field => field,
        };
        Error::Usage {
            reason: format!("--{flag}: {}", e.reason),
            path: None,
        }
    })
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// A flat-colour drawing (our own: shapes, a ring, a star, thin strokes, text-like bars),
/// rendered with anti-aliasing at `side` px: what logos and icons look like as rasters.
pub fn synthetic_logo(side: u32) -> Result<Vec<[u8; 4]>> {
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<rect width="100" height="100" fill="#f4efe6"/>
<circle cx="35" cy="38" r="22" fill="#1f5fa8"/>
<circle cx="35" cy="38" r="11" fill="#f4efe6"/>
<path d="M60 15 L67 33 L86 33 L71 45 L77 64 L60 52 L43 64 L49 45 L34 33 L53 33 Z" fill="#e8a21a"/>
<rect x="12" y="70" width="76" height="6" rx="3" fill="#c8322d"/>
<rect x="12" y="80" width="50" height="4" fill="#2c2c2c"/>
<rect x="66" y="80" width="22" height="4" fill="#2c2c2c"/>
<path d="M10 92 C30 84 60 100 90 90" stroke="#1f5fa8" stroke-width="1.5" fill="none"/>
</svg>"##;
    let pixmap = vectorize::metrics::render(svg, side, side)?;
    Ok(pixmap
        .pixels()
        .iter()
        .map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect())
}

/// `opossum bench vectorize`: median time per size and the figures of the last run.
pub fn bench(global: &GlobalArgs, args: &BenchVectorizeArgs) -> Result<()> {
    let engine = Engine::new(load_config(global)?)?;
    let source = match &args.image {
        Some(path) => Some(vectorize::load_rgba(path, &engine.decode_limits())?),
        None => None,
    };
    let options = VectorizeOptions::preset(args.preset);
    outln!(
        "vectorize, preset {}, {} ({} runs per size, median; threads {})",
        args.preset.name(),
        args.image
            .as_ref()
            .map_or("synthetic flat-colour drawing".to_owned(), |p| p
                .display()
                .to_string()),
        args.runs.max(1),
        engine.pool().current_num_threads()
    );
    outln!("| size px | time ms | Mpx/s | paths | nodes | colours | SVG KiB | PSNR dB | SSIM |");
    outln!("|---|---|---|---|---|---|---|---|---|");
    for &side in &args.sizes {
        let (pixels, w, h) = match &source {
            Some((px, sw, sh)) => resized(px, *sw, *sh, side)?,
            None => (synthetic_logo(side)?, side, side),
        };
        let cancel = AtomicBool::new(false);
        let mut times = Vec::new();
        let mut last: Option<VectorStats> = None;
        for _ in 0..args.runs.max(1) {
            let r = engine
                .pool()
                .install(|| vectorize::vectorize(&pixels, w, h, &options, false, &cancel))?;
            times.push(r.stats.time_ms);
            last = Some(r.stats);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let s = last.expect("at least one run");
        let f = engine.pool().install(|| {
            let r = vectorize::vectorize(&pixels, w, h, &options, true, &cancel)?;
            Ok::<_, Error>(r.stats.fidelity)
        })?;
        let (psnr, ssim) = f.map_or((f64::NAN, f64::NAN), |f| (f.psnr_db, f.ssim));
        outln!(
            "| {w}x{h} | {median:.1} | {:.1} | {} | {} | {} | {:.1} | {psnr:.2} | {ssim:.4} |",
            f64::from(w) * f64::from(h) / 1e6 / (median / 1000.0),
            s.paths,
            s.nodes,
            s.colors,
            s.svg_bytes as f64 / 1024.0,
        );
    }
    Ok(())
}

fn resized(px: &[[u8; 4]], w: u32, h: u32, side: u32) -> Result<(Vec<[u8; 4]>, u32, u32)> {
    let raw: Vec<u8> = px.iter().flatten().copied().collect();
    let image = image::RgbaImage::from_raw(w, h, raw)
        .ok_or_else(|| Error::Internal("bad image buffer".to_owned()))?;
    let scale = f64::from(side) / f64::from(w.max(h));
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let out = image::imageops::resize(&image, nw, nh, image::imageops::FilterType::Lanczos3);
    Ok((out.pixels().map(|p| p.0).collect(), nw, nh))
}
