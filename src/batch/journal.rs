//! The batch journal: an append-only file in the output folder recording each finished file, so
//! the same command after a crash, `kill -9` or Ctrl-C finishes the rest without redoing
//! finished files.
//!
//! Watch folders use the same journal as their ledger (with content checksums and failures).
//!
//! One record per line: the CRC-32 of the JSON text (8 hex digits), a space, the JSON, a
//! newline. A line whose checksum does not match (a torn last write) is ignored. Records are
//! appended after the output was committed (fsync, rename), then the journal is fsynced: a file
//! is either recorded and complete, or redone (atomically replacing whatever was there).
//!
//! The journal is named after a hash of everything that shapes the outputs (chain, format,
//! quality, name template, Opossum version), so another chain or format writing to the same
//! folder starts its own. While a run appends to a journal it holds an exclusive lock on it; a
//! concurrent run with the same settings appends to a numbered sibling and reads them all.
//! Every journal in the folder (other settings, batch or watch) says which outputs Opossum wrote
//! there and from which input: those are never taken as inputs, and an existing file is
//! replaced only by a new render of the input it came from.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Names of every journal start with this (batch and watch ledgers alike).
pub const JOURNAL_PREFIX: &str = ".opossum-";

/// What identifies an input's content well enough to skip it: its path, size and mtime.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// The input's path as given (lossy for non-UTF-8 names; `key` is exact).
    pub input: String,
    /// Hex of the path's bytes (exact for any file name).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: u128,
}

impl Stamp {
    /// A stamp that only names the input (size and mtime 0): what a claim record carries,
    /// since only its key is read back.
    fn naming(input: &Path, key: String) -> Stamp {
        Stamp {
            input: input.to_string_lossy().into_owned(),
            key,
            size: 0,
            mtime_ns: 0,
        }
    }

    /// The stamp of `path` now.
    pub fn of(path: &Path) -> Result<Stamp> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Stamp {
            input: path.to_string_lossy().into_owned(),
            key: path_key(path),
            size: meta.len(),
            mtime_ns,
        })
    }
}

/// Hex of a path's bytes.
pub fn path_key(path: &Path) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt as _;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().into_owned().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One finished file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The input as it was when rendered.
    pub stamp: Stamp,
    /// Hex of the output path's bytes.
    pub output_key: String,
    /// CRC-32 of the input's content, where it was computed (watch folders: a file touched
    /// without a change is recognised).
    #[serde(default)]
    pub crc32: Option<u32>,
    /// The file failed (watch folders do not retry it until it changes).
    #[serde(default)]
    pub failed: bool,
    /// Written before the render: the output is about to be this input's, so a run killed
    /// between the output's rename and its record may replace it on resume (it is not a
    /// file Opossum did not write). Not a finished file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub claim: bool,
}

/// An open journal (locked for this process).
pub struct Journal {
    path: PathBuf,
    file: File,
    done: HashMap<String, Record>,
    /// Output key → input key, from every journal in the folder.
    owners: HashMap<String, String>,
}

