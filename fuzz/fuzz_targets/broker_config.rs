//! Feeds arbitrary bytes to `BrokerConfig::parse`: a config or an error, never a panic.
//! Parsing is deterministic, and an error's line (when given) lies within the input.
#![no_main]

use std::path::Path;

use broker::config::BrokerConfig;
use libfuzzer_sys::fuzz_target;

const MAX_LEN: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LEN {
        return;
    }
    // `BrokerConfig::load` reads with `read_to_string` (UTF-8 only); lossy conversion keeps
    // every mutated input useful. `parse` itself does no I/O, so the paths are never read.
    let text = String::from_utf8_lossy(data);
    let base = Path::new("/nonexistent/fuzz");
    let origin = Path::new("/nonexistent/fuzz/broker.hcl");
    let first = BrokerConfig::parse(&text, base, origin);
    match &first {
        Ok(config) => {
            let again = BrokerConfig::parse(&text, base, origin).expect("parsed once, parses again");
            assert_eq!(&again, config);
        }
        Err(error) => {
            let _ = error.to_string();
            if let Some(line) = error.line {
                let lines = text.split('\n').count();
                assert!(line >= 1 && line <= lines, "line {line} of {lines}: {error}");
            }
        }
    }
});
