//! Compile-fail tests of `#[node]`: the messages a user sees for common mistakes, one clear
//! error each, at the offending token, with no follow-up errors or warnings.

#[test]
fn node_macro_reports_mistakes_at_the_offending_token() {
    // The compiler runs trybuild starts print nothing in the test log but the verdicts,
    // and no colour codes where nobody reads colours.
    std::env::set_var("CARGO_TERM_QUIET", "true");
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        std::env::set_var("NO_COLOR", "1");
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
