//! Command-line checks made before any work starts: an output's extension that names another
//! format than the one written, options the chosen format ignores, and files (`--report`,
//! `--profile-out`) whose folder is missing, so that a mistake costs no render. (A batch name
//! template's extension is checked by `batch::inputs::check_template`, for the app too.)

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::encode::OutputFormat;

/// JPEG and lossy WebP quality when `--quality` is not given.
pub const DEFAULT_QUALITY: u8 = 85;

fn usage(reason: String, path: Option<&Path>) -> Error {
    Error::Usage {
        reason,
        path: path.map(Path::to_path_buf),
    }
}

/// The format an output file is written in: `--format` if given, else the file's extension.
/// A `--format` that contradicts a known extension (`--format jpeg -o b.png`) is refused, as
/// is `-o -`: the file would be misnamed, and Opossum does not write to standard output.
pub fn output_format(format: Option<&str>, output: &Path) -> Result<OutputFormat> {
    refuse_stdout(output)?;
    let by_name = OutputFormat::from_path(output);
    match format {
        Some(name) => {
            let chosen = OutputFormat::from_name(name).ok_or_else(|| {
                usage(
                    format!("--format {name:?} is not one of png, jpeg, webp, tiff, svg"),
                    None,
                )
            })?;
            match by_name {
                Some(named) if named != chosen => Err(mismatch("--format", chosen, named, output)),
                _ => Ok(chosen),
            }
        }
        None => by_name.ok_or_else(|| {
            let ext = output
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            let reason = match ext.as_deref() {
                Some(ext @ ("gif" | "bmp" | "svgz")) => format!(
                    "-o/--output: Opossum does not write .{ext} files; name the output .png, \
                     .jpg, .webp, .tif or .svg"
                ),
                _ => "-o/--output: cannot tell the output format from the file name; add \
                      --format png|jpeg|webp|tiff|svg or a known extension"
                    .to_owned(),
            };
            usage(reason, Some(output))
        }),
    }
}

/// `vectorize` writes SVG: an output named as a raster format is refused.
pub fn svg_output(output: &Path) -> Result<()> {
    refuse_stdout(output)?;
    if output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svgz"))
    {
        return Err(usage(
            "-o/--output: vectorize writes plain SVG, not compressed .svgz; name it .svg"
                .to_owned(),
            Some(output),
        ));
    }
    match OutputFormat::from_path(output) {
        Some(named) if named != OutputFormat::Svg => Err(usage(
            format!(
                "-o/--output names a {} file, but vectorize writes SVG; name it .svg",
                named.name()
            ),
            Some(output),
        )),
        _ => Ok(()),
    }
}

fn refuse_stdout(output: &Path) -> Result<()> {
    if output.as_os_str() == "-" {
        return Err(usage(
            "-o/--output -: Opossum writes files, not standard output; name the output file"
                .to_owned(),
            None,
        ));
    }
    Ok(())
}

fn mismatch(flag: &str, chosen: OutputFormat, named: OutputFormat, output: &Path) -> Error {
    usage(
        format!(
            "{flag} {} but the output is named as {}; rename it to .{} or drop {flag}",
            chosen.name(),
            named.name(),
            chosen.extension()
        ),
        Some(output),
    )
}

/// What `--quality` and `--lossless` do for `format`: an error where they cannot be honoured
/// (`--lossless` JPEG or SVG), notes for the user where they are ignored.
pub fn encoder_options(
    format: OutputFormat,
    quality: Option<u8>,
    lossless: bool,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if lossless {
        match format {
            OutputFormat::Webp => {}
            OutputFormat::Png | OutputFormat::Tiff => notes.push(format!(
                "--lossless: {} is always lossless; nothing to change",
                format.name()
            )),
            OutputFormat::Jpeg | OutputFormat::Svg => {
                return Err(usage(
                    format!(
                        "--lossless applies to WebP; {} cannot be written lossless (choose \
                         webp, png or tiff)",
                        format.name()
                    ),
                    None,
                ));
            }
        }
    }
    if let Some(q) = quality {
        match format {
            OutputFormat::Jpeg => {}
            OutputFormat::Webp if !lossless => {}
            OutputFormat::Webp => notes.push(format!(
                "--quality {q} is ignored: lossless WebP keeps every pixel"
            )),
            OutputFormat::Png | OutputFormat::Tiff => notes.push(format!(
                "--quality {q} is ignored: {} is lossless (quality applies to JPEG and WebP)",
                format.name()
            )),
            OutputFormat::Svg => notes.push(format!(
                "--quality {q} is ignored for SVG: the chain's [vectorize] settings decide it"
            )),
        }
    }
    Ok(notes)
}

