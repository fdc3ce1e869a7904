//! Compile-fail tests of `#[node]`: the messages a user sees for common mistakes.

#[test]
fn node_macro_reports_mistakes_at_the_offending_token() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
