//! Diagnostics: what the loader reports instead of failing.
//!
//! A diagnostic always points at a position in a source file (1-based line and 1-based column
//! counted in chars), shaped like hashicorp/hcl's `hcl.Diagnostic` with a subject range.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// How bad a [`Diagnostic`] is. Only errors make a catalog unusable (see [`has_errors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The catalog must not be used.
    Error,
    /// Worth fixing, but the catalog is usable.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One catalog problem. Displays as `file:line:col: error: summary`, followed by an indented
/// detail line when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The source name as given to the loader (a path for [`crate::load_dir`]).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in chars.
    pub col: usize,
    pub summary: String,
    pub detail: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file,
            self.line,
            self.col,
            self.severity.as_str(),
            self.summary
        )?;
        if let Some(detail) = &self.detail {
            write!(f, "\n  {detail}")?;
        }
        Ok(())
    }
}

/// True when any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|diag| diag.severity == Severity::Error)
}

/// Where something is written in a catalog file, kept in the model for checks made after
/// loading (the provider's drivers know which primitive inputs exist; this crate does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The source name as given to the loader.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in chars.
    pub col: usize,
}

impl Location {
    /// An error diagnostic at this location.
    pub fn error(&self, summary: impl Into<String>, detail: Option<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: self.file.clone(),
            line: self.line,
            col: self.col,
            summary: summary.into(),
            detail,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A position in a source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// Collects diagnostics for one source file and turns byte offsets into line:col.
pub(crate) struct FileDiags<'a> {
    pub(crate) file: &'a str,
    text: &'a str,
    lines: LineIndex,
    pub(crate) diags: &'a mut Vec<Diagnostic>,
    /// Compiled input patterns by source text, shared by all files of a load: catalogs repeat
    /// the same few patterns, and compiling a regex costs more than the rest of an input.
    pub(crate) regexes: &'a mut HashMap<String, regex::Regex>,
}

impl<'a> FileDiags<'a> {
    pub(crate) fn new(
        file: &'a str,
        text: &'a str,
        diags: &'a mut Vec<Diagnostic>,
        regexes: &'a mut HashMap<String, regex::Regex>,
    ) -> Self {
        FileDiags {
            file,
            text,
            lines: LineIndex::new(text),
            diags,
            regexes,
        }
    }

    /// Position of a byte offset. Offsets past the end or inside a char are clamped, because
    /// spans come from another crate and a bad one must not panic the loader.
    pub(crate) fn pos_of_offset(&self, offset: usize) -> Pos {
        self.lines.pos(self.text, offset)
    }

    /// The source text of a span, or "" when the span is missing or out of bounds.
    pub(crate) fn snippet(&self, span: &Option<Range<usize>>) -> &'a str {
        span.as_ref()
            .and_then(|range| self.text.get(range.clone()))
            .unwrap_or("")
    }

    /// `file:line:col` of a span, for "first declared at" details.
    pub(crate) fn location(&self, span: &Option<Range<usize>>) -> String {
        let pos = self.pos(span);
        format!("{}:{}:{}", self.file, pos.line, pos.col)
    }

    /// The [`Location`] of a span, kept in the model.
    pub(crate) fn located(&self, span: &Option<Range<usize>>) -> Location {
        let pos = self.pos(span);
        Location {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
        }
    }

    pub(crate) fn pos(&self, span: &Option<Range<usize>>) -> Pos {
        match span {
            Some(range) => self.pos_of_offset(range.start),
            None => Pos { line: 1, col: 1 },
        }
    }

    pub(crate) fn error_at(&mut self, pos: Pos, summary: impl Into<String>) {
        self.push(pos, Severity::Error, summary.into(), None);
    }

    pub(crate) fn error(&mut self, span: &Option<Range<usize>>, summary: impl Into<String>) {
        let pos = self.pos(span);
        self.push(pos, Severity::Error, summary.into(), None);
    }

    pub(crate) fn error_detail(
        &mut self,
        span: &Option<Range<usize>>,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        let pos = self.pos(span);
        self.push(pos, Severity::Error, summary.into(), Some(detail.into()));
    }

    pub(crate) fn push(
        &mut self,
        pos: Pos,
        severity: Severity,
        summary: String,
        detail: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            summary,
            detail,
        });
    }
}

