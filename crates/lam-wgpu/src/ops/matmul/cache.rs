//! The autotune cache: one JSON file per adapter and precision,
//! `<dir>/matmul-<adapter>.json` (`matmul-<adapter>-high.json` for
//! `MatmulPrecision::High`, whose choices may be f16 kernels), mapping
//! shape classes to kernel names:
//!
//! ```json
//! {"format": 4, "adapter": "Vulkan NVIDIA H200 (10de:2335) 570.86", "choices": {"m12-n12-k12-b0-modes22-t128": "tile128"}}
//! ```
//!
//! The adapter part of the name holds the backend, vendor and device ids,
//! the adapter's name and the driver's version, so a driver update starts a
//! fresh file. `<dir>` is `MatmulOptions::cache_dir`, else
//! `$XDG_CACHE_HOME/lam`, else `$HOME/.cache/lam`.
//!
//! The cache never fails a product: a missing, unreadable or corrupt file
//! reads as empty (and is replaced at the next write), and a failed write
//! is reported on stderr once and otherwise ignored. Writes merge with what
//! the file holds now and go through a temporary file renamed over the old
//! one, so readers (other processes, other devices) see the old file or the
//! new one, never a part of one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::choice::{MatmulKernel, MatmulPrecision};

/// The `format` this code reads and writes. A new candidate kernel bumps
/// it, so that files tuned without it are tuned again (2: `Tile32`; 3:
/// split-K; 4: classes of `F16` products, which the cooperative kernels
/// take at every precision).
const FORMAT: u64 = 4;

/// One adapter's cache file.
#[derive(Debug, Clone)]
pub(crate) struct TuneCache {
    path: PathBuf,
    adapter: String,
}

impl TuneCache {
    /// The cache of the adapter `info` at `precision` in `dir` (default:
    /// module docs), or `None` when no directory can be named (no `$HOME`).
    pub(crate) fn for_adapter(
        dir: Option<&Path>,
        info: &wgpu::AdapterInfo,
        precision: MatmulPrecision,
    ) -> Option<TuneCache> {
        let dir = dir.map(Path::to_path_buf).or_else(default_dir)?;
        let adapter = format!(
            "{} {} ({:04x}:{:04x}) {} {}",
            info.backend.to_str(),
            info.name,
            info.vendor,
            info.device,
            info.driver,
            info.driver_info
        );
        // Choices under `High` may name f16 kernels: a file of their own.
        let suffix = match precision {
            MatmulPrecision::Highest => "",
            MatmulPrecision::High => "-high",
        };
        let name = format!("matmul-{}{suffix}.json", file_key(&adapter));
        Some(TuneCache::at(dir.join(name), adapter))
    }

    /// A cache file at `path` for the adapter described by `adapter`.
    pub(crate) fn at(path: PathBuf, adapter: String) -> TuneCache {
        TuneCache { path, adapter }
    }

    /// The file's path.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The saved choices; empty when the file is missing or unusable.
    pub(crate) fn load(&self) -> HashMap<String, MatmulKernel> {
        self.read().unwrap_or_default()
    }

    /// The saved choices, or why the file cannot be used.
    pub(crate) fn read(&self) -> Result<HashMap<String, MatmulKernel>, String> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| e.to_string())?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if json.get("format").and_then(|f| f.as_u64()) != Some(FORMAT) {
            return Err(format!("not format {FORMAT}"));
        }
        let choices = json
            .get("choices")
            .and_then(|c| c.as_object())
            .ok_or("no \"choices\" object")?;
        // Names of kernels this build lacks are skipped, not errors.
        Ok(choices
            .iter()
            .filter_map(|(class, k)| Some((class.clone(), MatmulKernel::from_name(k.as_str()?)?)))
            .collect())
    }

    /// Adds `entries` to the file (merged with what it holds now).
    pub(crate) fn store(&self, entries: &[(String, MatmulKernel)]) {
        if let Err(e) = self.write(entries) {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "lam-wgpu: could not save matmul autotune results to {}: {e}",
                    self.path.display()
                );
            }
        }
    }

    fn write(&self, entries: &[(String, MatmulKernel)]) -> std::io::Result<()> {
        let mut choices = self.load();
        choices.extend(entries.iter().cloned());
        let mut sorted: Vec<(&String, &MatmulKernel)> = choices.iter().collect();
        sorted.sort_by_key(|(class, _)| *class);
        let map: serde_json::Map<String, serde_json::Value> = sorted
            .into_iter()
            .map(|(c, k)| (c.clone(), serde_json::Value::from(k.name())))
            .collect();
        let json = serde_json::json!({
            "format": FORMAT,
            "adapter": self.adapter,
            "choices": map,
        });
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        // A name no other writer uses: process, and a counter within it.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = self.path.with_extension(format!(
            "json.{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let text = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
    }
}

