//! A guard run on HCL text before it is parsed.
//!
//! hcl-edit 0.10's expression parser backtracks over an object key, an
//! operand, a `for` collection: when brackets that are operands of an
//! operator (`-{`, `!{`, `-(-{`, `-[for x in {`) nest inside one another and
//! the text does not close them, each level doubles the work. 840 bytes took
//! more than 10 s (found by `fuzz/run-all.sh policy_config`; measured: depth
//! 12 ≈ 50 ms, 16 ≈ 0.6 s, 20 ≈ 9.5 s), and index brackets left open do
//! the same more slowly (`broker_config`: 63 levels ≈ 0.9 s). Configuration
//! never needs operand brackets that deep (an object or list is not an
//! arithmetic operand) nor 32 brackets inside one another, so such text is
//! refused before the parser sees it, with the place where the limit was
//! passed. Strings, heredocs and comments are skipped; `${`
//! interpolations are code.

/// Brackets that are operands of an operator, open inside one another.
pub const MAX_OPERAND_NESTING: usize = 8;
/// Index brackets (`a[…]`, after a name or a closing bracket) open inside one
/// another: `b[-2--b[-1--b[…` costs the parser twice as much per level
/// (fuzz target `policy_config`: 24 levels ≈ 60 ms in release, > 10 s
/// instrumented).
pub const MAX_INDEX_NESTING: usize = 8;
/// Brackets of any kind open inside one another. Index brackets left open
/// (`a[b[c[…`) cost the parser twice as much per level too (fuzz target
/// `broker_config`: 63 levels ≈ 0.9 s; 32 levels ≈ 2 ms).
pub const MAX_NESTING: usize = 32;

/// Where and why [`check_nesting`] refused the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// Byte offset of the bracket that passed the limit.
    pub offset: usize,
    /// 1-based line and column (in characters) of that bracket.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Open {
    Bracket {
        operand: bool,
        index: bool,
    },
    /// `${` or `%{` inside a string: code until its `}`.
    Interpolation,
}

/// Refuses text whose brackets nest deeper than the parser can take quickly.
pub fn check_nesting(text: &str) -> Result<(), TooDeep> {
    let bytes = text.as_bytes();
    let mut stack: Vec<Open> = Vec::new();
    let mut operands = 0usize;
    let mut indexes = 0usize;
    let mut in_string = false;
    // The last two significant code bytes (not whitespace, not comments).
    let (mut prev, mut prev2) = (b'\n', b'\n');
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    (prev2, prev) = (prev, b'"');
                }
                // `$${` and `%%{` are escapes, not interpolations.
                b'$' | b'%'
                    if bytes.get(i + 1) == Some(&b'{')
                        && bytes.get(i.wrapping_sub(1)) != Some(&b) =>
                {
                    stack.push(Open::Interpolation);
                    in_string = false;
                    (prev2, prev) = (b'\n', b'\n');
                    i += 1;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'#' => i = line_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => i = line_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = find(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 1);
            }
            b'<' if bytes.get(i + 1) == Some(&b'<') => {
                if let Some(end) = heredoc_end(bytes, i) {
                    i = end;
                    (prev2, prev) = (prev, b'"');
                } else {
                    (prev2, prev) = (b'<', b'<');
                    i += 1;
                }
            }
            b'{' | b'[' | b'(' => {
                let operand = is_operator(prev, prev2);
                let index = b == b'['
                    && (prev.is_ascii_alphanumeric() || matches!(prev, b'_' | b']' | b')'));
                stack.push(Open::Bracket { operand, index });
                operands += usize::from(operand);
                indexes += usize::from(index);
                if operands > MAX_OPERAND_NESTING
                    || indexes > MAX_INDEX_NESTING
                    || stack.len() > MAX_NESTING
                {
                    let (line, column) = line_column(text, i);
                    let message = if operands > MAX_OPERAND_NESTING {
                        format!(
                            "expression nested too deeply: more than {MAX_OPERAND_NESTING} brackets are operands of an operator (such as `-{{`) inside one another here"
                        )
                    } else if indexes > MAX_INDEX_NESTING {
                        format!(
                            "expression nested too deeply: more than {MAX_INDEX_NESTING} index brackets (`a[b[…`) inside one another here"
                        )
                    } else {
                        format!("brackets nested more than {MAX_NESTING} deep")
                    };
                    return Err(TooDeep {
                        offset: i,
                        line,
                        column,
                        message,
                    });
                }
                (prev2, prev) = (b'\n', b);
            }
            b'}' | b']' | b')' => {
                match stack.pop() {
                    Some(Open::Interpolation) if b == b'}' => in_string = true,
                    Some(Open::Bracket { operand, index }) => {
                        operands -= usize::from(operand);
                        indexes -= usize::from(index);
                    }
                    _ => {}
                }
                (prev2, prev) = (prev, b);
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => (prev2, prev) = (prev, b),
        }
        i += 1;
    }
    Ok(())
}

