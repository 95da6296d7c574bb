//! `opossum watch` end to end, as a child process: a slow writer is never taken early, a
//! temp-then-rename writer is taken at the rename, a burst of hundreds of files is processed
//! exactly once, a restart processes only what arrived or changed meanwhile, files deleted while
//! settling are forgotten, a symlink loop does not hang it, and outputs inside the watched tree
//! are never taken as inputs. Universal invariants: no panic, no temp or partial files.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, files_in, test_image};

const CHAIN: &str = "version = 1\n[[ops]]\nop = \"adjust_colors\"\nbrightness = 1.1\n";

struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(dir: &Path, input: &Path, output: &Path, extra: &[&str]) -> Watch {
        let chain = dir.join("chain.toml");
        std::fs::write(&chain, CHAIN).unwrap();
        let mut child = Command::new(bin())
            .args(["watch", "-c", chain.to_str().unwrap(), "-i"])
            .arg(input)
            .arg("-o")
            .arg(output)
            .args(["--settle-ms", "300"])
            .args(if extra.contains(&"--format") {
                &[][..]
            } else {
                &["--format", "png"][..]
            })
            .args(extra)
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let w = Watch { child, lines };
        w.wait_for("the watcher to start", |l| {
            l.iter().any(|x| x.contains("watching"))
        });
        w
    }

    fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        self.wait_for_within(what, Duration::from_secs(30), done);
    }

    fn wait_for_within(&self, what: &str, limit: Duration, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.lines.lock().unwrap()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ok_lines(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" ok "))
            .count()
    }

    /// SIGTERM, then every line it printed.
    fn stop(mut self) -> Vec<String> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "{:#?}", self.lines.lock().unwrap());
                break;
            }
            assert!(Instant::now() < deadline, "the watcher did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        std::thread::sleep(Duration::from_millis(50));
        self.lines.lock().unwrap().clone()
    }
}

fn png_bytes(seed: u64, side: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    test_image(side, side, seed, false)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

fn outputs(dir: &Path) -> Vec<String> {
    files_in(dir)
        .into_iter()
        .filter(|n| n.ends_with(".png"))
        .collect()
}

fn assert_no_temp_files(dir: &Path) {
    for n in files_in(dir) {
        assert!(!n.starts_with(".opossum-tmp-"), "temp file left: {n}");
    }
}

#[test]
fn slow_and_renaming_writers_are_taken_once_and_only_when_complete() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    let w = Watch::start(dir.path(), &input, &output, &[]);
    // A copy that creates its target first and writes it later: empty for well over the
    // settle window (the slow writer below takes about a second).
    std::fs::File::create(input.join("late.png")).unwrap();
    // A slow writer: 4 KiB every 60 ms (well past the settle window in total).
    let bytes = png_bytes(1, 96);
    let mut file = std::fs::File::create(input.join("slow.png")).unwrap();
    for chunk in bytes.chunks(4096) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    drop(file);
    // A temp-then-rename writer.
    std::fs::write(input.join("fast.png.part"), png_bytes(2, 40)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    std::fs::rename(input.join("fast.png.part"), input.join("fast.png")).unwrap();
    std::fs::write(input.join("late.png"), png_bytes(3, 30)).unwrap();
    w.wait_for("the three files", |l| {
        l.iter().filter(|x| x.contains(" ok ")).count() >= 3
    });
    std::thread::sleep(Duration::from_millis(800));
    let lines = w.stop();
    assert!(
        !lines.iter().any(|l| l.contains("error")),
        "a file was attempted early: {lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" ok ")).count(),
        3,
        "{lines:#?}"
    );
    assert_eq!(outputs(&output), ["fast.png", "late.png", "slow.png"]);
    let slow = image::open(output.join("slow.png")).unwrap();
    assert_eq!((slow.width(), slow.height()), (96, 96));
    assert_no_temp_files(&output);
}

/// Lowers the kernel's inotify queue for watchers created while it lives, restoring it on
/// drop (only new inotify instances take the value, so the lowered window is short).
struct SmallInotifyQueue {
    previous: Option<String>,
}

const QUEUE_SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";

impl SmallInotifyQueue {
    fn set(events: u32) -> SmallInotifyQueue {
        if !common::is_root() {
            eprintln!("note: not root, the inotify queue keeps its size (CI runs as root)");
            return SmallInotifyQueue { previous: None };
        }
        let previous = std::fs::read_to_string(QUEUE_SYSCTL).unwrap();
        std::fs::write(QUEUE_SYSCTL, events.to_string()).unwrap();
        SmallInotifyQueue {
            previous: Some(previous),
        }
    }
}

impl Drop for SmallInotifyQueue {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            let _ = std::fs::write(QUEUE_SYSCTL, previous.trim());
        }
    }
}

