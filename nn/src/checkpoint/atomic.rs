//! Atomic file replacement: after a crash at any point, the target holds either its old
//! contents or the complete new ones, never a mixture or a prefix.

use plies_autodiff::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path`: into a temporary file in the same folder (a rename is atomic only
/// within one file system), flushed to disk before the rename so that the new name never
/// points at data still in the page cache, then the folder flushed so the rename itself
/// survives a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| Error::io(path, "not a file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    sync_dir(path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// `File::open` cannot open a folder on Windows; there the rename is left to NTFS's journal.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}
