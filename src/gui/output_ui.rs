//! Output settings shared by the Batch and Watch panels (folder, format, quality, file names),
//! their widgets, and the small helpers both panels use. The values map one to one onto the
//! CLI's `--output/--format/--quality/--name-template`, so a panel run and a CLI run with the
//! same settings write the same files.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::dialogs::FileDialogs;
use crate::batch::FormatChoice;
use crate::io::encode::OutputFormat;

/// The output format as picked in the UI (persisted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FormatPick {
    /// Each input's own format (GIF and BMP become PNG).
    #[default]
    Same,
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP (lossy at the chosen quality).
    Webp,
    /// TIFF.
    Tiff,
    /// SVG traced with the chain's `[vectorize]` settings.
    Svg,
}

impl FormatPick {
    const ALL: [FormatPick; 6] = [
        FormatPick::Same,
        FormatPick::Jpeg,
        FormatPick::Png,
        FormatPick::Webp,
        FormatPick::Tiff,
        FormatPick::Svg,
    ];

    fn label(self) -> &'static str {
        match self {
            FormatPick::Same => "Same as input",
            FormatPick::Jpeg => "JPEG",
            FormatPick::Png => "PNG",
            FormatPick::Webp => "WebP",
            FormatPick::Tiff => "TIFF",
            FormatPick::Svg => "SVG (vectorized)",
        }
    }

    /// The engine's choice.
    pub fn choice(self) -> FormatChoice {
        match self {
            FormatPick::Same => FormatChoice::Same,
            FormatPick::Jpeg => FormatChoice::Fixed(OutputFormat::Jpeg),
            FormatPick::Png => FormatChoice::Fixed(OutputFormat::Png),
            FormatPick::Webp => FormatChoice::Fixed(OutputFormat::Webp),
            FormatPick::Tiff => FormatChoice::Fixed(OutputFormat::Tiff),
            FormatPick::Svg => FormatChoice::Fixed(OutputFormat::Svg),
        }
    }

    /// Whether quality means anything (lossy output possible).
    fn lossy(self) -> bool {
        matches!(self, FormatPick::Same | FormatPick::Jpeg | FormatPick::Webp)
    }

    /// Whether WebP may be written (so lossless WebP means something).
    fn webp(self) -> bool {
        matches!(self, FormatPick::Same | FormatPick::Webp)
    }
}

/// Where and how a panel writes its outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputSettings {
    /// Output folder (created if missing).
    pub output_dir: Option<PathBuf>,
    /// Output format.
    pub format: FormatPick,
    /// JPEG / lossy WebP quality, 1..=100.
    pub quality: u8,
    /// WebP outputs lossless (`--lossless`).
    pub lossless_webp: bool,
    /// File names: `{stem}`, `{name}`, `{ext}`, `{srcext}`.
    pub name_template: String,
}

impl Default for OutputSettings {
    fn default() -> Self {
        Self {
            output_dir: None,
            format: FormatPick::Same,
            quality: 85,
            lossless_webp: false,
            name_template: "{stem}.{ext}".to_owned(),
        }
    }
}

impl OutputSettings {
    /// Whether WebP outputs are lossless.
    pub fn lossless(&self) -> bool {
        self.lossless_webp && self.format.webp()
    }

    /// Why a job cannot start with these settings, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.output_dir.is_none() {
            return Some("Choose an output folder.".to_owned());
        }
        crate::batch::inputs::check_template(&self.name_template, self.format.choice())
            .err()
            .map(|e| e.to_string())
    }

    /// The widgets; `id` keeps two panels' widgets apart.
    pub fn ui(&mut self, ui: &mut egui::Ui, id: &str, dialogs: &mut dyn FileDialogs) {
        egui::Grid::new((id, "output_grid"))
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Output folder");
                folder_row(
                    ui,
                    dialogs,
                    "Choose output folder…",
                    &mut self.output_dir,
                    None,
                );
                ui.end_row();
                let l = ui.label("Format");
                egui::ComboBox::from_id_salt((id, "format"))
                    .selected_text(self.format.label())
                    .show_ui(ui, |ui| {
                        for f in FormatPick::ALL {
                            ui.selectable_value(&mut self.format, f, f.label());
                        }
                    })
                    .response
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Quality");
                ui.add_enabled(
                    self.format.lossy() && !(self.format == FormatPick::Webp && self.lossless_webp),
                    egui::Slider::new(&mut self.quality, 1..=100),
                )
                .on_hover_text("JPEG and lossy WebP; PNG and TIFF are lossless")
                .labelled_by(l.id);
                ui.end_row();
                ui.label("");
                ui.add_enabled(
                    self.format.webp(),
                    egui::Checkbox::new(&mut self.lossless_webp, "Lossless WebP"),
                )
                .on_hover_text("WebP outputs keep every pixel (the CLI's --lossless)");
                ui.end_row();
                let l = ui.label("File names");
                ui.text_edit_singleline(&mut self.name_template)
                    .on_hover_text(
                        "{stem} input name without extension, {name} with it, {ext} output \
                         format's extension, {srcext} input's extension",
                    )
                    .labelled_by(l.id);
                ui.end_row();
            });
    }
}