#[test]
fn a_burst_of_1000_files_overflowing_the_event_queue_is_processed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    // A 16-event queue: a burst of 1,000 files overflows it, so the watcher must notice the
    // overflow and rescan instead of losing files.
    let queue = SmallInotifyQueue::set(16);
    let w = Watch::start(dir.path(), &input, &output, &[]);
    let lowered = queue.previous.is_some();
    drop(queue);
    let bytes = png_bytes(3, 12);
    // The watcher is stopped (SIGSTOP) during the burst, as a busy or swapped-out process
    // would be, so the kernel queue overflows however fast the watcher drains it otherwise.
    let pid = w.child.id().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    for i in 0..1000 {
        std::fs::write(input.join(format!("f{i:04}.png")), &bytes).unwrap();
    }
    signal("-CONT");
    w.wait_for_within("1000 files", Duration::from_secs(120), |l| {
        l.iter().filter(|x| x.contains(" ok ")).count() >= 1000
    });
    std::thread::sleep(Duration::from_millis(800));
    let ok = w.ok_lines();
    let lines = w.stop();
    assert_eq!(ok, 1000, "{:#?}", &lines[..lines.len().min(20)]);
    if lowered {
        assert!(
            lines.iter().any(|l| l.contains("queue overflow")),
            "no overflow seen with a 16-event queue"
        );
    }
    assert_eq!(outputs(&output).len(), 1000);
    assert_no_temp_files(&output);
}

#[test]
fn a_deleted_and_recreated_folder_is_watched_again_and_failures_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    let quarantine = dir.path().join("quarantine");
    std::fs::create_dir_all(&input).unwrap();
    let w = Watch::start(
        dir.path(),
        &input,
        &output,
        &["--quarantine", quarantine.to_str().unwrap()],
    );
    std::fs::remove_dir_all(&input).unwrap();
    w.wait_for("the loss to be reported", |l| {
        l.iter().any(|x| x.contains("is gone"))
    });
    std::fs::create_dir_all(&input).unwrap();
    w.wait_for("the folder to be watched again", |l| {
        l.iter().filter(|x| x.contains("watching")).count() >= 2
    });
    std::fs::write(input.join("back.png"), png_bytes(4, 20)).unwrap();
    let bad = b"\xff\xd8\xff\xe0 cut short";
    std::fs::write(input.join("bad.jpg"), bad).unwrap();
    w.wait_for("both files", |l| {
        l.iter()
            .any(|x| x.contains(" ok ") && x.contains("back.png"))
            && l.iter()
                .any(|x| x.contains(" error ") && x.contains("bad.jpg"))
    });
    let lines = w.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" error ") && l.contains("moved to")),
        "{lines:#?}"
    );
    assert_eq!(outputs(&output), ["back.png"]);
    // The failing input was moved, intact, not lost; the reason is in the error log.
    assert!(!input.join("bad.jpg").exists());
    assert_eq!(std::fs::read(quarantine.join("bad.jpg")).unwrap(), bad);
    let log = std::fs::read_to_string(output.join(opossum::watch::ERROR_LOG)).unwrap();
    assert!(log.contains("bad.jpg") && log.contains("corrupt"), "{log}");
    assert_no_temp_files(&output);
}

#[test]
fn a_read_only_or_full_output_folder_gives_clear_errors_and_no_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // Read-only: the watch refuses to start, naming the folder.
    let Some(ro) = common::Tmpfs::mount(&dir.path().join("ro"), "ro,size=1m") else {
        return;
    };
    let chain = dir.path().join("chain.toml");
    std::fs::write(&chain, CHAIN).unwrap();
    let out = Command::new(bin())
        .args(["watch", "-c", chain.to_str().unwrap(), "-i"])
        .arg(&input)
        .arg("-o")
        .arg(&ro.path)
        .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&*ro.path.to_string_lossy()) && stderr.contains("Read-only"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Full: files that do not fit fail with the reason; the watch goes on; nothing partial.
    let full = common::Tmpfs::mount(&dir.path().join("full"), "size=96k").unwrap();
    let w = Watch::start(dir.path(), &input, &full.path, &[]);
    for i in 0..6 {
        // Noise compresses badly: each output is about 48 KiB.
        std::fs::write(input.join(format!("n{i}.png")), png_bytes(10 + i, 128)).unwrap();
    }
    w.wait_for("six results", |l| {
        l.iter()
            .filter(|x| x.contains(" ok ") || x.contains(" error "))
            .count()
            >= 6
    });
    let lines = w.stop();
    let failed: Vec<&String> = lines.iter().filter(|l| l.contains(" error ")).collect();
    assert!(!failed.is_empty(), "96 KiB held every output: {lines:#?}");
    assert!(
        failed.iter().all(|l| l.contains("No space left")),
        "{failed:#?}"
    );
    for name in outputs(&full.path) {
        let img = image::open(full.path.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.width(), 128);
    }
    assert_no_temp_files(&full.path);
}

