//! `opossum batch` end to end: a mixed folder of good and bad files, name collisions, the same
//! folder for input and output, kill -9 at several points then resume, SIGTERM, shards, and
//! the report. Every test checks the universal invariants: no panic, the exit code contract,
//! no temp or partial files, inputs unchanged.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, files_in, test_image};

const CHAIN: &str = "version = 1\n[[ops]]\nop = \"gaussian_blur\"\nsigma = 2.0\n[[ops]]\nop = \"adjust_colors\"\nbrightness = 1.1\n";

fn batch(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .arg("batch")
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    out
}

/// `opossum batch -c CHAIN -i INPUT -o OUTPUT EXTRA…`.
fn batch_io(dir: &Path, chain: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let io = [
        "-c",
        chain.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    batch(dir, &[&io[..], extra].concat())
}

fn write_chain(dir: &Path) -> PathBuf {
    let chain = dir.join("chain.toml");
    std::fs::write(&chain, CHAIN).unwrap();
    chain
}

/// Content hashes of every file in `dir`, to prove inputs are untouched.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_in(dir)
        .into_iter()
        .filter(|n| dir.join(n).is_file())
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

/// No temp files and no empty files anywhere under `dir`.
fn assert_clean(dir: &Path) {
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".opossum-tmp-"),
            "temp file left: {entry:?}"
        );
        // The journal and the folder lock are the batch's bookkeeping (the lock is empty).
        if !name.starts_with(".opossum-batch") {
            assert!(
                std::fs::metadata(&entry).unwrap().len() > 0,
                "empty file: {entry:?}"
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_mixed_folder_continues_past_bad_files_and_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    test_image(64, 48, 1, false)
        .save(input.join("good.png"))
        .unwrap();
    test_image(40, 30, 2, true)
        .save(input.join("sub/alpha.png"))
        .unwrap();
    image::DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(20, 10, |x, y| {
        image::Luma([(x * 3000 + y * 10) as u16])
    }))
    .save(input.join("grey16.png"))
    .unwrap();
    test_image(50, 50, 3, false)
        .to_rgb8()
        .save(input.join("photo.jpg"))
        .unwrap();
    let jpeg = std::fs::read(input.join("photo.jpg")).unwrap();
    std::fs::write(input.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(input.join("zero.png"), b"").unwrap();
    std::fs::write(input.join("text.jpg"), b"not an image at all").unwrap();
    std::fs::write(input.join("notes.txt"), b"ignored: not an image name").unwrap();
    std::fs::write(input.join(".hidden.png"), b"ignored").unwrap();
    std::fs::write(input.join("download.jpg.part"), b"ignored").unwrap();
    let before = snapshot(&input);
    let out_dir = dir.path().join("out");
    let chain = write_chain(dir.path());
    let report_path = dir.path().join("report.json");
    let out = batch_io(
        dir.path(),
        &chain,
        &input,
        &out_dir,
        &[
            "--format",
            "webp",
            "--recursive",
            "--report",
            report_path.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Each failure names the file, its category and a hint.
    for (name, category) in [
        ("truncated.jpg", "corrupt"),
        ("zero.png", "corrupt"),
        ("text.jpg", "unsupported"),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(name)),
            "{name} not reported: {stderr}"
        );
        let r = report(&report_path);
        let file = r["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["input"].as_str().unwrap().ends_with(name))
            .unwrap();
        assert_eq!(file["status"], "error");
        assert_eq!(file["category"], category, "{name}");
        assert!(!file["hint"].as_str().unwrap().is_empty());
    }
    let r = report(&report_path);
    assert_eq!(r["succeeded"], 4);
    assert_eq!(r["failed"], 3);
    assert_eq!(r["errors_by_category"]["corrupt"], 2);
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["p95_ms"].as_f64().unwrap() >= r["mean_ms"].as_f64().unwrap() * 0.5);
    let mut outputs: Vec<String> = walk(&out_dir)
        .iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".opossum-batch")
        })
        .map(|p| {
            p.strip_prefix(&out_dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    outputs.sort();
    assert_eq!(
        outputs,
        vec!["good.webp", "grey16.webp", "photo.webp", "sub/alpha.webp"]
    );
    for o in &outputs {
        image::open(out_dir.join(o)).unwrap();
    }
    assert_clean(&out_dir);
    assert_eq!(snapshot(&input), before, "inputs changed");

    // The same command again: finished files are skipped, failures retried (and fail again).
    let again = batch_io(
        dir.path(),
        &chain,
        &input,
        &out_dir,
        &[
            "--format",
            "webp",
            "--recursive",
            "--report",
            report_path.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(1));
    let r = report(&report_path);
    assert_eq!(
        (r["succeeded"].as_u64(), r["skipped"].as_u64()),
        (Some(0), Some(4))
    );
}

#[test]
fn collisions_and_the_same_folder_never_overwrite_anything() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    test_image(30, 20, 1, false)
        .save(folder.join("a.png"))
        .unwrap();
    test_image(30, 20, 2, false)
        .to_rgb8()
        .save(folder.join("a.jpg"))
        .unwrap();
    test_image(30, 20, 3, false)
        .save(folder.join("b.png"))
        .unwrap();
    let before = snapshot(&folder);
    let chain = write_chain(dir.path());
    let args = [
        "-c",
        chain.to_str().unwrap(),
        "-i",
        folder.to_str().unwrap(),
        "-o",
        folder.to_str().unwrap(),
    ];
    let out = batch(dir.path(), &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `same` format into the input folder: every name is taken by an input, so each output
    // gets a suffix, and the inputs are byte-for-byte unchanged.
    let names: Vec<String> = files_in(&folder)
        .into_iter()
        .filter(|n| !n.starts_with(".opossum-batch"))
        .collect();
    assert_eq!(
        names,
        ["a-2.jpg", "a-2.png", "a.jpg", "a.png", "b-2.png", "b.png"]
    );
    for (name, bytes) in &before {
        assert_eq!(&std::fs::read(folder.join(name)).unwrap(), bytes, "{name}");
    }
    // Run again: outputs of the first run are not taken as new inputs (6 images, the journal
    // and the folder lock).
    let out = batch(dir.path(), &args);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(files_in(&folder).len(), 8, "{:?}", files_in(&folder));
    assert_clean(&folder);
    // Another chain into the same folder: the first chain's outputs are not inputs either,
    // and each input's earlier output is replaced by its new render (a journal more).
    let first_output = std::fs::read(folder.join("a-2.png")).unwrap();
    let other = dir.path().join("other.toml");
    std::fs::write(&other, CHAIN.replace("sigma = 2.0", "sigma = 4.0")).unwrap();
    let out = batch_io(dir.path(), &other, &folder, &folder, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(files_in(&folder).len(), 9, "{:?}", files_in(&folder));
    assert_ne!(std::fs::read(folder.join("a-2.png")).unwrap(), first_output);
    for (name, bytes) in &before {
        assert_eq!(&std::fs::read(folder.join(name)).unwrap(), bytes, "{name}");
    }
    assert_clean(&folder);

    // Two inputs mapping to one output name in another folder both get written, and a file
    // Opossum did not write there keeps its name and bytes.
    let out_dir = dir.path().join("webp");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("a_web.webp"), b"the user's own file").unwrap();
    let out = batch(
        dir.path(),
        &[
            "-c",
            chain.to_str().unwrap(),
            "-i",
            folder.join("a.png").to_str().unwrap(),
            folder.join("a.jpg").to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "--format",
            "webp",
            "--name-template",
            "{stem}_web.{ext}",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let names: Vec<String> = files_in(&out_dir)
        .into_iter()
        .filter(|n| !n.starts_with(".opossum-batch"))
        .collect();
    assert_eq!(names, ["a_web-2.webp", "a_web-3.webp", "a_web.webp"]);
    assert_eq!(
        std::fs::read(out_dir.join("a_web.webp")).unwrap(),
        b"the user's own file"
    );

    // An output folder inside a recursively read input folder is not read as input, whatever
    // wrote what is there.
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    test_image(30, 20, 4, false)
        .save(tree.join("c.png"))
        .unwrap();
    let nested = tree.join("web");
    for chain in [&chain, &other] {
        let out = batch_io(dir.path(), chain, &tree, &nested, &["--recursive"]);
        assert_eq!(out.status.code(), Some(0));
    }
    let mut images: Vec<PathBuf> = walk(&tree)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    images.sort();
    assert_eq!(images, [tree.join("c.png"), nested.join("c.png")]);
}

#[test]
fn a_closed_stdout_and_stderr_neither_stop_nor_crash_a_batch() {
    // `opossum batch … 2>&1 | head -2`: the reader goes away before the batch ends.
    let dir = tempfile::tempdir().unwrap();
    let input = many_inputs(dir.path(), 12, 40);
    std::fs::write(input.join("broken.png"), b"not an image").unwrap();
    let chain = write_chain(dir.path());
    let out_dir = dir.path().join("out");
    let report_path = dir.path().join("report.json");
    let mut child = Command::new(bin())
        .args(["batch", "-c"])
        .arg(&chain)
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&out_dir)
        .arg("--report")
        .arg(&report_path)
        .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    // One file failed: exit 1, not a crash (101) or a signal.
    assert_eq!(status.code(), Some(1));
    assert_eq!(outputs(&out_dir).len(), 12);
    let report = report(&report_path);
    assert_eq!(report["succeeded"], 12, "{report}");
    assert_clean(&out_dir);
}

fn many_inputs(dir: &Path, n: usize, side: u32) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..n {
        test_image(side, side * 3 / 4, i as u64, false)
            .to_rgb8()
            .save(input.join(format!("img{i:03}.png")))
            .unwrap();
    }
    input
}

/// Outputs in `dir` under final names (names and decoded pixels): the journal, the lock and
/// the temp files a killed run leaves until the next run are not outputs.
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_in(dir)
        .into_iter()
        .filter(|n| !n.starts_with(".opossum-batch") && !n.starts_with(".opossum-tmp-"))
        .map(|n| {
            let pixels = image::open(dir.join(&n))
                .unwrap_or_else(|e| panic!("{n}: {e}"))
                .to_rgba8()
                .into_raw();
            (n, pixels)
        })
        .collect()
}

/// `--skip-existing` skips an input whose output name holds a finished file, whoever wrote
/// it, and keeps that file; an empty file is not finished, and is not replaced either.
#[test]
fn skip_existing_skips_finished_files_of_any_origin_but_not_empty_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let chain = write_chain(d);
    let input = many_inputs(d, 3, 40);
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("img000.png"), b"made by another tool").unwrap();
    std::fs::write(out.join("img001.png"), b"").unwrap();
    let report_path = d.join("r.json");
    let run = batch_io(
        d,
        &chain,
        &input,
        &out,
        &["--skip-existing", "--report", report_path.to_str().unwrap()],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("img000.png")).unwrap(),
        b"made by another tool"
    );
    assert_eq!(std::fs::read(out.join("img001.png")).unwrap(), b"");
    let mut names = files_in(&out);
    names.retain(|n| !n.starts_with(".opossum-batch"));
    assert_eq!(
        names,
        ["img000.png", "img001-2.png", "img001.png", "img002.png"]
    );
    let r = report(&report_path);
    assert_eq!(r["skipped"], 1, "{r}");
    assert_eq!(r["succeeded"], 2, "{r}");
}

