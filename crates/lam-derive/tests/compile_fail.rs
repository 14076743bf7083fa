//! What `#[derive(Module)]` rejects, and the message it gives: each file in
//! `tests/fail/` must fail to compile with exactly the error in the `.stderr`
//! file beside it (`TRYBUILD=overwrite cargo test -p lam-derive` rewrites
//! them after a deliberate change). The cases build against `lam-core`, as
//! `lam_core` renamed to `lam`, so no GPU backend is compiled for them.

#[test]
fn rejected_models_fail_with_their_message() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/fail/*.rs");
}