impl Journal {
    /// Open the journal `stem` in `dir`: read the records of every `stem*.journal` (earlier
    /// runs, concurrent runs, shards) and append to the first of `stem.journal`,
    /// `stem-2.journal`, … that no other running process holds, so two batches with the same
    /// settings (say, on different files into one folder) each keep their own.
    pub fn open(dir: &Path, stem: &str) -> Result<Journal> {
        let mut done = HashMap::new();
        let mut owners = HashMap::new();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("reading the output folder", dir, e))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                (n.starts_with(stem) || n.starts_with(JOURNAL_PREFIX)) && n.ends_with(".journal")
            })
            .collect();
        names.sort();
        for name in &names {
            let path = dir.join(name);
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            let ours = name.starts_with(stem);
            for line in BufReader::new(text.as_slice())
                .split(b'\n')
                .map_while(std::result::Result::ok)
            {
                if let Some(record) = parse_line(&line) {
                    if !record.failed && !record.output_key.is_empty() {
                        owners.insert(record.output_key.clone(), record.stamp.key.clone());
                    }
                    if ours && !record.claim {
                        done.insert(record.stamp.key.clone(), record);
                    }
                }
            }
        }
        for n in 1..=64 {
            let name = if n == 1 {
                format!("{stem}.journal")
            } else {
                format!("{stem}-{n}.journal")
            };
            let path = dir.join(name);
            let mut file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(|e| match e.kind() {
                    // The folder cannot be written at all: say so, naming the folder.
                    std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem => {
                        Error::io("writing in the output folder", dir, e)
                    }
                    _ => Error::io("opening the journal", &path, e),
                })?;
            if file.try_lock().is_err() {
                continue;
            }
            // End a torn last line, so the next record starts on a line of its own.
            let len = file.metadata().map_or(0, |m| m.len());
            if len > 0 {
                let text =
                    std::fs::read(&path).map_err(|e| Error::io("reading the journal", &path, e))?;
                if text.last().is_some_and(|&b| b != b'\n') {
                    file.write_all(b"\n")
                        .map_err(|e| Error::io("writing the journal", &path, e))?;
                }
            }
            return Ok(Journal {
                path,
                file,
                done,
                owners,
            });
        }
        Err(Error::Config {
            reason: "64 runs with the same settings are writing to this folder".to_owned(),
            path: Some(dir.to_path_buf()),
        })
    }

    /// Whether `stamp` was finished into `output` (and that output still exists).
    pub fn is_done(&self, stamp: &Stamp, output: &Path) -> bool {
        self.done.get(&stamp.key).is_some_and(|r| {
            !r.failed
                && r.stamp == *stamp
                && r.output_key == path_key(output)
                && std::fs::metadata(output).is_ok_and(|m| m.is_file() && m.len() > 0)
        })
    }

    /// Whether `path` is an output some run recorded in this folder's journals wrote, with
    /// any settings (so it is not taken as an input when input and output folders are the
    /// same).
    pub fn is_output(&self, path: &Path) -> bool {
        self.owners.contains_key(&path_key(path))
    }

    /// Whether rendering `input` may write `output`: nothing is there, or what is there is an
    /// earlier render of the same input (with any settings). Files Opossum did not write, and
    /// other inputs' outputs, are never replaced.
    pub fn may_write(&self, output: &Path, input: &Path) -> bool {
        std::fs::symlink_metadata(output).is_err()
            || self.owners.get(&path_key(output)) == Some(&path_key(input))
    }

    /// Finished records.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// The last record of the input with this key.
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.done.get(key)
    }

    /// Record a finished file durably.
    pub fn record(&mut self, stamp: Stamp, output: &Path) -> Result<()> {
        self.append(Record {
            stamp,
            output_key: path_key(output),
            crc32: None,
            failed: false,
            claim: false,
        })
    }

    /// Note, before rendering `input` into `output`, that the output will be this input's
    /// (see [`Record::claim`]). Not fsynced: it only has to outlive a killed process, which
    /// the page cache does; the finished record that follows is durable.
    pub fn claim(&mut self, input: &Path, output: &Path) -> Result<()> {
        let key = path_key(input);
        let output_key = path_key(output);
        if self.owners.get(&output_key) == Some(&key) {
            return Ok(());
        }
        let record = Record {
            stamp: Stamp::naming(input, key),
            output_key,
            crc32: None,
            failed: false,
            claim: true,
        };
        self.write(&record, false)?;
        self.owners.insert(record.output_key, record.stamp.key);
        Ok(())
    }

    /// Append `record` durably (fsync) and index it.
    pub fn append(&mut self, record: Record) -> Result<()> {
        self.write(&record, true)?;
        if !record.failed && !record.output_key.is_empty() {
            self.owners
                .insert(record.output_key.clone(), record.stamp.key.clone());
        }
        self.done.insert(record.stamp.key.clone(), record);
        Ok(())
    }

    fn write(&mut self, record: &Record, durable: bool) -> Result<()> {
        let json = serde_json::to_string(record)
            .map_err(|e| Error::Internal(format!("journal record: {e}")))?;
        let line = format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()));
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| {
                if durable {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| Error::io("writing the batch journal", &self.path, e))
    }
}

fn parse_line(line: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(line).ok()?;
    let (crc, json) = text.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32fast::hash(json.as_bytes()) == crc)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.jpg");
        let output = dir.path().join("a.webp");
        std::fs::write(&input, b"x").unwrap();
        std::fs::write(&output, b"y").unwrap();
        let stamp = Stamp::of(&input).unwrap();
        {
            let mut j = Journal::open(dir.path(), "j").unwrap();
            assert!(!j.is_done(&stamp, &output));
            j.record(stamp.clone(), &output).unwrap();
            // A second run with the same settings meanwhile gets a journal of its own and
            // sees the first one's records.
            let other = Journal::open(dir.path(), "j").unwrap();
            assert_eq!(other.path.file_name().unwrap(), "j-2.journal");
            assert!(other.is_done(&stamp, &output));
        }
        // A torn record (no checksum match) after the good one.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("j.journal"))
            .unwrap();
        f.write_all(b"0badc0de {\"stamp\":{\"inp").unwrap();
        drop(f);
        let mut j = Journal::open(dir.path(), "j").unwrap();
        assert_eq!(j.len(), 1);
        // Records after the torn one are read back too.
        let other = dir.path().join("b.jpg");
        std::fs::write(&other, b"z").unwrap();
        j.record(Stamp::of(&other).unwrap(), &output).unwrap();
        drop(j);
        let j = Journal::open(dir.path(), "j").unwrap();
        assert_eq!(j.len(), 2);
        assert!(j.is_done(&stamp, &output));
        assert!(j.is_output(&output));
        // A changed input is not done.
        std::fs::write(&input, b"changed").unwrap();
        assert!(!j.is_done(&Stamp::of(&input).unwrap(), &output));
    }

    #[test]
    fn outputs_are_replaced_only_by_renders_of_their_own_input() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jpg"), dir.path().join("b.jpg"));
        let (out_a, mine) = (dir.path().join("a.png"), dir.path().join("mine.png"));
        for p in [&a, &b, &out_a, &mine] {
            std::fs::write(p, b"x").unwrap();
        }
        // Killed after the output's rename, before its record: only the claim is there.
        Journal::open(dir.path(), ".opossum-batch-1")
            .unwrap()
            .claim(&a, &out_a)
            .unwrap();
        // Another run (other settings) reads every journal in the folder.
        let other = Journal::open(dir.path(), ".opossum-batch-2").unwrap();
        assert!(other.may_write(&out_a, &a));
        assert!(!other.may_write(&out_a, &b), "another input's output");
        assert!(!other.may_write(&mine, &a), "a file Opossum did not write");
        assert!(other.may_write(&dir.path().join("new.png"), &b));
        assert!(other.is_output(&out_a) && !other.is_output(&mine));
        // A claim is not a finished file.
        let same = Journal::open(dir.path(), ".opossum-batch-1").unwrap();
        assert!(same.is_empty());
    }
}