#[test]
fn a_restart_processes_only_what_arrived_or_changed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    // Outputs inside the watched tree: never taken as inputs.
    let output = input.join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.png"), png_bytes(4, 20)).unwrap();
    std::fs::write(input.join("b.png"), png_bytes(5, 20)).unwrap();
    let w = Watch::start(dir.path(), &input, &output, &["--recursive"]);
    w.wait_for("the backlog", |l| {
        l.iter().filter(|x| x.contains(" ok ")).count() >= 2
    });
    std::thread::sleep(Duration::from_millis(600));
    let lines = w.stop();
    assert_eq!(
        lines.iter().filter(|l| l.contains(" ok ")).count(),
        2,
        "{lines:#?}"
    );

    // While stopped: one new file, one changed, one only touched (same content), one unchanged.
    std::fs::write(input.join("c.png"), png_bytes(6, 20)).unwrap();
    std::fs::write(input.join("a.png"), png_bytes(7, 24)).unwrap();
    let b = std::fs::read(input.join("b.png")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(input.join("b.png"), &b).unwrap();
    let w = Watch::start(dir.path(), &input, &output, &["--recursive"]);
    w.wait_for("new and changed files", |l| {
        l.iter().filter(|x| x.contains(" ok ")).count() >= 2
    });
    std::thread::sleep(Duration::from_millis(1000));
    let lines = w.stop();
    let ok: Vec<&String> = lines.iter().filter(|l| l.contains(" ok ")).collect();
    assert_eq!(ok.len(), 2, "{lines:#?}");
    assert!(ok.iter().any(|l| l.contains("a.png")) && ok.iter().any(|l| l.contains("c.png")));
    assert_eq!(outputs(&output), ["a.png", "b.png", "c.png"]);
    let a = image::open(output.join("a.png")).unwrap();
    assert_eq!(a.width(), 24, "the changed file was rendered again");
    assert_no_temp_files(&output);
}

#[test]
fn the_same_folder_for_input_and_output_renders_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.png"), png_bytes(8, 20)).unwrap();
    let w = Watch::start(dir.path(), &folder, &folder, &[]);
    w.wait_for("the backlog", |l| l.iter().any(|x| x.contains(" ok ")));
    std::fs::write(folder.join("b.png"), png_bytes(9, 20)).unwrap();
    w.wait_for("the new file", |l| {
        l.iter().filter(|x| x.contains(" ok ")).count() >= 2
    });
    // Time for the outputs' own events to settle: they must not be taken as inputs.
    std::thread::sleep(Duration::from_millis(1500));
    let lines = w.stop();
    assert_eq!(
        lines.iter().filter(|l| l.contains(" ok ")).count(),
        2,
        "{lines:#?}"
    );
    assert_eq!(outputs(&folder), ["a-2.png", "a.png", "b-2.png", "b.png"]);
    assert_no_temp_files(&folder);
}

/// With each input's own format and its own name, an input whose format Opossum does not
/// write (a GIF, written as PNG) fails with the reason, and nothing misnamed is written.
#[test]
fn a_name_that_would_say_another_format_fails_that_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.png"), png_bytes(3, 20)).unwrap();
    image::RgbaImage::from_pixel(8, 6, image::Rgba([10, 200, 30, 255]))
        .save(input.join("b.gif"))
        .unwrap();
    let w = Watch::start(
        dir.path(),
        &input,
        &output,
        &["--format", "same", "--name-template", "{name}"],
    );
    w.wait_for("both files", |l| {
        l.iter().any(|x| x.contains(" ok ")) && l.iter().any(|x| x.contains(" error "))
    });
    let lines = w.stop();
    let error = lines.iter().find(|l| l.contains(" error ")).unwrap();
    assert!(
        error.contains("b.gif") && error.contains("written as PNG"),
        "{lines:#?}"
    );
    // The output folder holds the one output and the error log that names the GIF.
    let mut names = files_in(&output);
    names.retain(|n| !n.starts_with('.'));
    assert_eq!(names, ["a.png", "opossum-watch-errors.log"]);
    let log = std::fs::read_to_string(output.join("opossum-watch-errors.log")).unwrap();
    assert!(log.contains("b.gif"), "{log}");
    assert_no_temp_files(&output);
}

#[test]
fn lossless_writes_lossless_webp() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.png"), png_bytes(4, 20)).unwrap();
    let w = Watch::start(
        dir.path(),
        &input,
        &output,
        &["--format", "webp", "--lossless"],
    );
    w.wait_for("the file", |l| l.iter().any(|x| x.contains(" ok ")));
    w.stop();
    let bytes = std::fs::read(output.join("a.webp")).unwrap();
    assert_eq!(&bytes[12..16], b"VP8L", "lossless WebP");
    assert_no_temp_files(&output);
}

#[test]
fn deleted_while_settling_and_symlink_loops_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&input, input.join("sub/loop")).unwrap();
    let w = Watch::start(dir.path(), &input, &output, &["--recursive"]);
    std::fs::write(input.join("gone.png"), png_bytes(8, 16)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_file(input.join("gone.png")).unwrap();
    std::fs::write(input.join("sub/kept.png"), png_bytes(9, 16)).unwrap();
    w.wait_for("the kept file", |l| {
        l.iter().any(|x| x.contains("kept.png"))
    });
    std::thread::sleep(Duration::from_millis(600));
    let lines = w.stop();
    assert!(!lines.iter().any(|l| l.contains("gone.png")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("error")), "{lines:#?}");
    let produced: Vec<PathBuf> = files_in(&output.join("sub"))
        .into_iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(produced, [PathBuf::from("kept.png")]);
}
