//! The desktop app (cargo feature `gui`): eframe with the wgpu renderer, egui panels. The UI is
//! thin: panels emit commands, background jobs (`jobs`) do the work on the engine, which knows
//! nothing about egui.

pub mod app;
pub mod batch_panel;
pub mod deadline;
pub mod dialogs;
pub mod history;
pub mod jobs;
pub mod output_ui;
pub mod params_ui;
pub mod vectorize_panel;
pub mod watch_panel;

pub use app::{GuiOptions, OpossumApp};

/// Open the app window and run until it closes. `Err` carries a message for the user (no
/// display, no GPU adapter, a failed `--screenshot`).
pub fn run(options: GuiOptions) -> Result<(), String> {
    let native = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("Opossum")
            .with_inner_size([1400.0, 860.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true)
            .with_app_id("opossum"),
        persist_window: options.screenshot.is_none(),
        ..Default::default()
    };
    let exit_error = std::sync::Arc::new(std::sync::Mutex::new(None));
    let exit_slot = exit_error.clone();
    eframe::run_native(
        "Opossum",
        native,
        Box::new(move |cc| {
            let app = OpossumApp::new(cc, options, Box::new(dialogs::NativeDialogs));
            *exit_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(app.exit_error.clone());
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| {
        // winit's text ends with the source location it failed at: not for users.
        let text = e.to_string();
        let text = match (text.find(" at /"), text.find(".rs:")) {
            (Some(at), Some(rs)) if rs > at => {
                let end = text[rs + 4..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(text.len(), |n| rs + 4 + n);
                format!("{}{}", &text[..at], text[end..].trim_start_matches(':'))
            }
            _ => text,
        };
        format!("cannot open the window: {}", text.trim())
    })?;
    let slot = exit_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(shared) = slot
        && let Some(message) = shared.lock().unwrap_or_else(|e| e.into_inner()).take()
    {
        return Err(message);
    }
    Ok(())
}
