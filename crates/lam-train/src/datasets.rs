//! Loaders for the data sets shipped in `examples/data` (see its README for
//! provenance and licences). Nothing is downloaded at run time.

use std::path::{Path, PathBuf};

use lam_core::{Error, Result};

use crate::data::csv::{read_csv, CsvOptions};
use crate::data::TensorDataset;

/// Where the repository keeps `digits.csv.gz`: `examples/data/` under the
/// current directory when it is there (a run from the repository root, on
/// any machine), else that folder of the checkout this crate was compiled in.
pub fn digits_path() -> PathBuf {
    shipped("digits.csv.gz")
}

fn shipped(name: &str) -> PathBuf {
    let local = Path::new("examples/data").join(name);
    if local.exists() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/data")
            .join(name)
    }
}

/// The UCI optical-digits test split (scikit-learn's `load_digits`): 1,797
/// images of 8×8 pixels valued 0–16, as features `[64]` (row-major) and
/// classes 0–9. `path` is a gzipped CSV with no header and 65 integers per
/// line, the label last. Any other content is an [`Error::Format`] naming
/// the file and line.
pub fn digits(path: impl AsRef<Path>) -> Result<TensorDataset> {
    let path = path.as_ref();
    let data = read_csv(path, &CsvOptions::new())?;
    if data.sample_len() != 64 {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: format!(
                "expected 65 columns (64 pixels and a label), found {}",
                data.sample_len() + 1
            ),
        });
    }
    let bad_label = data
        .labels()
        .and_then(|l| l.iter().position(|c| !(0..10).contains(c)));
    if let Some(row) = bad_label {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: format!("row {}: label must be 0-9", row + 1),
        });
    }
    if let Some(i) = data
        .features()
        .as_f32()?
        .iter()
        .position(|p| !(0.0..=16.0).contains(p))
    {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: format!("row {}: pixel {} is outside 0-16", i / 64 + 1, i % 64),
        });
    }
    Ok(data)
}

/// Where the repository keeps `wine.csv` (see [`digits_path`]).
pub fn wine_path() -> PathBuf {
    shipped("wine.csv")
}

/// The UCI wine recognition data (scikit-learn's `load_wine`): 178 wines
/// from three cultivars, 13 chemical measurements each, and the names of
/// those measurements. `path` is a CSV whose header names the 13 features
/// and `class` (0–2).
pub fn wine(path: impl AsRef<Path>) -> Result<(TensorDataset, Vec<String>)> {
    let path = path.as_ref();
    let options = CsvOptions::new().header(true).target_name("class");
    let data = read_csv(path, &options)?;
    let table = crate::data::csv::read_table(path, true, ',')?;
    let names: Vec<String> = table
        .header()
        .unwrap_or_default()
        .iter()
        .filter(|n| *n != "class")
        .cloned()
        .collect();
    if data.sample_len() != 13 || names.len() != 13 {
        return Err(Error::Format {
            path: path.display().to_string(),
            msg: format!(
                "expected 13 feature columns and `class`, found {} features",
                data.sample_len()
            ),
        });
    }
    Ok((data, names))
}
