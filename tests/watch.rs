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
            .args(["--settle-ms", "300", "--format", "png"])
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
        let deadline = Instant::now() + Duration::from_secs(30);
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
    w.wait_for("both files", |l| {
        l.iter().filter(|x| x.contains(" ok ")).count() >= 2
    });
    std::thread::sleep(Duration::from_millis(800));
    let lines = w.stop();
    assert!(
        !lines.iter().any(|l| l.contains("error")),
        "a file was attempted early: {lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" ok ")).count(),
        2,
        "{lines:#?}"
    );
    assert_eq!(outputs(&output), ["fast.png", "slow.png"]);
    let slow = image::open(output.join("slow.png")).unwrap();
    assert_eq!((slow.width(), slow.height()), (96, 96));
    assert_no_temp_files(&output);
}

#[test]
fn a_burst_of_files_is_processed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    let w = Watch::start(dir.path(), &input, &output, &[]);
    let bytes = png_bytes(3, 12);
    for i in 0..300 {
        std::fs::write(input.join(format!("f{i:03}.png")), &bytes).unwrap();
    }
    w.wait_for("300 files", |l| {
        l.iter().filter(|x| x.contains(" ok ")).count() >= 300
    });
    std::thread::sleep(Duration::from_millis(800));
    let ok = w.ok_lines();
    let lines = w.stop();
    assert_eq!(ok, 300, "{:#?}", &lines[..lines.len().min(20)]);
    assert_eq!(outputs(&output).len(), 300);
    assert_no_temp_files(&output);
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
