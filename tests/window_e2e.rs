//! End to end in a real window: start the app under Xvfb with a chain and the bundled sample,
//! let it render, have it save a screenshot of its own window (`--screenshot`), and check that
//! the preview area shows the CPU render of the chain (found by its border, compared pixel by
//! pixel). Needs `Xvfb` and a Vulkan driver (lavapipe); CI installs both, so there (CI set) a
//! missing Xvfb is a failure, not a skip.
#![cfg(all(feature = "gui", target_os = "linux"))]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Xvfb; stopped with SIGTERM on drop so that it removes its socket and lock file
/// (SIGKILL would leave both behind in /tmp).
struct Xvfb(Child);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !terminated {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a display it picks itself (`-displayfd`: the server writes the number it
/// bound to our pipe). The server skips displays in use and reclaims stale lock files of dead
/// servers, so leftovers in /tmp from earlier runs never make this fail. `None` when Xvfb is
/// not installed.
fn start_xvfb() -> Option<(Xvfb, String)> {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1600x1000x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = Xvfb(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("Xvfb started but did not report its display within 20 s");
    let number: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Xvfb exited or wrote {line:?} instead of a display number"));
    Some((guard, format!(":{number}")))
}

#[test]
fn the_window_shows_the_rendered_chain() {
    let Some((_xvfb, display)) = start_xvfb() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Xvfb (see .ci/run)"
        );
        eprintln!("skipped: Xvfb is not installed");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let chain = root.join("assets/presets/vintage.toml");
    let sample = root.join("assets/samples/coffee.png");
    let shot = dir.path().join("window.png");
    let bin = env!("CARGO_BIN_EXE_opossum");
    let status = Command::new(bin)
        .arg("--chain")
        .arg(&chain)
        .arg("--screenshot")
        .arg(&shot)
        .arg(&sample)
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .env("WGPU_BACKEND", "vulkan")
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .status()
        .unwrap();
    assert!(status.success(), "the app failed: {status}");

    // The CPU render of the same chain through the command line.
    let reference = dir.path().join("reference.png");
    let out = Command::new(bin)
        .args(["render", "-c"])
        .arg(&chain)
        .arg("-o")
        .arg(&reference)
        .arg(&sample)
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = image::open(&reference).unwrap().to_rgb8();
    let window = image::open(&shot).unwrap().to_rgb8();
    let (rw, rh) = reference.dimensions();

    // Find the preview by its cream border (the chain's add_border colour): the top-left-most
    // pixel of that colour with a full border-width run to its right.
    let cream = reference.get_pixel(0, 0).0;
    let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6);
    let mut origin = None;
    'search: for y in 0..window.height().saturating_sub(rh) {
        for x in 0..window.width().saturating_sub(rw) {
            if close(window.get_pixel(x, y).0, cream)
                && (0..40).all(|d| close(window.get_pixel(x + d, y).0, cream))
                && (0..40).all(|d| close(window.get_pixel(x, y + d).0, cream))
            {
                origin = Some((x, y));
                break 'search;
            }
        }
    }
    let (ox, oy) = origin.expect("the rendered image (its border) is visible in the window");
    // Compare at the best alignment within a pixel or two of the border found.
    let compare = |ox: u32, oy: u32| {
        let mut total = 0u64;
        let mut over = 0u64;
        for y in 0..rh {
            for x in 0..rw {
                let a = window.get_pixel(ox + x, oy + y).0;
                let b = reference.get_pixel(x, y).0;
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| u64::from(p.abs_diff(q)))
                    .max()
                    .unwrap_or(0);
                total += d;
                over += u64::from(d > 16);
            }
        }
        (total as f64 / f64::from(rw * rh), over)
    };
    let (mean, over) = (ox.saturating_sub(2)..=ox + 2)
        .flat_map(|x| (oy.saturating_sub(2)..=oy + 2).map(move |y| (x, y)))
        .filter(|&(x, y)| x + rw <= window.width() && y + rh <= window.height())
        .map(|(x, y)| compare(x, y))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    // At 1:1 the preview is drawn on whole pixels, so the GPU should reproduce the CPU render
    // almost exactly (a level of rounding in the sRGB texture path at most).
    eprintln!("window vs CPU render: mean max-channel difference {mean:.2}, {over} pixels over 16");
    assert!(mean < 1.0, "mean max-channel difference {mean}");
    assert!(
        over * 1000 < u64::from(rw * rh),
        "{over} pixels differ by more than 16 levels"
    );
}