/// Where each line of a text starts, built once per file so that a position costs a binary
/// search instead of a scan from the start of the file (the loader asks for a position for
/// every declared name, so scanning made loading quadratic in the file size).
pub(crate) struct LineIndex {
    /// Byte offset of each line's first byte; `starts[0] == 0`.
    starts: Vec<usize>,
    /// Whether each line is pure ASCII, so that its columns are byte counts (without this, a
    /// huge single-line file would be quadratic again through counting chars).
    ascii: Vec<bool>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> LineIndex {
        #[cfg(test)]
        scanned::add(text.len());
        let mut starts = vec![0];
        let mut ascii = Vec::new();
        let mut line_ascii = true;
        for (idx, byte) in text.bytes().enumerate() {
            if byte == b'\n' {
                starts.push(idx + 1);
                ascii.push(line_ascii);
                line_ascii = true;
            } else if !byte.is_ascii() {
                line_ascii = false;
            }
        }
        ascii.push(line_ascii);
        LineIndex { starts, ascii }
    }

    /// 1-based line and char column of a byte offset in `text` (the text the index was built
    /// from), clamped to the text and back to a char boundary.
    pub(crate) fn pos(&self, text: &str, offset: usize) -> Pos {
        let mut offset = offset.min(text.len());
        while offset > 0 && !text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The last line starting at or before `offset`.
        let line = self
            .starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0).min(offset);
        let col = if self.ascii.get(line).copied().unwrap_or(false) {
            offset - start
        } else {
            #[cfg(test)]
            scanned::add(offset - start);
            text.get(start..offset)
                .map_or(0, |part| part.chars().count())
        };
        Pos {
            line: line + 1,
            col: col + 1,
        }
    }
}

/// Test-only count of the source bytes that position lookups read (building a [`LineIndex`]
/// reads the whole text; a lookup reads at most its own line), so a test can check that
/// loading reads each file a bounded number of times instead of once per diagnostic.
#[cfg(test)]
pub(crate) mod scanned {
    use std::cell::Cell;

    thread_local! {
        static BYTES: Cell<usize> = const { Cell::new(0) };
    }

    pub(crate) fn add(bytes: usize) {
        BYTES.with(|count| count.set(count.get() + bytes));
    }

    /// Bytes read on this thread since the last call.
    pub(crate) fn take() -> usize {
        BYTES.with(|count| count.replace(0))
    }
}

#[cfg(test)]
pub(crate) fn pos_in(text: &str, offset: usize) -> Pos {
    LineIndex::new(text).pos(text, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, offset: usize, expected: (usize, usize)) {
        let pos = pos_in(text, offset);
        assert_eq!((pos.line, pos.col), expected);
    }

    #[test]
    fn positions() {
        check("", 0, (1, 1));
        check("abc", 2, (1, 3));
        check("a\nbc", 3, (2, 2));
        check("a\nbc", 99, (2, 3));
        // Columns count chars, not bytes.
        check("é = x", 4, (1, 4));
        // An offset inside a char is clamped back to the char start.
        check("é", 1, (1, 1));
        check("ab\né\ncd", 5, (2, 2));
        check("ab\né\ncd", 7, (3, 2));
        check("ab\n", 3, (2, 1));
        check("\n\n", 1, (2, 1));
    }

    #[test]
    fn positions_match_a_scan_from_the_start() {
        // The reference: what line:col means, computed the slow way.
        fn scan(text: &str, offset: usize) -> (usize, usize) {
            let mut offset = offset.min(text.len());
            while !text.is_char_boundary(offset) {
                offset -= 1;
            }
            let before = &text[..offset];
            let line_start = before.rfind('\n').map_or(0, |idx| idx + 1);
            (
                before.matches('\n').count() + 1,
                before[line_start..].chars().count() + 1,
            )
        }
        let text = "a = 1\n\né = \"ü\"\n  x\r\nend";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            let pos = index.pos(text, offset);
            assert_eq!((pos.line, pos.col), scan(text, offset), "offset {offset}");
        }
    }

    #[test]
    fn display() {
        let mut diag = Diagnostic {
            severity: Severity::Error,
            file: "c/pg.hcl".into(),
            line: 12,
            col: 5,
            summary: "boom".into(),
            detail: None,
        };
        assert_eq!(diag.to_string(), "c/pg.hcl:12:5: error: boom");
        diag.severity = Severity::Warning;
        diag.detail = Some("why".into());
        assert_eq!(diag.to_string(), "c/pg.hcl:12:5: warning: boom\n  why");
        assert!(!has_errors(&[diag]));
    }
}
