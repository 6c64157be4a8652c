//! The fault shim (`faults/fault_shim.c`): an `LD_PRELOAD` library that fails a running
//! engine's fsyncs or steps its wall clock while a file exists, so that faults come from
//! outside the process. [`build`] compiles it with the machine's C compiler.

use std::path::{Path, PathBuf};

/// The shim's C source.
pub const SOURCE: &str = include_str!("../faults/fault_shim.c");

/// The shim could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the fault shim in {dir} with `cc`: {detail} (Debian: apt-get install gcc)")]
pub struct ShimError {
    /// Where.
    pub dir: String,
    /// Why.
    pub detail: String,
}

/// Compiles the shim into `dir/fault_shim.so` and returns its path.
pub fn build(dir: &Path) -> Result<PathBuf, ShimError> {
    let fail = |detail: String| ShimError {
        dir: dir.display().to_string(),
        detail,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let src = dir.join("fault_shim.c");
    let out = dir.join("fault_shim.so");
    std::fs::write(&src, SOURCE).map_err(|e| fail(e.to_string()))?;
    let result = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !result.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&result.stderr).trim().to_string(),
        ));
    }
    Ok(out)
}
