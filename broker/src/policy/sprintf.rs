//! `sprintf` as OPA computes it.
//!
//! OPA hands the operands to Go's `fmt.Sprintf`: an integral number becomes
//! an `int64` (a `*big.Int` outside its range), any other number a
//! `float64`, a string a Go string, and every other value (booleans, null,
//! arrays, objects, sets) the string of its Rego text (`[1, "a"]`,
//! `{"k": true}`, `set()`). The format then follows Go's `fmt` rules:
//! widths and precisions (also `*` and explicit `[n]` argument indexes),
//! the `-`, `+`, `#`, `0` and space flags, every verb, and Go's in-band
//! complaints (`%!d(string=hi)`, `%!s(MISSING)`, `%!(EXTRA int64=1)`,
//! `%!(NOVERB)`, `%!(BADWIDTH)`, ...). Only a format that is not a string or
//! operands that are not an array are errors.
//!
//! regorus's own `sprintf` ignores widths, precisions and flags, so the
//! broker registers this one on every engine ([`register`]) and the
//! compiled evaluator calls it too. `sprintf_cases.json` holds OPA's own
//! answers for a large table of calls (see `sprintf_cases.py`); the tests
//! below check every one through both evaluation paths.
//!
//! Known differences, from values regorus does not keep apart: OPA keeps a
//! number's source text, so a literal with an exponent and no decimal point
//! (`1e3`) is a *string* operand there, and numbers inside arrays, objects
//! and sets print as written (`1.50`, `1e3`); here they print as integers or
//! as the shortest decimal. `%p` of a big integer prints an address in Go.

use std::cmp::Ordering;
use std::fmt::Write as _;

use anyhow::{Result, bail};
use num_bigint::{BigInt, Sign};
use regorus::{Engine, Value};
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Registers [`sprintf`] on `engine` as the `sprintf` builtin (regorus looks
/// extensions up before its builtins).
pub(crate) fn register(engine: &mut Engine) -> Result<()> {
    engine.add_extension(
        "sprintf".to_string(),
        2,
        Box::new(|args: Vec<Value>| sprintf(&args)),
    )
}

/// `sprintf(format, operands)`.
pub(crate) fn sprintf(args: &[Value]) -> Result<Value> {
    let [format, operands] = args else {
        bail!("sprintf: expects 2 arguments, got {}", args.len());
    };
    let Value::String(format) = format else {
        bail!(
            "sprintf: operand 1 must be string but got {}",
            type_name(format)
        );
    };
    let Value::Array(items) = operands else {
        bail!(
            "sprintf: operand 2 must be array but got {}",
            type_name(operands)
        );
    };
    let operands: Vec<Arg> = items.iter().map(Arg::from_value).collect();
    Ok(Value::String(format_go(format, &operands).into()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

/// An operand as Go sees it.
#[derive(Debug, Clone)]
enum Arg {
    Int(i64),
    Big(BigInt),
    Float(f64),
    Str(String),
}

impl Arg {
    fn from_value(v: &Value) -> Arg {
        match v {
            Value::String(s) => Arg::Str(s.to_string()),
            Value::Number(n) if n.is_integer() => match n.as_i64() {
                Some(i) => Arg::Int(i),
                None => match n.as_big() {
                    Some(b) => Arg::Big((*b).clone()),
                    None => match n.as_f64() {
                        Some(f) => Arg::Big(big_from_integral_f64(f)),
                        None => Arg::Str(v.to_string()),
                    },
                },
            },
            Value::Number(n) => match n.as_f64() {
                Some(f) => Arg::Float(f),
                None => Arg::Str(v.to_string()),
            },
            _ => {
                let mut s = String::new();
                rego_text(v, &mut s);
                Arg::Str(s)
            }
        }
    }

    /// Go's name of the operand's type, as `%T` and the complaints show it.
    fn type_name(&self) -> &'static str {
        match self {
            Arg::Int(_) => "int64",
            Arg::Big(_) => "*big.Int",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
        }
    }
}

/// The exact integer value of an integral, finite `f`.
fn big_from_integral_f64(f: f64) -> BigInt {
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, exp) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let mut b = BigInt::from(mant);
    if exp >= 0 {
        b <<= exp as usize;
    } else {
        b >>= (-exp) as usize;
    }
    if neg { -b } else { b }
}

// ---------------------------------------------------------------------------
// Rego text of a value (OPA's `Term.String()`), for operands that are neither
// numbers nor strings.

fn rego_text(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match Arg::from_value(v) {
            Arg::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Arg::Big(b) => {
                let _ = write!(out, "{b}");
            }
            Arg::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Arg::Str(_) => {
                let _ = write!(out, "{}", n.format_decimal());
            }
        },
        Value::String(s) => quote(s, b'"', false, out),
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                rego_text(x, out);
            }
            out.push(']');
        }
        Value::Set(items) => {
            if items.is_empty() {
                out.push_str("set()");
                return;
            }
            out.push('{');
            for (i, x) in opa_sorted(items.iter()).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                rego_text(x, out);
            }
            out.push('}');
        }
        Value::Object(fields) => {
            out.push('{');
            let mut fields: Vec<(&Value, &Value)> = fields.iter().collect();
            fields.sort_by(|a, b| opa_cmp(a.0, b.0));
            for (i, (k, x)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                rego_text(k, out);
                out.push_str(": ");
                rego_text(x, out);
            }
            out.push('}');
        }
        Value::Undefined => out.push_str("undefined"),
    }
}

