//! Compile-fail catalogue for `#[cached]`: one misuse per file under
//! `tests/ui/<topic>/`, each with the exact compiler output in its `.stderr`.
//! `tests/ui/pass/` holds forms that must keep compiling.
//!
//! Regenerate after a deliberate message change with
//! `TRYBUILD=overwrite cargo test --test ui`, then read every diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/**/*.rs");
    // A later glob overrides the expectation for paths an earlier one matched.
    t.pass("tests/ui/pass/*.rs");
}
