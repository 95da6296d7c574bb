//! The WGSL sources in `shaders/`, compiled into the binary, and the one preprocessing step they
//! need: `common.wgsl` (bindings and helpers) is prepended to every op shader, and a line
//! `//#include name` pulls in `shaders/name.wgsl` (shared kernels such as `remap` and
//! `convolve`, as their Rust counterparts are shared modules, and `pointwise`, the entry point
//! of every per-pixel op).

/// Every file in `shaders/`, by stem.
pub static SOURCES: &[(&str, &str)] = &[
    ("add_border", include_str!("../../shaders/add_border.wgsl")),
    (
        "adjust_colors",
        include_str!("../../shaders/adjust_colors.wgsl"),
    ),
    (
        "color_convert",
        include_str!("../../shaders/color_convert.wgsl"),
    ),
    ("common", include_str!("../../shaders/common.wgsl")),
    ("convolve", include_str!("../../shaders/convolve.wgsl")),
    ("crop", include_str!("../../shaders/crop.wgsl")),
    (
        "edge_detect",
        include_str!("../../shaders/edge_detect.wgsl"),
    ),
    ("flip", include_str!("../../shaders/flip.wgsl")),
    (
        "gaussian_blur",
        include_str!("../../shaders/gaussian_blur.wgsl"),
    ),
    ("grayscale", include_str!("../../shaders/grayscale.wgsl")),
    ("pointwise", include_str!("../../shaders/pointwise.wgsl")),
    ("present", include_str!("../../shaders/present.wgsl")),
    ("remap", include_str!("../../shaders/remap.wgsl")),
    ("resize", include_str!("../../shaders/resize.wgsl")),
    ("rotate", include_str!("../../shaders/rotate.wgsl")),
    ("sharpen", include_str!("../../shaders/sharpen.wgsl")),
    ("source", include_str!("../../shaders/source.wgsl")),
    ("watermark", include_str!("../../shaders/watermark.wgsl")),
];

/// The raw text of `shaders/<stem>.wgsl`.
pub fn raw(stem: &str) -> Option<&'static str> {
    SOURCES
        .iter()
        .find(|(s, _)| *s == stem)
        .map(|(_, text)| *text)
}

/// The complete module for shader `stem`: `common.wgsl` (unless `stem` is `present`, which has
/// its own bindings), then the file with its includes expanded (each at most once).
pub fn module_source(stem: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut included = Vec::new();
    if stem != "present" {
        expand("common", &mut out, &mut included)?;
    }
    expand(stem, &mut out, &mut included)?;
    Ok(out)
}

fn expand(stem: &str, out: &mut String, included: &mut Vec<String>) -> Result<(), String> {
    if included.iter().any(|s| s == stem) {
        return Ok(());
    }
    included.push(stem.to_owned());
    let text = raw(stem).ok_or_else(|| format!("no shader named {stem}.wgsl"))?;
    for line in text.lines() {
        match line.trim().strip_prefix("//#include ") {
            Some(name) => expand(name.trim(), out, included)?,
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_folder_is_listed_and_includes_resolve() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let path = e.unwrap().path();
                (path.extension()? == "wgsl")
                    .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
            })
            .collect();
        on_disk.sort();
        let listed: Vec<String> = SOURCES.iter().map(|(s, _)| (*s).to_owned()).collect();
        assert_eq!(on_disk, listed);
        for (stem, _) in SOURCES {
            let source = module_source(stem).unwrap();
            assert!(!source.contains("//#include"), "{stem}");
        }
    }

    #[test]
    fn every_op_has_a_shader_of_its_own_name() {
        for def in crate::ops::registry() {
            assert!(raw(def.id).is_some(), "shaders/{}.wgsl is missing", def.id);
        }
    }
}
