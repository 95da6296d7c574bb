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
            usage(
                "-o/--output: cannot tell the output format from the file name; add --format \
                 png|jpeg|webp|tiff|svg or a known extension"
                    .to_owned(),
                Some(output),
            )
        }),
    }
}

/// `vectorize` writes SVG: an output named as a raster format is refused.
pub fn svg_output(output: &Path) -> Result<()> {
    refuse_stdout(output)?;
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

/// A file written after the work (`--report`, `--profile-out`) whose folder is missing, or
/// that names a folder, is refused before the work starts.
pub fn later_output(flag: &str, path: &Path) -> Result<()> {
    refuse_stdout(path).map_err(|_| {
        usage(
            format!("{flag} -: name a file; Opossum does not write it to standard output"),
            None,
        )
    })?;
    if path.is_dir() {
        return Err(usage(
            format!("{flag} names a folder; name a file in it"),
            Some(path),
        ));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(usage(
            format!(
                "{flag}: the folder {} does not exist; create it first",
                parent.display()
            ),
            Some(path),
        ));
    }
    Ok(())
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
    fn reports_into_missing_folders_are_refused_before_the_work() {
        let dir = tempfile::tempdir().unwrap();
        assert!(later_output("--report", &dir.path().join("r.json")).is_ok());
        assert!(later_output("--report", Path::new("r.json")).is_ok());
        assert!(later_output("--report", &dir.path().join("nodir/r.json")).is_err());
        assert!(later_output("--report", dir.path()).is_err());
        assert!(later_output("--report", Path::new("-")).is_err());
    }
}