/// OPA's order of values: by type (null, boolean, number, string, array,
/// object, set; regorus puts sets before objects), then by value.
fn opa_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
            Value::Set(_) => 6,
            Value::Undefined => 7,
        }
    }
    fn seq<'v>(
        mut a: impl Iterator<Item = &'v Value>,
        mut b: impl Iterator<Item = &'v Value>,
    ) -> Ordering {
        loop {
            match (a.next(), b.next()) {
                (Some(x), Some(y)) => match opa_cmp(x, y) {
                    Ordering::Equal => {}
                    o => return o,
                },
                (x, y) => return x.is_some().cmp(&y.is_some()),
            }
        }
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => seq(x.iter(), y.iter()),
        (Value::Set(x), Value::Set(y)) => seq(
            opa_sorted(x.iter()).into_iter(),
            opa_sorted(y.iter()).into_iter(),
        ),
        (Value::Object(x), Value::Object(y)) => {
            let mut x: Vec<(&Value, &Value)> = x.iter().collect();
            let mut y: Vec<(&Value, &Value)> = y.iter().collect();
            x.sort_by(|p, q| opa_cmp(p.0, q.0));
            y.sort_by(|p, q| opa_cmp(p.0, q.0));
            for ((kx, vx), (ky, vy)) in x.iter().zip(y.iter()) {
                match opa_cmp(kx, ky).then_with(|| opa_cmp(vx, vy)) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            x.len().cmp(&y.len())
        }
        _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
        _ => a.cmp(b),
    }
}

fn opa_sorted<'v>(items: impl Iterator<Item = &'v Value>) -> Vec<&'v Value> {
    let mut v: Vec<&Value> = items.collect();
    v.sort_by(|a, b| opa_cmp(a, b));
    v
}

// ---------------------------------------------------------------------------
// Go's quoting (`strconv.Quote`, `QuoteToASCII`, `QuoteRune`, ...).

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Letter
            | GeneralCategoryGroup::Mark
            | GeneralCategoryGroup::Number
            | GeneralCategoryGroup::Punctuation
            | GeneralCategoryGroup::Symbol
    )
}

fn escape_rune(c: char, q: u8, ascii_only: bool, out: &mut String) {
    if c as u32 == u32::from(q) || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii_only {
        if c.is_ascii() && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

fn quote(s: &str, q: u8, ascii_only: bool, out: &mut String) {
    out.push(char::from(q));
    for c in s.chars() {
        escape_rune(c, q, ascii_only, out);
    }
    out.push(char::from(q));
}

/// Go's `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars().all(|c| {
        if c.len_utf8() > 1 {
            c != '\u{feff}'
        } else {
            !((c < ' ' && c != '\t') || c == '`' || c == '\x7f')
        }
    })
}