#[test]
fn kill_9_at_several_points_then_resume_finishes_everything_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = many_inputs(dir.path(), 24, 400);
    let chain = write_chain(dir.path());
    // The reference: one uninterrupted run.
    let reference_dir = dir.path().join("reference");
    let started = Instant::now();
    let out = batch_io(
        dir.path(),
        &chain,
        &input,
        &reference_dir,
        &["--format", "png"],
    );
    // Kill points are fractions of this run's time, so they fall inside the batch on a slow
    // debug build and on a fast release build alike.
    let whole = started.elapsed();
    assert_eq!(out.status.code(), Some(0));
    let reference = outputs(&reference_dir);
    assert_eq!(reference.len(), 24);

    let out_dir = dir.path().join("out");
    let args = [
        "batch",
        "-c",
        chain.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--format",
        "png",
        "--concurrency",
        "2",
    ];
    let mut kills = 0;
    for percent in [8u32, 30, 18, 60, 12, 45] {
        let delay_ms = whole.as_millis() as u64 * u64::from(percent) / 100;
        let mut child = Command::new(bin())
            .args(args)
            .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // Whatever is under a final name is complete and correct.
        for (name, pixels) in outputs(&out_dir) {
            let expected = &reference.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(&pixels, expected, "{name} after a kill at {delay_ms} ms");
        }
    }
    assert!(kills >= 2, "the batch finished before it could be killed");
    let report_path = dir.path().join("report.json");
    let out = batch(
        dir.path(),
        &[&args[1..], &["--report", report_path.to_str().unwrap()]].concat(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(outputs(&out_dir), reference);
    let r = report(&report_path);
    // Files finished before the kills were not redone.
    assert!(r["skipped"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(
        r["skipped"].as_u64().unwrap() + r["succeeded"].as_u64().unwrap(),
        24
    );
    assert_clean(&out_dir);
}

#[test]
fn sigterm_cancels_quickly_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let input = many_inputs(dir.path(), 30, 700);
    let chain = write_chain(dir.path());
    let out_dir = dir.path().join("out");
    let child = Command::new(bin())
        .args([
            "batch",
            "-c",
            chain.to_str().unwrap(),
            "-i",
            input.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "--format",
            "jpeg",
        ])
        .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Signal once the batch is under way (its first output exists), however fast it runs.
    let waiting = Instant::now();
    let started = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".jpg") && !name.starts_with(".opossum-tmp-")
            })
        })
    };
    while !started(&out_dir) {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "no output appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        sent.elapsed()
    );
    assert_eq!(output.status.code(), Some(130));
    assert_clean(&out_dir);
    // The same command finishes the rest.
    let out = batch_io(dir.path(), &chain, &input, &out_dir, &["--format", "jpeg"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(outputs(&out_dir).len(), 30);
}

#[test]
fn shards_running_at_once_into_one_folder_split_the_inputs_without_overlap_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let input = many_inputs(dir.path(), 20, 16);
    // Two inputs that map to one output name, whichever shards they land in.
    test_image(16, 12, 99, false)
        .to_rgb8()
        .save(input.join("img000.jpg"))
        .unwrap();
    let chain = write_chain(dir.path());
    let out_dir = dir.path().join("out");
    let pattern = format!("{}/img*", input.display());
    let children: Vec<_> = (1..=3)
        .map(|k| {
            Command::new(bin())
                .args([
                    "batch",
                    "-c",
                    chain.to_str().unwrap(),
                    "-i",
                    &pattern,
                    "-o",
                    out_dir.to_str().unwrap(),
                    "--format",
                    "webp",
                    "--shard",
                    &format!("{k}/3"),
                ])
                .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
                .output()
                .unwrap()
        })
        .collect();
    for (k, out) in children.iter().enumerate() {
        assert_eq!(
            out.status.code(),
            Some(0),
            "shard {}: {}",
            k + 1,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let names: Vec<String> = files_in(&out_dir)
        .into_iter()
        .filter(|n| n.ends_with(".webp"))
        .collect();
    let mut expected: Vec<String> = (0..20).map(|i| format!("img{i:03}.webp")).collect();
    expected.push("img000-2.webp".to_owned());
    expected.sort();
    assert_eq!(names, expected);
    assert_clean(&out_dir);
}

#[test]
fn usage_errors_exit_2_and_stop_on_error_stops() {
    let dir = tempfile::tempdir().unwrap();
    let input = many_inputs(dir.path(), 4, 16);
    std::fs::write(input.join("aaa_bad.png"), b"junk").unwrap();
    let chain = write_chain(dir.path());
    let out_dir = dir.path().join("out");
    let glob_nothing = format!("{}/*.xyz", input.display());
    let base = [
        "-c",
        chain.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ];
    for (extra, needle) in [
        (vec!["-i", "/no/such/folder"], "no such file or folder"),
        (
            vec!["-i", input.to_str().unwrap(), "--format", "avif"],
            "--format",
        ),
        (
            vec![
                "-i",
                input.to_str().unwrap(),
                "--name-template",
                "out.{ext}",
            ],
            "name template",
        ),
        (
            vec!["-i", input.to_str().unwrap(), "--shard", "4/3"],
            "K <= N",
        ),
        (vec!["-i", &glob_nothing], "no file matches"),
    ] {
        let out = batch(dir.path(), &[&base[..], &extra[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Nothing is created for a batch that cannot start.
        assert!(!out_dir.exists(), "{extra:?} created the output folder");
    }
    // A chain file that is not there is a usage error too, and says where to look.
    let out = batch(
        dir.path(),
        &[
            "-c",
            "/no/such/chain.toml",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("chain.toml") && stderr.contains("category: usage"),
        "{stderr}"
    );
    // --on-error stop with one worker: the bad file comes first, nothing after it starts.
    let report_path = dir.path().join("r.json");
    let out = batch(
        dir.path(),
        &[
            &base[..],
            &[
                "-i",
                input.to_str().unwrap(),
                "--on-error",
                "stop",
                "--concurrency",
                "1",
                "--report",
                report_path.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    let r = report(&report_path);
    assert_eq!(
        (r["failed"].as_u64(), r["succeeded"].as_u64()),
        (Some(1), Some(0))
    );
    // An output "folder" that is a file: a clear error naming it, nothing written.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = batch_io(dir.path(), &chain, &input, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a-file"));
}

#[test]
fn two_batches_with_the_same_settings_can_share_an_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = many_inputs(dir.path(), 12, 64);
    let chain = write_chain(dir.path());
    let out_dir = dir.path().join("out");
    let spawn = |files: Vec<String>| {
        let mut cmd = Command::new(bin());
        cmd.args([
            "batch",
            "-c",
            chain.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
            "-i",
        ])
        .args(files)
        .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let names: Vec<String> = (0..12)
        .map(|i| {
            input
                .join(format!("img{i:03}.png"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let a = spawn(names[..6].to_vec());
    let b = spawn(names[6..].to_vec());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(outputs(&out_dir).len(), 12);
    // A rerun over everything finds all twelve done, whichever journal recorded them.
    let report_path = dir.path().join("r.json");
    let out = batch_io(
        dir.path(),
        &chain,
        &input,
        &out_dir,
        &["--report", report_path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report(&report_path)["skipped"], 12);
    assert_clean(&out_dir);
}

#[test]
fn a_read_only_or_full_output_folder_gives_clear_errors_and_no_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let chain = write_chain(dir.path());
    // Noise: each output is about 108 KB even after the blur, so 256 KiB holds two.
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut rng = common::Rng::new(7);
    for i in 0..8 {
        image::RgbImage::from_fn(320, 240, |_, _| {
            let v = rng.next_u64();
            image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
        })
        .save(input.join(format!("img{i}.png")))
        .unwrap();
    }
    let before = snapshot(&input);
    // Read-only: refused before any work, exit 2, the message names the folder.
    let Some(ro) = common::Tmpfs::mount(&dir.path().join("ro"), "ro,size=1m") else {
        return;
    };
    let out = batch_io(dir.path(), &chain, &input, &ro.path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&*ro.path.to_string_lossy())
            && stderr.contains("Read-only")
            && stderr.contains("writing in the output folder")
            && !stderr.contains("journal"),
        "{stderr}"
    );
    // Full: the files that do not fit fail with the reason (exit 1), every file written is
    // whole, no temp files remain.
    let full = common::Tmpfs::mount(&dir.path().join("full"), "size=256k").unwrap();
    let first_report = dir.path().join("report.json");
    let out = batch_io(
        dir.path(),
        &chain,
        &input,
        &full.path,
        &[
            "--format",
            "png",
            "--report",
            first_report.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let first = report(&first_report);
    let failed = first["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "error")
        .collect::<Vec<_>>();
    assert!(!failed.is_empty(), "256 KiB held every output: {first:#}");
    for f in &failed {
        let message = f["message"].as_str().unwrap();
        assert!(message.contains("No space left"), "{message}");
        assert!(
            message.contains("img"),
            "the message names the file: {message}"
        );
    }
    let written = outputs(&full.path);
    assert_eq!(written.len() + failed.len(), 8);
    assert_clean(&full.path);
    assert_eq!(snapshot(&input), before);
    // With room again, the same command finishes the rest without redoing the others.
    full.remount("size=8m");
    let report_path = dir.path().join("report2.json");
    let out = batch_io(
        dir.path(),
        &chain,
        &input,
        &full.path,
        &["--format", "png", "--report", report_path.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = report(&report_path);
    assert_eq!(again["succeeded"], failed.len(), "{again:#}");
    assert_eq!(again["skipped"], written.len(), "{again:#}");
    assert_eq!(outputs(&full.path).len(), 8);
    assert_clean(&full.path);
}

/// `--lossless` writes lossless WebP (with `--format same`, for the WebP inputs), leaves other
/// formats as they are, counts as a setting of its own (a lossy run after it re-renders), and
/// is refused with a format that cannot be lossless.
#[test]
fn lossless_makes_lossless_webp_and_is_a_setting_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let image = test_image(48, 32, 3, false);
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(
            image.to_rgba8().as_raw(),
            48,
            32,
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
    std::fs::write(input.join("a.webp"), &webp).unwrap();
    image.save(input.join("b.jpg")).unwrap();
    let chain = write_chain(dir.path());
    let out_dir = dir.path().join("out");
    let kind = |name: &str| {
        let bytes = std::fs::read(out_dir.join(name)).unwrap();
        (bytes[12..16]).to_vec()
    };
    let before = snapshot(&input);
    let out = batch_io(dir.path(), &chain, &input, &out_dir, &["--lossless"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(kind("a.webp"), b"VP8L", "lossless WebP");
    assert_eq!(
        &std::fs::read(out_dir.join("b.jpg")).unwrap()[..2],
        [0xff, 0xd8]
    );
    // Lossy is another setting: the same command without --lossless renders again.
    let out = batch_io(dir.path(), &chain, &input, &out_dir, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(kind("a.webp"), b"VP8 ", "lossy WebP");
    for format in ["jpeg", "svg"] {
        let out = batch_io(
            dir.path(),
            &chain,
            &input,
            &dir.path().join(format),
            &["--format", format, "--lossless"],
        );
        assert_eq!(out.status.code(), Some(2), "{format}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--lossless"), "{format}: {stderr}");
        assert!(!dir.path().join(format).exists(), "{format}: nothing made");
    }
    assert_eq!(snapshot(&input), before);
    assert_clean(&out_dir);
}
