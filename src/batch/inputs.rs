//! The files of a batch: inputs gathered from folders, files and glob patterns, filtered
//! (image extensions, no hidden or partial names), sorted, split by `--shard`, and given output
//! names from the template, with collisions resolved deterministically and input files never
//! chosen as outputs.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::encode::OutputFormat;

/// Extensions a folder scan picks up (files named explicitly are taken whatever their name).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "webp", "tif", "tiff", "gif", "bmp",
];

/// Names that are never inputs: hidden files and the partial files of downloads and editors.
pub fn ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".tmp", ".part", ".crdownload", ".partial", ".swp"]
            .iter()
            .any(|s| name.to_ascii_lowercase().ends_with(s))
}

/// Whether `path` ends in one of [`IMAGE_EXTENSIONS`] (any case).
pub(crate) fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// One input found: its path and where it sits relative to the folder it was found in (its
/// output keeps that relative folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The file.
    pub path: PathBuf,
    /// Relative path under its root (just the file name for files named directly).
    pub rel: PathBuf,
}

/// Where each `--input` argument leads: folders (recursively when `recursive`), glob patterns
/// and files. An argument that matches nothing is an error (a typo should not look like an
/// empty success).
pub fn gather(args: &[PathBuf], recursive: bool) -> Result<Vec<Input>> {
    let mut found = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        let before = found.len();
        if arg.is_dir() {
            walk(arg, arg, recursive, &mut found, &mut HashSet::new())?;
        } else if arg.is_file() {
            found.push(Input {
                path: arg.clone(),
                rel: PathBuf::from(arg.file_name().unwrap_or_default()),
            });
        } else if text.contains(['*', '?', '[']) {
            let paths = glob::glob(&text).map_err(|e| Error::Usage {
                reason: format!("--input {text}: not a valid pattern: {e}"),
                path: None,
            })?;
            for path in paths.flatten() {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if path.is_file() && !ignored_name(&name) {
                    found.push(Input {
                        rel: PathBuf::from(path.file_name().unwrap_or_default()),
                        path,
                    });
                }
            }
            if found.len() == before {
                return Err(Error::Usage {
                    reason: format!("--input {text}: no file matches this pattern"),
                    path: None,
                });
            }
        } else {
            return Err(Error::Usage {
                reason: "--input: no such file or folder".to_owned(),
                path: Some(arg.clone()),
            });
        }
    }
    // The same file named twice (a folder and a pattern) is processed once.
    let mut seen = HashSet::new();
    found.retain(|i| seen.insert(std::fs::canonicalize(&i.path).unwrap_or(i.path.clone())));
    found.sort_by(|a, b| a.rel.cmp(&b.rel).then(a.path.cmp(&b.path)));
    Ok(found)
}

fn walk(
    root: &Path,
    dir: &Path,
    recursive: bool,
    found: &mut Vec<Input>,
    visited: &mut HashSet<PathBuf>,
) -> Result<()> {
    // Symlink loops: each real folder is entered once.
    let real = std::fs::canonicalize(dir).map_err(|e| Error::io("reading the folder", dir, e))?;
    if !visited.insert(real) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("reading the folder", dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if ignored_name(&name) {
            continue;
        }
        // `metadata` follows symlinks; FIFOs and devices are neither files nor folders.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if recursive {
                walk(root, &path, recursive, found, visited)?;
            }
        } else if meta.is_file() && has_image_extension(&path) {
            found.push(Input {
                rel: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                path,
            });
        }
    }
    Ok(())
}

/// `--shard K/N`: which inputs this machine takes. The choice depends only on each input's
/// relative path (a stable hash), so N machines given the same inputs split them without
/// overlap or gaps, and adding files does not reshuffle the others.
pub fn in_shard(input: &Input, shard: Option<(u32, u32)>) -> bool {
    let Some((k, n)) = shard else { return true };
    // FNV-1a over the path bytes: stable across runs, platforms and Rust versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.rel.to_string_lossy().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % u64::from(n) == u64::from(k - 1)
}

/// Parse `K/N` (1 ≤ K ≤ N).
pub fn parse_shard(text: &str) -> std::result::Result<(u32, u32), String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("{text}: expected K/N, e.g. 2/8"))?;
    let k: u32 = k
        .trim()
        .parse()
        .map_err(|_| format!("{text}: K is not a number"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{text}: N is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("{text}: need 1 <= K <= N"));
    }
    Ok((k, n))
}