/// A code point as Go's `rune(c)` of an operand, with anything that is not
/// a valid scalar value replaced by U+FFFD.
fn rune_of(u: u64) -> char {
    u32::try_from(u)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}')
}

// ---------------------------------------------------------------------------
// The formatter.

/// The flags, width and precision of one verb.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    /// `%+v` and `%#v`: the flags move here for the `v` verb.
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

const MAX_NUM: i64 = 1_000_000;

/// A number in the format (`%12d`, `%.3f`, `%[2]d`): its value (`None`
/// when absent, or too large) and the index after it.
fn parse_num(s: &[u8], start: usize, end: usize) -> (Option<usize>, usize) {
    if start >= end {
        return (None, end);
    }
    let mut num: i64 = 0;
    let mut seen = false;
    let mut i = start;
    while i < end && s[i].is_ascii_digit() {
        if num > MAX_NUM {
            return (None, end);
        }
        num = num * 10 + i64::from(s[i] - b'0');
        seen = true;
        i += 1;
    }
    (seen.then_some(num as usize), i)
}

struct Printer<'a> {
    buf: String,
    f: Flags,
    args: &'a [Arg],
    reordered: bool,
    good_arg_num: bool,
}

fn format_go(format: &str, args: &[Arg]) -> String {
    let mut p = Printer {
        buf: String::with_capacity(format.len() + 16),
        f: Flags::default(),
        args,
        reordered: false,
        good_arg_num: true,
    };
    p.do_printf(format);
    p.buf
}

