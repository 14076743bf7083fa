//! ARCHITECTURE.md's "Op families → files" table stays true: every file it
//! names exists, every Backend method of the trait's method list appears in
//! it exactly once, and every file of the folders it covers (lam-cpu's
//! sources, lam-wgpu's ops, the shaders, the view-fuzz cases) is named in
//! it or listed as a support file. Moving or renaming a file without
//! updating the table fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The rows of the markdown table that follows `heading`, as cells.
fn table(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn names(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The files (not folders) directly in `dir` with extension `ext`.
fn files_in(dir: &Path, ext: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            p.file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn the_op_family_table_names_every_file_and_method() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let rows = table(&doc, "## Op families → files");
    assert!(rows.len() >= 11, "the table has {} families", rows.len());
    // Columns 2.. and the folder each names files in.
    let folders = [
        "crates/lam-core/src",
        "crates/lam-cpu/src",
        "crates/lam-wgpu/src",
        "shaders",
        "tests/view_fuzz",
    ];
    let mut named: Vec<BTreeSet<String>> = vec![BTreeSet::new(); folders.len()];
    let mut methods = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), 2 + folders.len(), "row {row:?}");
        methods.extend(names(&row[1]));
        for (k, folder) in folders.iter().enumerate() {
            for file in names(&row[2 + k]) {
                let path = root().join(folder).join(&file);
                assert!(
                    path.is_file(),
                    "ARCHITECTURE.md names {}, which does not exist",
                    path.display()
                );
                named[k].insert(file);
            }
        }
    }
    // Every method once.
    let mut sorted = methods.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        methods.len(),
        "a method is listed twice: {methods:?}"
    );
    let mut all: Vec<String> = lam::backend::OP_METHODS
        .iter()
        .map(|m| m.to_string())
        .collect();
    all.sort();
    assert_eq!(
        sorted, all,
        "the table's Backend methods differ from backend::OP_METHODS"
    );

    // Every file of the covered folders is named, or a support file.
    let support = table(&doc, "Support files, which serve every family");
    let support_of = |folder: &str| -> BTreeSet<String> {
        support
            .iter()
            .filter(|r| r[0] == folder)
            .flat_map(|r| names(&r[1]))
            .map(|n| n.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    let checks = [
        ("crates/lam-cpu/src", "rs", "lam-cpu", 1),
        ("crates/lam-wgpu/src/ops", "rs", "lam-wgpu ops", 2),
        ("shaders", "wgsl", "shaders", 3),
        ("tests/view_fuzz", "rs", "view fuzz", 4),
    ];
    for (dir, ext, support_row, column) in checks {
        let allowed = support_of(support_row);
        for file in files_in(&root().join(dir), ext) {
            let as_named = if dir.ends_with("/ops") {
                format!("ops/{file}")
            } else {
                file.clone()
            };
            assert!(
                named[column].contains(&as_named) || allowed.contains(&file),
                "{dir}/{file} is in no op family of ARCHITECTURE.md's table, nor a support file"
            );
        }
    }
    // The shader snippets folder is a support entry.
    assert!(
        support_of("shaders").contains("lib/"),
        "shaders/lib/ is a support entry"
    );
}
