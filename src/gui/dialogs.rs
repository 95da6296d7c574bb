//! File dialogs (and opening a file with the desktop's app) behind a small trait, so tests never
//! open a real dialog (rfd would block on a portal or zenity) and can script the paths a user
//! would pick.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the app asks the user for.
pub trait FileDialogs {
    /// Pick an image to open.
    fn open_image(&mut self) -> Option<PathBuf>;
    /// Pick a chain file to load.
    fn open_chain(&mut self) -> Option<PathBuf>;
    /// Pick where to save a chain file.
    fn save_chain(&mut self, suggested: &str) -> Option<PathBuf>;
    /// Pick where to export the image.
    fn export_image(&mut self, suggested: &str) -> Option<PathBuf>;
    /// Pick where to save a traced SVG.
    fn export_svg(&mut self, suggested: &str) -> Option<PathBuf>;
    /// Pick images for a batch (several at once).
    fn pick_images(&mut self) -> Vec<PathBuf>;
    /// Pick a folder; `title` says what for.
    fn pick_folder(&mut self, title: &str) -> Option<PathBuf>;
    /// Open a file or folder with the desktop's default app (a report, the output folder).
    fn open_path(&mut self, path: &Path) -> Result<(), String>;
}

/// Native dialogs through `rfd` (xdg portal on Linux).
pub struct NativeDialogs;

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "tif", "tiff", "gif", "bmp"];

impl FileDialogs for NativeDialogs {
    fn open_image(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("Images", IMAGE_EXTENSIONS)
            .pick_file()
    }

    fn open_chain(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("Chain files", &["toml", "json"])
            .pick_file()
    }

    fn save_chain(&mut self, suggested: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("Chain files", &["toml", "json"])
            .set_file_name(suggested)
            .save_file()
    }

    fn export_image(&mut self, suggested: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("PNG", &["png"])
            .add_filter("JPEG", &["jpg", "jpeg"])
            .add_filter("WebP", &["webp"])
            .add_filter("TIFF", &["tif", "tiff"])
            .set_file_name(suggested)
            .save_file()
    }

    fn export_svg(&mut self, suggested: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("SVG", &["svg"])
            .set_file_name(suggested)
            .save_file()
    }

    fn pick_images(&mut self) -> Vec<PathBuf> {
        rfd::FileDialog::new()
            .add_filter("Images", IMAGE_EXTENSIONS)
            .pick_files()
            .unwrap_or_default()
    }

    fn pick_folder(&mut self, title: &str) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title(title).pick_folder()
    }

    fn open_path(&mut self, path: &Path) -> Result<(), String> {
        open::that_detached(path).map_err(|e| format!("cannot open {}: {e}", path.display()))
    }
}

/// Scripted answers, for tests: each call pops the next path of its kind.
#[derive(Default)]
pub struct ScriptedDialogs {
    /// Answers to `open_image`.
    pub images: Vec<PathBuf>,
    /// Answers to `open_chain`.
    pub chains: Vec<PathBuf>,
    /// Answers to `save_chain`.
    pub chain_saves: Vec<PathBuf>,
    /// Answers to `export_image`.
    pub exports: Vec<PathBuf>,
    /// Answers to `export_svg`.
    pub svg_exports: Vec<PathBuf>,
    /// Answers to `pick_images`.
    pub image_sets: Vec<Vec<PathBuf>>,
    /// Answers to `pick_folder`.
    pub folders: Vec<PathBuf>,
    /// Every path `open_path` was asked to open (shared, so a test can read it).
    pub opened: Arc<Mutex<Vec<PathBuf>>>,
}

impl FileDialogs for ScriptedDialogs {
    fn open_image(&mut self) -> Option<PathBuf> {
        self.images.pop()
    }

    fn open_chain(&mut self) -> Option<PathBuf> {
        self.chains.pop()
    }

    fn save_chain(&mut self, _suggested: &str) -> Option<PathBuf> {
        self.chain_saves.pop()
    }

    fn export_image(&mut self, _suggested: &str) -> Option<PathBuf> {
        self.exports.pop()
    }

    fn export_svg(&mut self, _suggested: &str) -> Option<PathBuf> {
        self.svg_exports.pop()
    }

    fn pick_images(&mut self) -> Vec<PathBuf> {
        self.image_sets.pop().unwrap_or_default()
    }

    fn pick_folder(&mut self, _title: &str) -> Option<PathBuf> {
        self.folders.pop()
    }

    fn open_path(&mut self, path: &Path) -> Result<(), String> {
        if !path.exists() {
            return Err(format!("{} does not exist", path.display()));
        }
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_path_buf());
        Ok(())
    }
}