impl Printer<'_> {
    /// `[n]` at `i`: the argument it names (or `arg_num` unchanged), the
    /// index after it, and whether one was found.
    fn arg_number(&mut self, arg_num: usize, s: &[u8], i: usize) -> (usize, usize, bool) {
        if i >= s.len() || s[i] != b'[' {
            return (arg_num, i, false);
        }
        self.reordered = true;
        let rest = &s[i..];
        // (index, width of `[n]`, ok): at least three bytes, up to `]`.
        let (index, wid, ok) = if rest.len() < 3 {
            (0, 1, false)
        } else {
            match rest.iter().skip(1).position(|&c| c == b']') {
                Some(p) => {
                    let close = p + 1;
                    match parse_num(rest, 1, close) {
                        (Some(n), after) if after == close => (n as i64 - 1, close + 1, true),
                        _ => (0, close + 1, false),
                    }
                }
                None => (0, 1, false),
            }
        };
        if ok && 0 <= index && (index as usize) < self.args.len() {
            return (index as usize, i + wid, true);
        }
        self.good_arg_num = false;
        (arg_num, i + wid, ok)
    }

    /// A `*` width or precision from argument `arg_num`.
    fn int_from_arg(&self, arg_num: usize) -> (i64, bool, usize) {
        if arg_num >= self.args.len() {
            return (0, false, arg_num);
        }
        let (mut num, mut ok) = match &self.args[arg_num] {
            Arg::Int(i) => (*i, true),
            _ => (0, false),
        };
        if !(-MAX_NUM..=MAX_NUM).contains(&num) {
            num = 0;
            ok = false;
        }
        (num, ok, arg_num + 1)
    }

    fn do_printf(&mut self, format: &str) {
        let s = format.as_bytes();
        let end = s.len();
        let mut arg_num = 0usize;
        let mut after_index;
        self.reordered = false;
        let mut i = 0;
        while i < end {
            self.good_arg_num = true;
            let last = i;
            while i < end && s[i] != b'%' {
                i += 1;
            }
            if i > last {
                self.buf.push_str(&format[last..i]);
            }
            if i >= end {
                break;
            }
            i += 1; // the '%'
            self.f = Flags::default();
            while i < end {
                match s[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = true,
                    b'+' => self.f.plus = true,
                    b'-' => self.f.minus = true,
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }
            (arg_num, i, after_index) = self.arg_number(arg_num, s, i);

            // Width.
            if i < end && s[i] == b'*' {
                i += 1;
                let (w, ok, next) = self.int_from_arg(arg_num);
                arg_num = next;
                if !ok {
                    self.buf.push_str("%!(BADWIDTH)");
                    self.f.wid = None;
                } else if w < 0 {
                    self.f.wid = Some(w.unsigned_abs() as usize);
                    self.f.minus = true;
                    self.f.zero = false;
                } else {
                    self.f.wid = Some(w as usize);
                }
                after_index = false;
            } else {
                let (w, next) = parse_num(s, i, end);
                self.f.wid = w;
                i = next;
                if after_index && w.is_some() {
                    self.good_arg_num = false;
                }
            }

            // Precision.
            if i + 1 < end && s[i] == b'.' {
                i += 1;
                if after_index {
                    self.good_arg_num = false;
                }
                (arg_num, i, after_index) = self.arg_number(arg_num, s, i);
                if i < end && s[i] == b'*' {
                    i += 1;
                    let (p, ok, next) = self.int_from_arg(arg_num);
                    arg_num = next;
                    if ok && p >= 0 {
                        self.f.prec = Some(p as usize);
                    } else {
                        self.f.prec = None;
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (p, next) = parse_num(s, i, end);
                    i = next;
                    self.f.prec = Some(p.unwrap_or(0));
                }
            }

            if !after_index {
                (arg_num, i, _) = self.arg_number(arg_num, s, i);
            }

            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break;
            }
            let Some(verb) = format[i..].chars().next() else {
                break;
            };
            i += verb.len_utf8();

            if verb == '%' {
                self.buf.push('%');
            } else if !self.good_arg_num {
                self.bad_arg(verb, "BADINDEX");
            } else if arg_num >= self.args.len() {
                self.bad_arg(verb, "MISSING");
            } else {
                // `%w` (an error operand, for `Errorf`) takes `%v`'s flags.
                if verb == 'v' || verb == 'w' {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                }
                let args = self.args;
                self.print_arg(&args[arg_num], verb);
                arg_num += 1;
            }
        }

        if !self.reordered && arg_num < self.args.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            let args = self.args;
            for (k, a) in args[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                self.buf.push_str(a.type_name());
                self.buf.push('=');
                self.print_arg(a, 'v');
            }
            self.buf.push(')');
        }
    }

    fn bad_arg(&mut self, verb: char, what: &str) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        self.buf.push_str(what);
        self.buf.push(')');
    }

    fn bad_verb(&mut self, arg: &Arg, verb: char) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        self.buf.push_str(arg.type_name());
        self.buf.push('=');
        self.print_arg(arg, 'v');
        self.buf.push(')');
    }

    fn print_arg(&mut self, arg: &Arg, verb: char) {
        match verb {
            'T' => return self.fmt_s(arg.type_name()),
            'p' => return self.bad_verb(arg, verb),
            _ => {}
        }
        match arg {
            Arg::Int(i) => self.fmt_int(arg, *i, verb),
            Arg::Big(b) => self.fmt_big(b, verb),
            Arg::Float(x) => self.fmt_float_verb(arg, *x, verb),
            Arg::Str(s) => self.fmt_string(arg, s, verb),
        }
    }

    // -- padding ----------------------------------------------------------

    fn zero_pads(&self) -> bool {
        self.f.zero && !self.f.minus
    }

    fn write_padding(&mut self, n: usize) {
        let c = if self.zero_pads() { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    /// `s` padded to the width (counted in characters).
    fn pad(&mut self, s: &str) {
        let Some(wid) = self.f.wid.filter(|w| *w > 0) else {
            self.buf.push_str(s);
            return;
        };
        let n = wid.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            self.write_padding(n);
        } else {
            self.write_padding(n);
            self.buf.push_str(s);
        }
    }

    /// [`Self::pad`] without zero padding.
    fn pad_spaces(&mut self, s: &str) {
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(s);
        self.f.zero = zero;
    }

    // -- strings ----------------------------------------------------------

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        match self.f.prec {
            Some(p) => match s.char_indices().nth(p) {
                Some((at, _)) => &s[..at],
                None => s,
            },
            None => s,
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s);
        self.pad(s);
    }

    fn fmt_string(&mut self, arg: &Arg, s: &str, verb: char) {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => self.fmt_s(s),
            'x' => self.fmt_sx(s, false),
            'X' => self.fmt_sx(s, true),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(arg, verb),
        }
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        if self.f.sharp && can_backquote(s) {
            let q = format!("`{s}`");
            return self.pad(&q);
        }
        let mut q = String::with_capacity(s.len() + 2);
        quote(s, b'"', self.f.plus, &mut q);
        self.pad(&q);
    }

    /// Hexadecimal bytes of `s`.
    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let digits: &[u8; 16] = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let x = if upper { 'X' } else { 'x' };
        let b = s.as_bytes();
        let length = match self.f.prec {
            Some(p) if p < b.len() => p,
            _ => b.len(),
        };
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if let Some(w) = self.f.wid {
                self.write_padding(w);
            }
            return;
        }
        let wid = self.f.wid.unwrap_or(0);
        if wid > width && !self.f.minus {
            self.write_padding(wid - width);
        }
        if self.f.sharp {
            self.buf.push('0');
            self.buf.push(x);
        }
        for (k, &c) in b[..length].iter().enumerate() {
            if self.f.space && k > 0 {
                self.buf.push(' ');
                if self.f.sharp {
                    self.buf.push('0');
                    self.buf.push(x);
                }
            }
            self.buf.push(char::from(digits[usize::from(c >> 4)]));
            self.buf.push(char::from(digits[usize::from(c & 0xf)]));
        }
        if wid > width && self.f.minus {
            self.write_padding(wid - width);
        }
    }

    // -- integers ---------------------------------------------------------

    fn fmt_int(&mut self, arg: &Arg, v: i64, verb: char) {
        let u = v as u64;
        match verb {
            'v' | 'd' => self.fmt_integer(v < 0, v.unsigned_abs(), 10, verb, false),
            'b' => self.fmt_integer(v < 0, v.unsigned_abs(), 2, verb, false),
            'o' | 'O' => self.fmt_integer(v < 0, v.unsigned_abs(), 8, verb, false),
            'x' => self.fmt_integer(v < 0, v.unsigned_abs(), 16, verb, false),
            'X' => self.fmt_integer(v < 0, v.unsigned_abs(), 16, verb, true),
            'c' => {
                let mut s = String::new();
                s.push(rune_of(u));
                self.pad(&s);
            }
            'q' => {
                let mut s = String::new();
                let r = rune_of(u);
                s.push('\'');
                escape_rune(r, b'\'', self.f.plus, &mut s);
                s.push('\'');
                self.pad(&s);
            }
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(arg, verb),
        }
    }

    /// Go's `fmt.fmtInteger` of the magnitude `u`.
    fn fmt_integer(&mut self, negative: bool, u: u64, base: u32, verb: char, upper: bool) {
        let mut prec = 0usize;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let zero = self.f.zero;
                self.f.zero = false;
                let w = self.f.wid.unwrap_or(0);
                self.write_padding(w);
                self.f.zero = zero;
                return;
            }
        } else if let (true, Some(w)) = (self.zero_pads(), self.f.wid) {
            prec = w;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut digits = match base {
            2 => format!("{u:b}"),
            8 => format!("{u:o}"),
            16 if upper => format!("{u:X}"),
            16 => format!("{u:x}"),
            _ => format!("{u}"),
        };
        if digits.len() < prec {
            digits.insert_str(0, &"0".repeat(prec - digits.len()));
        }
        let mut prefix = String::new();
        if self.f.sharp {
            match base {
                2 => prefix.push_str("0b"),
                8 if !digits.starts_with('0') => prefix.push('0'),
                16 if upper => prefix.push_str("0X"),
                16 => prefix.push_str("0x"),
                _ => {}
            }
        }
        if verb == 'O' {
            prefix.insert_str(0, "0o");
        }
        let sign = if negative {
            "-"
        } else if self.f.plus {
            "+"
        } else if self.f.space {
            " "
        } else {
            ""
        };
        let s = format!("{sign}{prefix}{digits}");
        self.pad_spaces(&s);
    }

    fn fmt_unicode(&mut self, u: u64) {
        let prec = match self.f.prec {
            Some(p) if p > 4 => p,
            _ => 4,
        };
        let mut s = format!("U+{u:0prec$X}");
        if self.f.sharp
            && let Some(c) = u32::try_from(u).ok().and_then(char::from_u32)
            && is_print(c)
        {
            s.push_str(" '");
            s.push(c);
            s.push('\'');
        }
        self.pad_spaces(&s);
    }

    fn fmt_big(&mut self, x: &BigInt, verb: char) {
        let (base, upper) = match verb {
            'b' => (2, false),
            'o' | 'O' => (8, false),
            'd' | 's' | 'v' => (10, false),
            'x' => (16, false),
            'X' => (16, true),
            // Not a `Formatter` verb: Go reports the operand's insides.
            'w' => return self.fmt_big_struct(x, verb),
            _ => {
                let _ = write!(self.buf, "%!{verb}(big.Int={x})");
                return;
            }
        };
        let sign = if x.sign() == Sign::Minus {
            "-"
        } else if self.f.plus || self.f.plus_v {
            "+"
        } else if self.f.space {
            " "
        } else {
            ""
        };
        let mut prefix = "";
        if self.f.sharp || self.f.sharp_v {
            prefix = match verb {
                'b' => "0b",
                'o' => "0",
                'x' => "0x",
                'X' => "0X",
                _ => "",
            };
        }
        if verb == 'O' {
            prefix = "0o";
        }
        let mut digits = x.magnitude().to_str_radix(base);
        if upper {
            digits.make_ascii_uppercase();
        }
        let mut zeros = 0;
        if let Some(p) = self.f.prec {
            if digits.len() < p {
                zeros = p - digits.len();
            } else if digits == "0" && p == 0 {
                return;
            }
        }
        let length = sign.len() + prefix.len() + zeros + digits.len();
        let (mut left, mut right) = (0, 0);
        if let Some(w) = self.f.wid
            && length < w
        {
            let d = w - length;
            if self.f.minus {
                right = d;
            } else if self.f.zero && self.f.prec.is_none() {
                zeros = d;
            } else {
                left = d;
            }
        }
        self.buf.extend(std::iter::repeat_n(' ', left));
        self.buf.push_str(sign);
        self.buf.push_str(prefix);
        self.buf.extend(std::iter::repeat_n('0', zeros));
        self.buf.push_str(&digits);
        self.buf.extend(std::iter::repeat_n(' ', right));
    }

    /// `%!w(*big.Int=&{false [0 1]})`: the sign and the 64-bit words of the
    /// magnitude, least significant first, each formatted with the flags
    /// (`%+w`: with field names, `%#w`: in Go syntax).
    fn fmt_big_struct(&mut self, x: &BigInt, verb: char) {
        let (open, neg, abs, sep, close) = if self.f.sharp_v {
            ("&big.Int{", "neg:", ", abs:big.nat{", ", ", "}}")
        } else if self.f.plus_v {
            ("&{", "neg:", " abs:[", " ", "]}")
        } else {
            ("&{", "", " [", " ", "]}")
        };
        let _ = write!(self.buf, "%!{verb}(*big.Int={open}{neg}");
        self.pad(if x.sign() == Sign::Minus {
            "true"
        } else {
            "false"
        });
        self.buf.push_str(abs);
        for (k, w) in x.magnitude().to_u64_digits().into_iter().enumerate() {
            if k > 0 {
                self.buf.push_str(sep);
            }
            if self.f.sharp_v {
                let sharp = self.f.sharp;
                self.f.sharp = true;
                self.fmt_integer(false, w, 16, 'v', false);
                self.f.sharp = sharp;
            } else {
                self.fmt_integer(false, w, 10, 'v', false);
            }
        }
        self.buf.push_str(close);
        self.buf.push(')');
    }

    // -- floats -----------------------------------------------------------

    fn fmt_float_verb(&mut self, arg: &Arg, v: f64, verb: char) {
        match verb {
            'v' => self.fmt_float(v, 'g', None),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(v, verb, None),
            'f' | 'e' | 'E' => self.fmt_float(v, verb, Some(6)),
            'F' => self.fmt_float(v, 'f', Some(6)),
            _ => self.bad_verb(arg, verb),
        }
    }

    /// Go's `fmt.fmtFloat`; `prec` `None` is the shortest representation.
    fn fmt_float(&mut self, v: f64, verb: char, prec: Option<usize>) {
        let prec = self.f.prec.or(prec);
        let formatted = format_float(v, verb, prec);
        // `num` always starts with a sign.
        let mut num: Vec<u8> = if formatted.starts_with(['-', '+']) {
            formatted.into_bytes()
        } else {
            let mut n = vec![b'+'];
            n.extend_from_slice(formatted.as_bytes());
            n
        };
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if num.get(1).is_some_and(|c| *c == b'I' || *c == b'N') {
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            let s = String::from_utf8_lossy(&num).into_owned();
            return self.pad_spaces(&s);
        }
        if self.f.sharp && verb != 'b' {
            let mut digits: i64 = match verb {
                'v' | 'g' | 'G' | 'x' => prec.map_or(6, |p| p as i64),
                _ => 0,
            };
            let mut tail: Vec<u8> = Vec::new();
            let mut has_point = false;
            let mut saw_nonzero = false;
            let mut k = 1;
            while k < num.len() {
                match num[k] {
                    b'.' => has_point = true,
                    b'p' | b'P' => {
                        tail.extend_from_slice(&num[k..]);
                        num.truncate(k);
                        break;
                    }
                    b'e' | b'E' if verb != 'x' && verb != 'X' => {
                        tail.extend_from_slice(&num[k..]);
                        num.truncate(k);
                        break;
                    }
                    c => {
                        if c != b'0' {
                            saw_nonzero = true;
                        }
                        if saw_nonzero {
                            digits -= 1;
                        }
                    }
                }
                k += 1;
            }
            if !has_point {
                if num.len() == 2 && num[1] == b'0' {
                    digits -= 1;
                }
                num.push(b'.');
            }
            while digits > 0 {
                num.push(b'0');
                digits -= 1;
            }
            num.extend_from_slice(&tail);
        }
        let num = String::from_utf8_lossy(&num).into_owned();
        if self.f.plus || !num.starts_with('+') {
            if let (true, Some(w)) = (self.zero_pads(), self.f.wid)
                && w > num.len()
            {
                self.buf.push_str(&num[..1]);
                self.write_padding(w - num.len());
                self.buf.push_str(&num[1..]);
                return;
            }
            return self.pad(&num);
        }
        self.pad(&num[1..]);
    }
}

