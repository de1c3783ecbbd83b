//! Feeds arbitrary bytes to `PolicyConfig::parse` (the text half of `PolicyConfig::load`;
//! expiry checks need today's date and are left out): a config or an error, never a panic.
//! Parsing is deterministic.
#![no_main]

use std::path::Path;

use broker::policy::PolicyConfig;
use libfuzzer_sys::fuzz_target;

const MAX_LEN: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LEN {
        return;
    }
    // `PolicyConfig::load` reads with `read_to_string` (UTF-8 only); lossy conversion keeps
    // every mutated input useful. `parse` itself does no I/O, so the paths are never read.
    let text = String::from_utf8_lossy(data);
    let base = Path::new("/nonexistent/fuzz");
    let origin = Path::new("/nonexistent/fuzz/policy.hcl");
    match PolicyConfig::parse(&text, base, origin) {
        Ok(config) => {
            let again = PolicyConfig::parse(&text, base, origin).expect("parsed once, parses again");
            assert_eq!(again, config);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
