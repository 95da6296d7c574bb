//! Image and file I/O: decoding with limits checked before allocation, encoding, and atomic
//! writes (temp file in the target folder, fsync, rename) so no half-written file ever appears
//! under a final name.

pub mod decode;
pub mod encode;
pub mod rows;

use std::fs::Metadata;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Prefix of temporary files this crate creates next to outputs (cleaned up on failure).
pub const TEMP_PREFIX: &str = ".opossum-tmp-";

/// A short word for what kind of file system object `meta` describes.
pub fn file_kind(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_file() {
        "a file"
    } else {
        "not a regular file"
    }
}

/// Check `path` is an existing regular file (following symlinks) without opening it, so a FIFO
/// or device is never opened. Returns its metadata.
pub fn check_regular_file(path: &Path, action: &'static str) -> Result<Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(action, path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            kind: file_kind(&meta),
            path: path.to_path_buf(),
        });
    }
    Ok(meta)
}

/// A file being written atomically: data goes to a temporary file in the target folder, which
/// [`AtomicFile::commit`] fsyncs and renames over the final path. Dropped without a commit, the
/// temporary file is removed and the final path is untouched.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
    /// The first write error of any writer onto the temp file. Encoders (PNG's among them)
    /// drop their `BufWriter` without flushing it explicitly, and a drop swallows the error of
    /// its last flush (a full disk): recorded here, it stops [`AtomicFile::commit`].
    write_error: Arc<Mutex<Option<String>>>,
}

/// The temporary file under a writer: passes writes through and records the first error.
pub struct TrackedFile {
    file: std::fs::File,
    error: Arc<Mutex<Option<String>>>,
}

impl TrackedFile {
    fn note<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }
        result
    }
}

impl Write for TrackedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.file.write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.file.flush();
        self.note(result)
    }
}

impl AtomicFile {
    /// Start writing `path`. Temporary files of interrupted earlier runs in the same folder
    /// (untouched for ten minutes) are removed first.
    pub fn create(path: &Path) -> Result<Self> {
        // The rename would replace a FIFO, a device (`/dev/null` when run as root) or a socket
        // with a regular file; a folder would fail only after all the work.
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            return Err(Error::Encode {
                reason: format!(
                    "the output path is {}; Opossum writes regular files only",
                    file_kind(&meta)
                ),
                path: path.to_path_buf(),
            });
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        clean_stale_temp_files(dir, std::time::Duration::from_secs(600));
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX).suffix(".tmp");
        // Temporary files are private (0600) by default; the output should get the same mode
        // as any newly created file (0666 less the umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| encode_error(path, &e))?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
            write_error: Arc::default(),
        })
    }

    /// A buffered writer onto the temporary file (an independent handle; flush it before
    /// committing).
    pub fn writer(&self) -> Result<BufWriter<TrackedFile>> {
        let file = self
            .tmp
            .as_file()
            .try_clone()
            .map_err(|e| encode_error(&self.path, &e))?;
        Ok(BufWriter::with_capacity(
            1 << 20,
            TrackedFile {
                file,
                error: self.write_error.clone(),
            },
        ))
    }

    /// Make the file durable and give it its final name; refused (and the temp file removed)
    /// when any write to it failed.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        if let Some(reason) = self
            .write_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(Error::Encode { reason, path });
        }
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| encode_error(&path, &e))?;
        self.tmp
            .persist(&path)
            .map_err(|e| encode_error(&path, &e.error))?;
        // Make the rename durable; failure here does not undo the write.
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn encode_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Encode {
        reason: e.to_string(),
        path: path.to_path_buf(),
    }
}

/// Remove temporary files that an earlier, interrupted run left in `dir` (names starting with
/// [`TEMP_PREFIX`] that have not been modified for `max_age`). A temporary file that another
/// process is still writing keeps a fresh modification time and is left alone. Returns how many
/// were removed; errors are ignored (cleaning is best effort).
pub fn clean_stale_temp_files(dir: &Path, max_age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(TEMP_PREFIX) || !name.ends_with(".tmp") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let stale = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= max_age);
        if meta.is_file() && stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Write a file atomically with [`AtomicFile`]: `write` fills it, then it is committed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let file = AtomicFile::create(path)?;
    let mut w = file.writer()?;
    write(&mut w).map_err(|e| encode_error(path, &e))?;
    w.flush().map_err(|e| encode_error(path, &e))?;
    drop(w);
    file.commit()
}

/// Whether two paths name the same existing file (same device and inode on Unix).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        a.canonicalize().ok() == b.canonicalize().ok()
    }
}