// ---------------------------------------------------------------------------
// Go's `strconv.FormatFloat(v, fmt, prec, 64)`.

/// Decimal digits `0.d1d2...dn × 10^dp` (no trailing zeros; none for 0).
struct Decimal {
    d: Vec<u8>,
    dp: i64,
}

impl Decimal {
    /// From Rust's `{:e}` rendering of a non-negative finite number.
    fn from_exp(s: &str) -> Decimal {
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: i64 = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Decimal { d, dp: 0 };
        }
        Decimal { d, dp: exp + 1 }
    }

    /// From Rust's `{:.N}` rendering of a non-negative finite number.
    fn from_fixed(s: &str) -> Decimal {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let mut d: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let mut dp = int.len() as i64;
        let lead = d.iter().take_while(|c| **c == b'0').count();
        d.drain(..lead);
        dp -= lead as i64;
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            dp = 0;
        }
        Decimal { d, dp }
    }

    fn nd(&self) -> i64 {
        self.d.len() as i64
    }
}

fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    let mut out = String::new();
    match verb {
        'b' => {
            let bits = v.to_bits();
            let exp = ((bits >> 52) & 0x7ff) as i64;
            let mut mant = bits & ((1u64 << 52) - 1);
            let exp = if exp == 0 {
                -1022
            } else {
                mant |= 1u64 << 52;
                exp - 1023
            } - 52;
            if neg {
                out.push('-');
            }
            let _ = write!(out, "{mant}p");
            if exp >= 0 {
                out.push('+');
            }
            let _ = write!(out, "{exp}");
            return out;
        }
        'x' | 'X' => return format_hex_float(v, verb == 'X', prec),
        _ => {}
    }
    if neg {
        out.push('-');
    }
    let upper = verb.is_ascii_uppercase();
    match (verb.to_ascii_lowercase(), prec) {
        ('e', None) => {
            let d = Decimal::from_exp(&format!("{a:e}"));
            let p = (d.nd() - 1).max(0) as usize;
            fmt_e(&mut out, &d, p, upper);
        }
        ('e', Some(p)) => {
            let d = Decimal::from_exp(&format!("{a:.p$e}"));
            fmt_e(&mut out, &d, p, upper);
        }
        ('f', None) => {
            let d = Decimal::from_exp(&format!("{a:e}"));
            let p = (d.nd() - d.dp).max(0) as usize;
            fmt_f(&mut out, &d, p);
        }
        ('f', Some(p)) => {
            let d = Decimal::from_fixed(&format!("{a:.p$}"));
            fmt_f(&mut out, &d, p);
        }
        (_, prec) => {
            // 'g'
            let (d, mut p, shortest) = match prec {
                None => {
                    let d = Decimal::from_exp(&format!("{a:e}"));
                    let p = d.nd();
                    (d, p, true)
                }
                Some(p) => {
                    let p = p.max(1);
                    let d = Decimal::from_exp(&format!("{a:.prec$e}", prec = p - 1));
                    (d, p as i64, false)
                }
            };
            let mut eprec = p;
            if eprec > d.nd() && d.nd() >= d.dp {
                eprec = d.nd();
            }
            if shortest {
                eprec = 6;
            }
            let exp = d.dp - 1;
            if exp < -4 || exp >= eprec {
                if p > d.nd() {
                    p = d.nd();
                }
                fmt_e(&mut out, &d, (p - 1).max(0) as usize, upper);
            } else {
                if p > d.dp {
                    p = d.nd();
                }
                fmt_f(&mut out, &d, (p - d.dp).max(0) as usize);
            }
        }
    }
    out
}