/// Whether a bracket after `prev2 prev` is an operand of an operator.
fn is_operator(prev: u8, prev2: u8) -> bool {
    match prev {
        b'-' | b'+' | b'/' | b'%' | b'!' | b'&' | b'|' | b'<' => true,
        // `.*` is a splat, `a * [..]` a product.
        b'*' => prev2 != b'.' && prev2 != b'[',
        // `=>` introduces a `for` expression's value.
        b'>' => prev2 != b'=',
        // `==`, `!=`, `<=`, `>=`; a lone `=` assigns.
        b'=' => matches!(prev2, b'=' | b'!' | b'<' | b'>'),
        _ => false,
    }
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    find(bytes, from, b"\n").map_or(bytes.len(), |end| end.saturating_sub(1))
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// For `<<ID` or `<<-ID` at `at` followed by a newline: the index of the
/// last byte of the closing line (a line that is `ID` once trimmed).
fn heredoc_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 2;
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    let start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    if i == start {
        return None;
    }
    let id = &bytes[start..i];
    let mut line_start = find(bytes, i, b"\n")? + 1;
    loop {
        let end = find(bytes, line_start, b"\n").unwrap_or(bytes.len());
        if bytes[line_start..end].trim_ascii() == id {
            return Some(end.saturating_sub(1).max(line_start));
        }
        if end >= bytes.len() {
            return Some(bytes.len());
        }
        line_start = end + 1;
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_configuration_passes() {
        let text = r#"
offering "db" {
  version "1.0.0" {
    input "tags" {
      type    = map(string)
      default = { a = "b", c = "${upper("-{x")}" }
    }
    compose {
      primitive "p" {
        inputs = {
          name  = "${input.name}_x"
          limit = -(tier.values.max + 1) * 2
          list  = [for k, v in input.tags : { key = k, value = v }]
          map   = { for k, v in input.tags : k => { value = v } }
          same  = input.a == { x = 1 }
          splat = input.list.*[0]
          doc   = <<-EOT
            -{-{-{-{-{-{-{-{-{-{-{ not code
          EOT
        }
      }
    }
  }
}
# -{-{-{-{-{-{-{-{-{-{ comment
/* -{-{-{-{-{-{-{-{-{-{ */
"#;
        assert_eq!(check_nesting(text), Ok(()));
        // Deep but ordinary nesting (blocks, objects, lists) is fine.
        let deep = format!("a = {}1{}", "{ k = [".repeat(16), "] }".repeat(16));
        assert_eq!(check_nesting(&deep), Ok(()));
    }

    #[test]
    fn operand_brackets_nested_deeply_are_refused_with_their_place() {
        let text = format!("x = 1\na = {}", "-{a -b ".repeat(12));
        let err = check_nesting(&text).expect_err("too deep");
        assert_eq!((err.line, err.column), (2, 5 + 7 * MAX_OPERAND_NESTING + 1));
        assert!(err.message.contains("nested too deeply"), "{err}");
        for unit in [
            "- {a -b ",
            "-/*c*/{a -b ",
            "-(-{a -b ",
            "-!{a -b ",
            "-[for x in {a -b ",
        ] {
            let text = format!("a = {}", unit.repeat(20));
            assert!(check_nesting(&text).is_err(), "{unit:?}");
        }
        let too_many = format!("a = {}", "[".repeat(MAX_NESTING + 1));
        assert!(check_nesting(&too_many).is_err());
        let indexes = format!("a = {}", "b[-2--c".repeat(MAX_INDEX_NESTING + 1));
        let err = check_nesting(&indexes).expect_err("index brackets");
        assert!(err.message.contains("index brackets"), "{err}");
        // Ordinary indexing, nested a little, is fine.
        assert_eq!(
            check_nesting("a = x[y[z[0]]][1]\nb = m[\"k\"][0].n[*].o\n"),
            Ok(())
        );
    }

    #[test]
    fn fuzz_regressions_are_refused_at_once() {
        for data in [
            &include_bytes!(
                "../../fuzz/regressions/policy_config/timeout-c4254762d31a8aab9253ac17dd126d310efdf412"
            )[..],
            &include_bytes!(
                "../../fuzz/regressions/broker_config/timeout-f1d329add5ebb984d45e452b483e8859581f3668"
            )[..],
            &include_bytes!(
                "../../fuzz/regressions/policy_config/timeout-d8ae5e63d9471734114e173451a1b260e01f0f80"
            )[..],
        ] {
            let text = String::from_utf8_lossy(data);
            let started = std::time::Instant::now();
            assert!(check_nesting(&text).is_err());
            assert!(started.elapsed() < std::time::Duration::from_millis(100));
        }
    }
}
