//! Loads arbitrary bytes as one catalog file. The loader promises "parsing never fails, it
//! reports": any text yields a catalog and diagnostics, never a panic (or a hang: run with
//! `-timeout=`). Every diagnostic must point into the input: 1 ≤ line ≤ lines in the text,
//! 1 ≤ col ≤ chars in that line + 1 (the position just past the line's end is fine).
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_catalog::{Source, load_sources};

/// Longer inputs only slow the fuzzer down; catalog files are small.
const MAX_LEN: usize = 16 * 1024;
const NAME: &str = "fuzz.hcl";

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LEN {
        return;
    }
    // `load_dir` reads files with `read_to_string`, so real input is always UTF-8. Lossy
    // conversion (rather than skipping invalid UTF-8) keeps every mutated input useful.
    let text = String::from_utf8_lossy(data).into_owned();
    let source = Source { name: NAME.to_string(), text: text.clone() };
    let (_catalog, diags) = load_sources(vec![source]);

    let lines: Vec<&str> = text.split('\n').collect();
    for diag in &diags {
        // Display must not panic either.
        let _ = diag.to_string();
        assert_eq!(diag.file, NAME, "{diag}");
        assert!(diag.line >= 1 && diag.line <= lines.len(), "line out of range: {diag}");
        let chars = lines[diag.line - 1].chars().count();
        assert!(diag.col >= 1 && diag.col <= chars + 1, "col out of range: {diag}");
    }
});
