//! Telling a prefix problem from missing tensors.
//!
//! When a model's names and a file's differ by a prefix — a model saved
//! inside `nn.DataParallel` (`module.fc1.weight`), a checkpoint dict
//! (`model.fc1.weight`), a `Sequential` saved as a field of a bigger model
//! (`features.0.weight` for `0.weight`) — every tensor is both missing and
//! unexpected. Listing them all hides the one fix, so the loader looks for
//! a pair of prefixes that maps every missing name onto a file name and,
//! when there is one, says so in one sentence with the call that loads it.

use std::collections::HashSet;

/// A prefix problem: the model's names under `model` (`""` or ending in
/// `.`) are the file's names under `file`.
struct Renaming {
    model: String,
    file: String,
}

/// If every one of `missing` (the module's own names, without `prefix`)
/// is a file name once a prefix is swapped, the sentence that says so and
/// the file names it accounts for. `prefix` is what the names were looked
/// up under (`load_model_from`'s; empty for `load_model`).
pub(crate) fn prefix_problem(
    missing: &[&str],
    file: &HashSet<&str>,
    prefix: &str,
) -> Option<(String, HashSet<String>)> {
    let r = find(missing, file)?;
    // A one-tensor coincidence (`fc1.weight` and `fc2.weight`) is no pattern.
    if missing.len() < 2 && !r.model.is_empty() && !r.file.is_empty() {
        return None;
    }
    let explained: HashSet<String> = missing
        .iter()
        .filter_map(|m| Some(format!("{}{}", r.file, m.strip_prefix(r.model.as_str())?)))
        .collect();
    let example = missing[0];
    let in_file = format!("{}{}", r.file, &example[r.model.len()..]);
    let all = format!("and likewise for all {} tensors", missing.len());
    let (p, m, f) = (prefix, trim(&r.model), trim(&r.file));
    let msg = match (m.is_empty(), f.is_empty()) {
        (true, true) => format!(
            "the file has the model's names without the prefix `{p}.` (`{example}`, {all}): \
             load it with `load_model(&model, path)`"
        ),
        (true, false) => format!(
            "the names differ by a prefix: the file has `{in_file}` for the model's `{example}` \
             ({all}); its tensors sit under `{f}`: load them with \
             `load_model_from(&model, path, \"{f}\")`"
        ),
        (false, true) => format!(
            "the names differ by a prefix: the file has `{in_file}` for the model's `{example}` \
             ({all}); the file holds the sub-module `{m}` alone: load it into that sub-module"
        ),
        (false, false) => format!(
            "the names differ by a prefix: the file has `{in_file}` for the model's `{example}` \
             ({all}); load the sub-module `{m}` with `load_model_from(&sub_module, path, \"{f}\")`"
        ),
    };
    Some((msg, explained))
}

/// The first pair of prefixes, from the first missing name and some file
/// name sharing its last components, that maps every missing name onto a
/// file name.
fn find(missing: &[&str], file: &HashSet<&str>) -> Option<Renaming> {
    let first = *missing.first()?;
    let mut tried = HashSet::new();
    let mut candidates: Vec<&str> = file.iter().copied().collect();
    candidates.sort_unstable(); // a deterministic choice between equal candidates
    for f in candidates {
        let Some(common) = common_suffix(first, f) else {
            continue;
        };
        let model = &first[..first.len() - common];
        let file_prefix = &f[..f.len() - common];
        if !tried.insert((model, file_prefix)) {
            continue;
        }
        let maps = missing.iter().all(|m| {
            m.strip_prefix(model)
                .is_some_and(|rest| file.contains(format!("{file_prefix}{rest}").as_str()))
        });
        if maps {
            return Some(Renaming {
                model: model.to_string(),
                file: file_prefix.to_string(),
            });
        }
    }
    None
}

/// The length of the longest run of whole dotted components that ends
/// both names, if any.
fn common_suffix(a: &str, b: &str) -> Option<usize> {
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.rsplit('.').collect(), b.rsplit('.').collect());
    let n = pa.iter().zip(&pb).take_while(|(x, y)| x == y).count();
    if n == 0 {
        return None;
    }
    // The components' lengths plus the dots between them.
    Some(pa[..n].iter().map(|c| c.len()).sum::<usize>() + n - 1)
}

fn trim(prefix: &str) -> &str {
    prefix.strip_suffix('.').unwrap_or(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(missing: &[&str], file: &[&str]) -> Option<String> {
        let file: HashSet<&str> = file.iter().copied().collect();
        prefix_problem(missing, &file, "").map(|(m, _)| m)
    }

    #[test]
    fn prefixes_are_found_both_ways() {
        let model = ["0.weight", "0.bias", "2.weight", "2.bias"];
        let file = [
            "features.0.weight",
            "features.0.bias",
            "features.2.weight",
            "features.2.bias",
        ];
        let m = check(&model, &file).expect("a prefix problem");
        assert!(
            m.contains("load_model_from(&model, path, \"features\")"),
            "{m}"
        );
        let m = check(&file, &model).expect("a prefix problem");
        assert!(m.contains("sub-module `features`"), "{m}");
        let m = check(
            &["fc.weight", "fc.bias"],
            &["module.fc.weight", "module.fc.bias", "x"],
        )
        .expect("DataParallel");
        assert!(
            m.contains("\"module\"") && m.contains("all 2 tensors"),
            "{m}"
        );
    }

    #[test]
    fn partial_matches_are_not_prefix_problems() {
        assert_eq!(check(&["extra"], &["fc1.weight", "fc1.bias"]), None);
        assert_eq!(check(&["fc1.weight"], &["fc2.weight"]), None);
        // One of two names maps, the other does not.
        assert_eq!(check(&["a.w", "b.w"], &["m.a.w", "c.w"]), None);
        // `xfc.weight` is not `x` + `fc.weight`: only whole components count.
        assert_eq!(common_suffix("fc.weight", "xfc.weight"), Some(6));
    }
}