/// A folder picker: the button, then the folder chosen, or `unset` (None: "not chosen", and
/// no way back to none once chosen; Some(text): a ✕ button clears the choice).
pub fn folder_row(
    ui: &mut egui::Ui,
    dialogs: &mut dyn FileDialogs,
    button: &str,
    folder: &mut Option<PathBuf>,
    unset: Option<&str>,
) {
    ui.horizontal(|ui| {
        if ui.button(button).clicked()
            && let Some(dir) = dialogs.pick_folder(button.trim_end_matches('…'))
        {
            *folder = Some(dir);
        }
        match (folder.as_ref(), unset) {
            (Some(dir), _) => {
                ui.label(dir.display().to_string());
                if unset.is_some() && ui.small_button("🗙").on_hover_text("Clear").clicked() {
                    *folder = None;
                }
            }
            (None, Some(text)) => {
                ui.weak(text);
            }
            (None, None) => {
                ui.weak("not chosen");
            }
        }
    });
}

/// A panel's window (closable); `contents` draws it and says what the app should do.
pub fn panel_window<A>(
    ctx: &egui::Context,
    title: &str,
    size: [f32; 2],
    open: &mut bool,
    contents: impl FnOnce(&mut egui::Ui) -> Option<A>,
) -> Option<A> {
    let mut action = None;
    egui::Window::new(title)
        .open(open)
        .default_size(size)
        .show(ctx, |ui| action = contents(ui));
    action
}

/// `YYYYMMDD-HHMMSS` (UTC) of `t`, for file names.
pub fn file_stamp(t: SystemTime) -> String {
    let (year, month, day, rest) = crate::clock::utc_parts(t);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn file_stamps_are_civil_utc_dates() {
        let at = |s: u64| file_stamp(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101-000000");
        assert_eq!(at(951_782_400), "20000229-000000");
        assert_eq!(at(1_798_329_600 + 3_723), "20261227-010203");
    }

    #[test]
    fn the_lossless_webp_box_applies_where_webp_is_written() {
        use egui_kittest::kittest::Queryable as _;
        let mut h = egui_kittest::Harness::new_ui_state(
            |ui, settings: &mut OutputSettings| {
                settings.ui(
                    ui,
                    "test",
                    &mut crate::gui::dialogs::ScriptedDialogs::default(),
                );
            },
            OutputSettings::default(),
        );
        h.run();
        assert!(!h.state().lossless());
        h.get_by_label("Lossless WebP").click();
        h.run();
        // `same` writes the WebP inputs as WebP: lossless applies to them.
        assert!(h.state().lossless_webp && h.state().lossless());
        h.state_mut().format = FormatPick::Jpeg;
        h.run();
        assert!(!h.state().lossless(), "JPEG cannot be lossless");
        // Disabled: a click changes nothing.
        h.get_by_label("Lossless WebP").click();
        h.run();
        assert!(h.state().lossless_webp);
        h.state_mut().format = FormatPick::Webp;
        h.run();
        assert!(h.state().lossless());
    }

    #[test]
    fn settings_need_a_folder_and_a_valid_template() {
        let mut s = OutputSettings::default();
        assert!(s.problem().unwrap().contains("output folder"));
        s.output_dir = Some(PathBuf::from("/tmp/out"));
        assert_eq!(s.problem(), None);
        s.name_template = "{nope}.png".to_owned();
        assert!(s.problem().is_some());
    }
}
