//! Parameter widgets generated from an op's [`ParamSpec`]s: sliders with units and ranges,
//! drag values for wide ranges, combo boxes, colour pickers, text fields, and a reset button.
//! Each widget is labelled (accessible name = the parameter label).

use egui::{Color32, Ui};

use crate::chain::raw::RawValue;
use crate::params::{ParamKind, ParamSpec, ParamValue, Params};

/// A parameter edit produced by the UI.
pub struct ParamEdit {
    /// The parameter key.
    pub key: &'static str,
    /// The new value (already within the spec's range).
    pub value: RawValue,
    /// Whether the gesture (drag) is still going on.
    pub dragging: bool,
}

/// Draw the widgets for `params` of an op; returns the edit the user made this frame, if any.
pub fn params_ui(ui: &mut Ui, specs: &'static [ParamSpec], params: &Params) -> Option<ParamEdit> {
    let mut edit = None;
    egui::Grid::new("params_grid")
        .num_columns(3)
        .spacing([8.0, 6.0])
        .striped(true)
        .show(ui, |ui| {
            for spec in specs {
                let label = ui.label(spec.label).on_hover_text(spec.doc);
                if let Some(e) = param_widget(ui, spec, params, label.id) {
                    edit = Some(e);
                }
                let is_default = params.get(spec.key) == Some(&spec.default_value());
                let reset = ui
                    .add_enabled(!is_default, egui::Button::new("Reset").small())
                    .on_hover_text(format!("Reset {} to {}", spec.label, spec.default_value()));
                if reset.clicked() {
                    edit = Some(ParamEdit {
                        key: spec.key,
                        value: spec.default_value().to_raw(),
                        dragging: false,
                    });
                }
                ui.end_row();
            }
        });
    edit
}

/// A slider over the range, or a drag value when the range is too wide for a slider to be
/// precise; the unit as suffix.
fn number_widget<N: egui::emath::Numeric>(
    ui: &mut Ui,
    value: &mut N,
    range: std::ops::RangeInclusive<N>,
    wide: bool,
    unit: crate::params::Unit,
) -> egui::Response {
    let suffix = format!(" {}", unit.suffix());
    if wide {
        // Whole pixels move one per pixel dragged; real values cover the range in ~2000 px.
        let span = range.end().to_f64() - range.start().to_f64();
        let speed = if N::INTEGRAL {
            1.0
        } else {
            (span / 2000.0).max(1e-3)
        };
        ui.add(
            egui::DragValue::new(value)
                .range(range)
                .speed(speed)
                .suffix(suffix),
        )
    } else {
        ui.add(
            egui::Slider::new(value, range)
                .suffix(suffix)
                .clamping(egui::SliderClamping::Always),
        )
    }
}

fn param_widget(
    ui: &mut Ui,
    spec: &'static ParamSpec,
    params: &Params,
    label: egui::Id,
) -> Option<ParamEdit> {
    let current = params
        .get(spec.key)
        .cloned()
        .unwrap_or_else(|| spec.default_value());
    let edit = |value: RawValue, response: &egui::Response| {
        (response.changed()).then(|| ParamEdit {
            key: spec.key,
            value,
            dragging: response.dragged(),
        })
    };
    match (spec.kind, current) {
        (ParamKind::Float { min, max, unit, .. }, ParamValue::Float(mut v)) => {
            let response = number_widget(ui, &mut v, min..=max, max - min > 1000.0, unit);
            edit(RawValue::Float(v), &response.labelled_by(label))
        }
        (ParamKind::Int { min, max, unit, .. }, ParamValue::Int(mut v)) => {
            let response = number_widget(ui, &mut v, min..=max, max - min > 4096, unit);
            edit(RawValue::Int(v), &response.labelled_by(label))
        }
        (ParamKind::Bool { .. }, ParamValue::Bool(mut v)) => {
            let response = ui.checkbox(&mut v, "").labelled_by(label);
            edit(RawValue::Bool(v), &response)
        }
        (ParamKind::Choice { choices, .. }, ParamValue::Choice(v)) => {
            let mut picked = None;
            let response = egui::ComboBox::from_id_salt(spec.key)
                .selected_text(v.as_str())
                .show_ui(ui, |ui| {
                    for choice in choices {
                        if ui.selectable_label(v == *choice, *choice).clicked() && v != *choice {
                            picked = Some((*choice).to_owned());
                        }
                    }
                })
                .response
                .labelled_by(label);
            let _ = response;
            picked.map(|c| ParamEdit {
                key: spec.key,
                value: RawValue::String(c),
                dragging: false,
            })
        }
        (ParamKind::Color { .. }, ParamValue::Color(c)) => {
            let mut color = Color32::from_rgba_unmultiplied(c[0], c[1], c[2], c[3]);
            let response = egui::widgets::color_picker::color_edit_button_srgba(
                ui,
                &mut color,
                egui::widgets::color_picker::Alpha::OnlyBlend,
            )
            .labelled_by(label);
            let [r, g, b, a] = color.to_srgba_unmultiplied();
            edit(
                RawValue::String(crate::params::format_color([r, g, b, a])),
                &response,
            )
        }
        (ParamKind::Text { max_chars, .. }, ParamValue::Text(mut v)) => {
            let response = ui
                .add(
                    egui::TextEdit::multiline(&mut v)
                        .desired_rows(1)
                        .char_limit(max_chars),
                )
                .labelled_by(label);
            let value = RawValue::String(
                v.chars()
                    .filter(|c| !c.is_control() || *c == '\n')
                    .collect(),
            );
            (response.changed()).then(|| ParamEdit {
                key: spec.key,
                value,
                dragging: response.has_focus(),
            })
        }
        _ => {
            ui.label("—");
            None
        }
    }
}