/// `$XDG_CACHE_HOME/lam`, else `$HOME/.cache/lam`.
fn default_dir() -> Option<PathBuf> {
    let non_empty = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    non_empty("XDG_CACHE_HOME")
        .or_else(|| non_empty("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("lam"))
}

/// `adapter` as a file-name part: letters, digits, `.` and `-`, runs of
/// anything else as one `_`, at most 120 characters.
fn file_key(adapter: &str) -> String {
    let mut key = String::new();
    for ch in adapter.chars() {
        if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
            key.push(ch);
        } else if !key.ends_with('_') {
            key.push('_');
        }
    }
    key.trim_matches('_').chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lam-tune-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn cache(dir: &Path) -> TuneCache {
        TuneCache::at(
            dir.join("sub").join("matmul-test.json"),
            "test adapter".into(),
        )
    }

    #[test]
    fn stores_merge_and_read_back() {
        let dir = temp_dir("merge");
        let c = cache(&dir);
        assert!(c.load().is_empty(), "a missing file reads as empty");
        c.store(&[("a".into(), MatmulKernel::Tile128)]);
        c.store(&[("b".into(), MatmulKernel::Subgroup)]);
        c.store(&[("a".into(), MatmulKernel::Coop)]);
        let got = c.read().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["a"], MatmulKernel::Coop);
        assert_eq!(got["b"], MatmulKernel::Subgroup);
        // No temporary files are left behind.
        let left: Vec<_> = std::fs::read_dir(c.path().parent().unwrap())
            .unwrap()
            .collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_or_foreign_files_read_as_empty_and_are_rewritten() {
        let dir = temp_dir("corrupt");
        let c = cache(&dir);
        std::fs::create_dir_all(c.path().parent().unwrap()).unwrap();
        for bad in [
            "{\"format\": 4, \"choi",
            "{\"format\": 2, \"choices\": {}}",
            "[1, 2]",
            "{\"format\": 99, \"choices\": {}}",
            "\u{0}\u{1}binary",
        ] {
            std::fs::write(c.path(), bad).unwrap();
            assert!(c.read().is_err(), "{bad:?} is rejected");
            assert!(c.load().is_empty());
        }
        // Unknown kernel names are skipped; known ones kept.
        std::fs::write(
            c.path(),
            r#"{"format": 4, "choices": {"x": "warp9", "y": "tile64", "z": 3}}"#,
        )
        .unwrap();
        let got = c.read().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["y"], MatmulKernel::Tile64);
        std::fs::write(c.path(), "garbage").unwrap();
        c.store(&[("k".into(), MatmulKernel::Tile64)]);
        assert_eq!(c.read().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_directory_is_not_an_error() {
        let dir = temp_dir("unwritable");
        std::fs::create_dir_all(&dir).unwrap();
        // A file where the directory should be.
        std::fs::write(dir.join("sub"), "in the way").unwrap();
        let c = cache(&dir);
        c.store(&[("k".into(), MatmulKernel::Tile64)]);
        assert!(c.load().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_writers_never_leave_a_partial_file() {
        let dir = temp_dir("concurrent");
        let path = cache(&dir).path().to_path_buf();
        std::thread::scope(|s| {
            for w in 0..4 {
                let path = path.clone();
                s.spawn(move || {
                    let c = TuneCache::at(path, format!("writer {w}"));
                    for i in 0..25 {
                        c.store(&[(format!("w{w}-{i}"), MatmulKernel::Tile64)]);
                    }
                });
            }
            let reader = TuneCache::at(path.clone(), "reader".into());
            s.spawn(move || {
                for _ in 0..200 {
                    if reader.path().exists() {
                        let got = reader.read();
                        assert!(got.is_ok(), "a reader saw a broken file: {got:?}");
                    }
                }
            });
        });
        let c = TuneCache::at(path, "after".into());
        let got = c.read().unwrap();
        // Racing merges may drop entries, but the file is always whole.
        assert!(!got.is_empty());
        c.store(&[("final".into(), MatmulKernel::Tile128)]);
        let after = c.read().unwrap();
        assert!(after.len() > got.len() && got.keys().all(|k| after.contains_key(k)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_keys_are_tame() {
        assert_eq!(
            file_key("Vulkan llvmpipe (LLVM 15.0.6, 256 bits) (10005:0000) llvmpipe Mesa 22.3.6"),
            "Vulkan_llvmpipe_LLVM_15.0.6_256_bits_10005_0000_llvmpipe_Mesa_22.3.6"
        );
        assert_eq!(file_key(&"x/".repeat(200)).len(), 120);
    }
}
