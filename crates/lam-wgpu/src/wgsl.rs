//! Includes for WGSL, which has none of its own. A shader line
//!
//! ```text
//! // #include "lib/grid.wgsl"
//! ```
//!
//! is replaced by that snippet of `shaders/lib/` (its own includes expanded
//! first). Each snippet is pasted once per shader, at its first include:
//! WGSL forbids declaring a name twice, and its module-scope declarations
//! may come in any order, so where a snippet lands does not matter and a
//! later include of it is simply dropped.
//!
//! The directive is a comment so that editors still read the file as
//! WGSL. `kernels.rs` expands each shader once per process and caches the
//! text; `tests/shaders_validate.rs` validates exactly that expanded text.

/// The directive's prefix; the rest of the line is a quoted snippet path.
pub(crate) const DIRECTIVE: &str = "// #include ";

/// A shader with its includes pasted in, and the snippets it pulled in
/// (directly or through other snippets), in order of first inclusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub text: String,
    pub includes: Vec<&'static str>,
}

/// Expands the includes of `source` (the text of shader `file`), looking
/// snippets up by path in `library`. Errors name the file and line of an
/// unknown snippet, a malformed directive, or an include cycle.
pub(crate) fn expand(
    file: &str,
    source: &str,
    library: &[(&'static str, &'static str)],
) -> Result<Expanded, String> {
    let mut out = Expanded {
        text: String::with_capacity(source.len() * 2),
        includes: Vec::new(),
    };
    paste(file, source, library, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// Appends `source` to `out.text`, pasting snippets for directives.
/// `stack` holds the snippets being pasted, to report cycles.
fn paste(
    file: &str,
    source: &str,
    library: &[(&'static str, &'static str)],
    stack: &mut Vec<&'static str>,
    out: &mut Expanded,
) -> Result<(), String> {
    for (n, line) in source.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix(DIRECTIVE) else {
            out.text.push_str(line);
            out.text.push('\n');
            continue;
        };
        let at = || format!("{file}:{}", n + 1);
        let path = rest
            .trim()
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .ok_or_else(|| format!("{}: expected {DIRECTIVE}\"lib/NAME.wgsl\"", at()))?;
        let &(name, text) = library
            .iter()
            .find(|(name, _)| *name == path)
            .ok_or_else(|| format!("{}: no snippet {path:?} in shaders/lib", at()))?;
        if stack.contains(&name) {
            return Err(format!("{}: {name} includes itself", at()));
        }
        if out.includes.contains(&name) {
            continue;
        }
        out.includes.push(name);
        out.text.push_str(&format!("// ---- begin {name} ----\n"));
        stack.push(name);
        paste(name, text, library, stack, out)?;
        stack.pop();
        out.text.push_str(&format!("// ---- end {name} ----\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &[(&str, &str)] = &[
        ("lib/a.wgsl", "const A: u32 = 1u;\n"),
        (
            "lib/b.wgsl",
            "// #include \"lib/a.wgsl\"\nconst B: u32 = A;\n",
        ),
        ("lib/loop.wgsl", "// #include \"lib/loop.wgsl\"\n"),
    ];

    #[test]
    fn snippets_are_pasted_once_with_their_own_includes() {
        let src = "// #include \"lib/b.wgsl\"\n  // #include \"lib/a.wgsl\"\nfn f() {}\n";
        let e = expand("s.wgsl", src, LIB).unwrap();
        assert_eq!(e.includes, vec!["lib/b.wgsl", "lib/a.wgsl"]);
        assert_eq!(e.text.matches("const A").count(), 1);
        assert!(e.text.find("const A").unwrap() < e.text.find("const B").unwrap());
        assert!(e.text.ends_with("fn f() {}\n"));
    }

    #[test]
    fn bad_directives_name_the_file_and_line() {
        let e = expand("s.wgsl", "\n// #include \"lib/none.wgsl\"\n", LIB).unwrap_err();
        assert!(e.contains("s.wgsl:2") && e.contains("lib/none.wgsl"), "{e}");
        let e = expand("s.wgsl", "// #include lib/a.wgsl\n", LIB).unwrap_err();
        assert!(e.contains("s.wgsl:1") && e.contains("expected"), "{e}");
        let e = expand("s.wgsl", "// #include \"lib/loop.wgsl\"\n", LIB).unwrap_err();
        assert!(e.contains("lib/loop.wgsl:1") && e.contains("itself"), "{e}");
    }
}
