//! Listing the files under an entry's `out/` directory.

use std::io;
use std::path::{Path, PathBuf};

/// One output file: its `/`-separated path relative to `out/`, and where it is.
#[derive(Debug, Clone)]
pub(crate) struct OutputFile {
    pub(crate) rel: String,
    pub(crate) path: PathBuf,
}

/// Every regular file under `out`, sorted by relative path. Directories
/// are walked (empty ones are not recorded); symlinks and other special
/// files are an error, since they could not be restored faithfully.
pub(crate) fn list_outputs(out: &Path) -> io::Result<Vec<OutputFile>> {
    let mut files = Vec::new();
    for item in walkdir::WalkDir::new(out).min_depth(1) {
        let item = item.map_err(io::Error::from)?;
        let kind = item.file_type();
        if kind.is_dir() {
            continue;
        }
        let rel = relative_name(out, item.path())?;
        if !kind.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("output {rel:?} is not a regular file (symlinks are not stored)"),
            ));
        }
        files.push(OutputFile {
            rel,
            path: item.into_path(),
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

fn relative_name(base: &Path, path: &Path) -> io::Result<String> {
    let rel = path.strip_prefix(base).map_err(io::Error::other)?;
    let mut parts = Vec::new();
    for part in rel.components() {
        let part = part.as_os_str().to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("output name is not UTF-8: {}", rel.display()),
            )
        })?;
        parts.push(part);
    }
    Ok(parts.join("/"))
}