/// A file written after the work (`--report`, `--profile-out`) is checked before it starts:
/// not `-`, not a folder (nor `creates`, the output folder the work makes), in a folder that
/// exists or that the work creates, and never one of the `protected` files (the input, the
/// output, the chain, the config) or any existing image, which it would silently replace.
pub fn later_output(
    flag: &str,
    path: &Path,
    creates: Option<&Path>,
    protected: &[&Path],
) -> Result<()> {
    refuse_stdout(path).map_err(|_| {
        usage(
            format!("{flag} -: name a file; Opossum does not write it to standard output"),
            None,
        )
    })?;
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let target = absolute(path);
    if path.is_dir() || creates.is_some_and(|dir| absolute(dir) == target) {
        return Err(usage(
            format!("{flag} names a folder; name a file in it"),
            Some(path),
        ));
    }
    if let Some(file) = protected
        .iter()
        .find(|p| crate::io::same_file(path, p) || absolute(p) == target)
    {
        return Err(usage(
            format!("{flag} would replace {}; name another file", file.display()),
            Some(path),
        ));
    }
    if looks_like_an_image(path) {
        return Err(usage(
            format!("{flag} would replace an image; name another file"),
            Some(path),
        ));
    }
    let parent = match target.parent() {
        Some(p) => p.to_path_buf(),
        None => return Ok(()),
    };
    let created = creates.is_some_and(|dir| parent.starts_with(absolute(dir)));
    if !parent.is_dir() && !created {
        return Err(usage(
            format!(
                "{flag}: the folder {} does not exist; create it first",
                path.parent().unwrap_or(Path::new(".")).display()
            ),
            Some(path),
        ));
    }
    Ok(())
}

/// The output file's folder must exist and the path must not be a folder: checked before the
/// render, not when its temporary file is made.
pub fn output_file(output: &Path) -> Result<()> {
    if output.is_dir() {
        return Err(usage(
            "-o/--output names a folder; name a file in it".to_owned(),
            Some(output),
        ));
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(usage(
            format!(
                "-o/--output: the folder {} does not exist; create it first",
                parent.display()
            ),
            Some(output),
        ));
    }
    Ok(())
}

/// Whether `path` is an existing file whose first bytes are an image's.
fn looks_like_an_image(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 32];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let n = file.read(&mut head).unwrap_or(0);
    image::guess_format(&head[..n]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_that_contradicts_the_extension_is_refused() {
        let b_png = Path::new("b.png");
        assert!(matches!(
            output_format(Some("jpeg"), b_png),
            Err(Error::Usage { .. })
        ));
        assert_eq!(
            output_format(Some("png"), b_png).ok(),
            Some(OutputFormat::Png)
        );
        assert_eq!(output_format(None, b_png).ok(), Some(OutputFormat::Png));
        // No or an unknown extension: --format decides.
        for name in ["out", "out.img"] {
            assert_eq!(
                output_format(Some("jpeg"), Path::new(name)).ok(),
                Some(OutputFormat::Jpeg)
            );
        }
        assert!(output_format(None, Path::new("out.img")).is_err());
        assert!(output_format(Some("png"), Path::new("-")).is_err());
        assert!(svg_output(Path::new("e.png")).is_err());
        assert!(svg_output(Path::new("e.svg")).is_ok());
        assert!(svg_output(Path::new("e")).is_ok());
        assert!(svg_output(Path::new("e.svgz")).is_err());
        assert_eq!(
            output_format(None, Path::new("x.JFIF")).ok(),
            Some(OutputFormat::Jpeg)
        );
        assert!(output_format(None, Path::new("x.gif")).is_err());
    }

    #[test]
    fn lossless_jpeg_is_refused_and_ignored_options_are_noted() {
        assert!(encoder_options(OutputFormat::Jpeg, None, true).is_err());
        assert!(encoder_options(OutputFormat::Svg, None, true).is_err());
        assert!(
            encoder_options(OutputFormat::Webp, Some(90), false)
                .unwrap()
                .is_empty()
        );
        assert!(
            encoder_options(OutputFormat::Jpeg, Some(90), false)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            encoder_options(OutputFormat::Png, Some(90), true)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            encoder_options(OutputFormat::Webp, Some(90), true)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn reports_into_missing_folders_or_onto_files_that_matter_are_refused_before_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ok = |path: &Path, creates: Option<&Path>, protected: &[&Path]| {
            later_output("--report", path, creates, protected).is_ok()
        };
        assert!(ok(&d.join("r.json"), None, &[]));
        assert!(ok(Path::new("r.json"), None, &[]));
        assert!(!ok(&d.join("nodir/r.json"), None, &[]));
        assert!(!ok(d, None, &[]));
        assert!(!ok(Path::new("-"), None, &[]));
        // Inside the output folder the work creates, but not the folder itself.
        let out = d.join("out");
        assert!(ok(&out.join("r.json"), Some(&out), &[]));
        assert!(!ok(&out, Some(&out), &[]));
        // Never the chain, the input, the output, or an image.
        let chain = d.join("chain.toml");
        std::fs::write(&chain, "version = 1\n").unwrap();
        assert!(!ok(&chain, None, &[&chain]));
        assert!(!ok(&d.join("o.png"), None, &[&d.join("o.png")]));
        let image = d.join("a.dat");
        std::fs::write(&image, b"\x89PNG\r\n\x1a\n0000000000000000").unwrap();
        assert!(!ok(&image, None, &[]));
        // An earlier report is replaced.
        std::fs::write(d.join("r.json"), b"{}").unwrap();
        assert!(ok(&d.join("r.json"), None, &[&chain]));
    }
}