/// Check a name template (`--name-template`, the panels' file names): it must name each
/// output after its input, stay in the output folder, and end in `{ext}` or the extension of
/// the format written.
pub fn check_template(template: &str, format: crate::batch::FormatChoice) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::Usage {
            reason: format!("name template {template:?}: {reason}"),
            path: None,
        })
    };
    if !template.contains("{stem}") && !template.contains("{name}") {
        return bad("use {stem} or {name}, or every output gets the same name");
    }
    if template.contains(['/', '\\']) || template.contains("..") {
        return bad("a name, not a path (outputs keep their input's relative folder)");
    }
    let rest = template
        .replace("{stem}", "")
        .replace("{name}", "")
        .replace("{ext}", "")
        .replace("{srcext}", "");
    if rest.contains(['{', '}']) {
        return bad("known fields are {stem}, {name}, {ext} and {srcext}");
    }
    // The input's extension (`{stem}.{srcext}`, `{name}`) as the output's: right only when
    // each input keeps its format.
    let last = template.rsplit_once('.').map_or(template, |(_, ext)| ext);
    if (last.contains("{srcext}") || last.ends_with("{name}"))
        && let crate::batch::FormatChoice::Fixed(chosen) = format
    {
        return bad(&format!(
            "ends in the input's extension, but every output is {}; end it with .{{ext}} or .{}",
            chosen.name(),
            chosen.extension()
        ));
    }
    // A fixed extension (`{stem}.png`) must name the format written: a JPEG named .png
    // misleads every program that opens it.
    if let Some((_, literal)) = template.rsplit_once('.')
        && !literal.contains(['{', '}'])
        && let Some(named) = OutputFormat::from_name(literal)
    {
        use crate::batch::FormatChoice;
        match format {
            FormatChoice::Fixed(chosen) if chosen == named => {}
            FormatChoice::Fixed(chosen) => {
                return bad(&format!(
                    "names {} files but the format is {}; end it with .{{ext}} or .{}",
                    named.name(),
                    chosen.name(),
                    chosen.extension()
                ));
            }
            FormatChoice::Same => {
                return bad(&format!(
                    "names every output .{literal} but the format is each input's own \
                     (same); end it with .{{ext}} or choose a format"
                ));
            }
        }
    }
    Ok(())
}

/// The format `input` is written in: the fixed one, or its own where Opossum writes it (else
/// PNG).
pub fn output_format(input: &Path, choice: crate::batch::FormatChoice) -> OutputFormat {
    match choice {
        crate::batch::FormatChoice::Fixed(f) => f,
        crate::batch::FormatChoice::Same => {
            OutputFormat::from_path(input).unwrap_or(OutputFormat::Png)
        }
    }
}

/// An output name whose extension names another format than the one written (`{name}` of a
/// GIF, written as PNG) is refused, naming the input and the template.
pub fn check_output_name(
    input: &Path,
    output: &Path,
    format: OutputFormat,
    template: &str,
) -> Result<()> {
    // Named as a format Opossum writes but another one, or as one it only reads (GIF, BMP).
    let named = match OutputFormat::from_path(output) {
        Some(named) if named != format => Some(named.name().to_owned()),
        Some(_) => None,
        None => output
            .extension()
            .and_then(image::ImageFormat::from_extension)
            .map(|f| format!("{f:?}").to_uppercase()),
    };
    match named {
        Some(named) => Err(Error::Usage {
            reason: format!(
                "name template {template:?} names the output {} as {named}, but it is written as \
                 {} (Opossum does not write this input's format); end the template with .{{ext}}",
                output.display(),
                format.name()
            ),
            path: Some(input.to_path_buf()),
        }),
        None => Ok(()),
    }
}

/// The output name of `input` for `template` and `format`.
pub fn output_name(input: &Input, template: &str, format: OutputFormat) -> PathBuf {
    let stem = input.path.file_stem().unwrap_or_default().to_string_lossy();
    let name = input.path.file_name().unwrap_or_default().to_string_lossy();
    let srcext = input.path.extension().unwrap_or_default().to_string_lossy();
    let file = template
        .replace("{stem}", &stem)
        .replace("{name}", &name)
        .replace("{srcext}", &srcext)
        .replace("{ext}", format.extension());
    match input.rel.parent() {
        Some(dir) => dir.join(file),
        None => PathBuf::from(file),
    }
}

/// Whether `input` lies in the output folder `out_real` (canonical) that is nested inside the
/// folder the input was found in (`-i photos --recursive -o photos/web`): what is there is
/// output, not input. An output folder that is the input folder itself is not nested.
pub fn inside_nested_output(input: &Input, out_real: &Path) -> bool {
    let depth = input.rel.components().count();
    let Some(root) = input.path.ancestors().nth(depth) else {
        return false;
    };
    let (Ok(root), Ok(path)) = (
        std::fs::canonicalize(root),
        std::fs::canonicalize(&input.path),
    ) else {
        return false;
    };
    out_real != root && out_real.starts_with(&root) && path.starts_with(out_real)
}