fn fmt_e(out: &mut String, d: &Decimal, prec: usize, upper: bool) {
    out.push(char::from(d.d.first().copied().unwrap_or(b'0')));
    if prec > 0 {
        out.push('.');
        for k in 1..=prec {
            out.push(char::from(d.d.get(k).copied().unwrap_or(b'0')));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    let _ = write!(out, "{e}");
}

fn fmt_f(out: &mut String, d: &Decimal, prec: usize) {
    if d.dp > 0 {
        for k in 0..d.dp as usize {
            out.push(char::from(d.d.get(k).copied().unwrap_or(b'0')));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for k in 1..=prec as i64 {
            let j = d.dp + k - 1;
            let c = if j >= 0 && j < d.nd() {
                d.d[j as usize]
            } else {
                b'0'
            };
            out.push(char::from(c));
        }
    }
}

/// `%x` of a float: `-0x1.8p+01`.
fn format_hex_float(v: f64, upper: bool, prec: Option<usize>) -> String {
    let bits = v.to_bits();
    let neg = bits >> 63 == 1;
    let raw_exp = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1u64 << 52) - 1);
    let mut exp = if raw_exp == 0 {
        -1022
    } else {
        mant |= 1u64 << 52;
        raw_exp - 1023
    };
    if mant == 0 {
        exp = 0;
    }
    mant <<= 60 - 52;
    while mant != 0 && mant & (1u64 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if let Some(p) = prec.filter(|p| *p < 15) {
        let shift = (p * 4) as u32;
        let extra = (mant << shift) & ((1u64 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1u64 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1u64 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push('0');
    out.push(if upper { 'X' } else { 'x' });
    out.push(char::from(b'0' + ((mant >> 60) & 1) as u8));
    mant <<= 4;
    match prec {
        None if mant != 0 => {
            out.push('.');
            while mant != 0 {
                out.push(char::from(digits[((mant >> 60) & 15) as usize]));
                mant <<= 4;
            }
        }
        Some(p) if p > 0 => {
            out.push('.');
            for _ in 0..p {
                out.push(char::from(digits[((mant >> 60) & 15) as usize]));
                mant <<= 4;
            }
        }
        _ => {}
    }
    out.push(if upper { 'P' } else { 'p' });
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    let _ = write!(out, "{e}");
    out
}

#[cfg(test)]
#[path = "sprintf_tests.rs"]
mod tests;