/// Output paths under `out_dir` for `(input, wanted relative name)` pairs, in input order: the
/// first input keeps a name, later ones that would collide get `-2`, `-3`… before the
/// extension; no output is ever an input file, nor an existing file that `may_write(output,
/// input)` refuses.
pub fn assign_outputs(
    out_dir: &Path,
    wanted: &[(&Input, PathBuf)],
    may_write: impl Fn(&Path, &Path) -> bool,
) -> Vec<PathBuf> {
    let inputs: HashSet<PathBuf> = wanted
        .iter()
        .map(|(i, _)| std::fs::canonicalize(&i.path).unwrap_or(i.path.clone()))
        .collect();
    let is_input = |p: &Path| {
        inputs.contains(p) || std::fs::canonicalize(p).is_ok_and(|c| inputs.contains(&c))
    };
    let mut taken: BTreeMap<PathBuf, ()> = BTreeMap::new();
    let mut out = Vec::with_capacity(wanted.len());
    for (input, rel) in wanted {
        let mut candidate = out_dir.join(rel);
        let mut n = 2;
        while taken.contains_key(&candidate)
            || is_input(&candidate)
            || !may_write(&candidate, &input.path)
        {
            let stem = rel.file_stem().unwrap_or_default().to_string_lossy();
            let file = match rel.extension() {
                Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
                None => format!("{stem}-{n}"),
            };
            candidate = out_dir.join(rel.with_file_name(file));
            n += 1;
        }
        taken.insert(candidate.clone(), ());
        out.push(candidate);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rel: &str) -> Input {
        Input {
            path: PathBuf::from("/in").join(rel),
            rel: PathBuf::from(rel),
        }
    }

    #[test]
    fn shards_partition_the_inputs() {
        let inputs: Vec<Input> = (0..200).map(|i| input(&format!("img{i}.jpg"))).collect();
        let mut counts = [0usize; 4];
        for i in &inputs {
            let owners: Vec<u32> = (1..=4).filter(|&k| in_shard(i, Some((k, 4)))).collect();
            assert_eq!(owners.len(), 1, "{:?}", i.rel);
            counts[owners[0] as usize - 1] += 1;
        }
        assert!(counts.iter().all(|&c| c > 25), "{counts:?}");
        assert_eq!(parse_shard("2/8"), Ok((2, 8)));
        assert!(parse_shard("0/8").is_err() && parse_shard("9/8").is_err());
        assert!(parse_shard("x").is_err());
    }

    #[test]
    fn templates_and_collisions() {
        use crate::batch::FormatChoice::{Fixed, Same};
        assert!(check_template("{stem}_web.{ext}", Same).is_ok());
        assert!(check_template("out.{ext}", Same).is_err());
        assert!(check_template("../{stem}.{ext}", Same).is_err());
        assert!(check_template("{stem}.{bogus}", Same).is_err());
        // A fixed extension must name the format written.
        let jpeg = Fixed(OutputFormat::Jpeg);
        assert!(check_template("{stem}_web.jpg", jpeg).is_ok());
        assert!(check_template("{stem}.v2", Same).is_ok());
        assert!(check_template("{stem}", Same).is_ok());
        assert!(check_template("{stem}.png", jpeg).is_err());
        assert!(check_template("{stem}.png", Same).is_err());
        // The input's extension: only where each input keeps its format.
        assert!(check_template("{name}", Same).is_ok());
        assert!(check_template("{stem}.{srcext}", Same).is_ok());
        assert!(check_template("{name}", jpeg).is_err());
        assert!(check_template("{stem}.{srcext}", jpeg).is_err());
        assert!(check_template("{name}.{ext}", jpeg).is_ok());
        let (a, b, c) = (input("a.png"), input("a.jpg"), input("sub/a.png"));
        let names: Vec<(&Input, PathBuf)> = [&a, &b, &c]
            .into_iter()
            .map(|i| (i, output_name(i, "{stem}.{ext}", OutputFormat::Webp)))
            .collect();
        let out = assign_outputs(Path::new("/out"), &names, |_, _| true);
        assert_eq!(
            out,
            vec![
                PathBuf::from("/out/a.webp"),
                PathBuf::from("/out/a-2.webp"),
                PathBuf::from("/out/sub/a.webp"),
            ]
        );
        assert!(ignored_name(".hidden.jpg") && ignored_name("x.jpg.part") && ignored_name("x~"));
        assert!(!ignored_name("photo.jpg"));
    }
}
