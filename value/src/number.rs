//! Exact numbers that remember their wire representation.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// An exact cty number.
///
/// Equality and ordering are numeric and exact: `1 == 1.0 == "1.0"`, but
/// `"0.1" != 0.1f64`, because the float is really 0.1000000000000000055….
/// The representation the number arrived in is kept, so an unchanged value
/// re-encodes byte-identically (see the crate docs for why that matters).
#[derive(Clone, Debug)]
pub struct Number(pub(crate) Repr);

/// Invariants: `Uint` only holds values above `i64::MAX`; floats are never NaN;
/// `Text` always matches the decimal grammar accepted by [`parse_decimal`].
#[derive(Clone, Debug)]
pub(crate) enum Repr {
    Int(i64),
    Uint(u64),
    F32(f32),
    F64(f64),
    Text(Box<str>),
}

/// Longest plain (non-scientific) text `Display` produces. Every finite f64 fits
/// (the longest, the smallest subnormal, has 767 significant digits), while a
/// text like "1e999999999" does not blow up into a billion zeros.
const PLAIN_LIMIT: usize = 1100;

/// Exponents beyond this are rejected when parsing, so that exponent arithmetic
/// never overflows.
const EXP_LIMIT: i64 = 1_000_000_000_000_000;

impl Number {
    pub fn from_i64(i: i64) -> Self {
        Number(Repr::Int(i))
    }

    pub fn from_u64(u: u64) -> Self {
        match i64::try_from(u) {
            Ok(i) => Number(Repr::Int(i)),
            Err(_) => Number(Repr::Uint(u)),
        }
    }

    /// `None` for NaN. Integral values that fit `i64` become integers (cty's rule);
    /// ±Inf is allowed, as cty allows it.
    pub fn from_f64(f: f64) -> Option<Self> {
        if f.is_nan() {
            return None;
        }
        Some(match f64_as_i64(f) {
            Some(i) => Number(Repr::Int(i)),
            None => Number(Repr::F64(f)),
        })
    }

    /// Parses decimal text (`"0.1"`, `"-12"`, `"1e400"`, `"123456789012345678901234567890"`).
    /// The result encodes as cty would: an integer when integral and within `i64`,
    /// float64 when that is exact, and otherwise the decimal text itself.
    pub fn parse(s: &str) -> Option<Self> {
        let exact = parse_decimal(s)?;
        if let Some(i) = exact.as_i64() {
            return Some(Number(Repr::Int(i)));
        }
        if let Ok(f) = s.parse::<f64>()
            && f.is_finite()
            && exact_f64(f) == exact
        {
            return Some(Number(Repr::F64(f)));
        }
        Some(Number(Repr::Text(s.into())))
    }

    /// A number received as a msgpack string: kept verbatim so it re-encodes as the same string.
    pub(crate) fn from_wire_text(s: &str) -> Option<Self> {
        parse_decimal(s)?;
        Some(Number(Repr::Text(s.into())))
    }

    /// A number received as JSON text. The natural representation is used when its
    /// canonical text is exactly `s` ("80", "1.5"); otherwise the text is kept, so JSON
    /// re-encodes as received ("0.1", "1e2", "1.50").
    pub(crate) fn from_json_text(s: &str) -> Option<Self> {
        let n = Number::parse(s)?;
        if matches!(n.0, Repr::Text(_)) || n.to_string() == s {
            Some(n)
        } else {
            Some(Number(Repr::Text(s.into())))
        }
    }

    pub(crate) fn from_f32_wire(f: f32) -> Option<Self> {
        (!f.is_nan()).then_some(Number(Repr::F32(f)))
    }

    pub(crate) fn from_f64_wire(f: f64) -> Option<Self> {
        (!f.is_nan()).then_some(Number(Repr::F64(f)))
    }

    /// The nearest f64 (±Inf when out of range).
    pub fn to_f64(&self) -> f64 {
        match &self.0 {
            Repr::Int(i) => *i as f64,
            Repr::Uint(u) => *u as f64,
            Repr::F32(f) => f64::from(*f),
            Repr::F64(f) => *f,
            Repr::Text(s) => s
                .parse::<f64>()
                .or_else(|_| self.exact().scientific().parse::<f64>())
                .unwrap_or(f64::NAN),
        }
    }

    /// The value as `i64` if it is an integer within range.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.0 {
            Repr::Int(i) => Some(*i),
            Repr::Uint(_) => None,
            Repr::F32(f) => f64_as_i64(f64::from(*f)),
            Repr::F64(f) => f64_as_i64(*f),
            Repr::Text(_) => self.exact().as_i64(),
        }
    }

    pub fn is_integer(&self) -> bool {
        match &self.0 {
            Repr::Int(_) | Repr::Uint(_) => true,
            _ => match self.exact() {
                Exact::Finite { exp, .. } => exp >= 0,
                Exact::NegInf | Exact::PosInf => false,
            },
        }
    }

    pub fn is_infinite(&self) -> bool {
        matches!(self.exact_kind(), Some(Exact::NegInf | Exact::PosInf))
    }

    fn exact_kind(&self) -> Option<Exact> {
        match &self.0 {
            Repr::F32(f) if f.is_infinite() => Some(exact_f64(f64::from(*f))),
            Repr::F64(f) if f.is_infinite() => Some(exact_f64(*f)),
            _ => None,
        }
    }

    fn exact(&self) -> Exact {
        match &self.0 {
            Repr::Int(i) => Exact::from_int(*i < 0, u128::from(i.unsigned_abs())),
            Repr::Uint(u) => Exact::from_int(false, u128::from(*u)),
            Repr::F32(f) => exact_f64(f64::from(*f)),
            Repr::F64(f) => exact_f64(*f),
            // The invariant on `Repr::Text` makes the fallback unreachable.
            Repr::Text(s) => parse_decimal(s).unwrap_or(Exact::ZERO),
        }
    }
}

fn f64_as_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; the range check keeps the cast lossless.
    const LIMIT: f64 = (1u64 << 63) as f64;
    (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Number {}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::Int(a), Repr::Int(b)) => a.cmp(b),
            _ => self.exact().cmp(&other.exact()),
        }
    }
}

impl Hash for Number {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.exact().hash(state);
    }
}

/// Canonical decimal text: a function of the numeric value only (never of the
/// representation), plain notation unless that would exceed [`PLAIN_LIMIT`].
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Int(i) => write!(f, "{i}"),
            Repr::Uint(u) => write!(f, "{u}"),
            _ => f.write_str(&self.exact().canonical()),
        }
    }
}

/// The exact value as sign × digits × 10^exp, normalised (no leading or trailing
/// zero digits; zero has no digits and is never negative) so that equal numbers
/// have equal `Exact`s.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Exact {
    NegInf,
    Finite {
        neg: bool,
        digits: Vec<u8>,
        exp: i64,
    },
    PosInf,
}

impl Exact {
    const ZERO: Exact = Exact::Finite {
        neg: false,
        digits: Vec::new(),
        exp: 0,
    };

    fn from_int(neg: bool, magnitude: u128) -> Exact {
        let digits = magnitude.to_string().bytes().map(|b| b - b'0').collect();
        Exact::normalised(neg, digits, 0)
    }

    fn normalised(neg: bool, mut digits: Vec<u8>, mut exp: i64) -> Exact {
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        while digits.last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            return Exact::ZERO;
        }
        Exact::Finite { neg, digits, exp }
    }

    fn as_i64(&self) -> Option<i64> {
        let Exact::Finite { neg, digits, exp } = self else {
            return None;
        };
        if *exp < 0 || digits.len() as i64 + exp > 19 {
            return None;
        }
        let mut mag: i128 = 0;
        for d in digits {
            mag = mag * 10 + i128::from(*d);
        }
        for _ in 0..*exp {
            mag *= 10;
        }
        i64::try_from(if *neg { -mag } else { mag }).ok()
    }

    fn digit_text(digits: &[u8]) -> String {
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    }

    fn canonical(&self) -> String {
        let Exact::Finite { neg, digits, exp } = self else {
            return if *self == Exact::NegInf {
                "-Inf".into()
            } else {
                "+Inf".into()
            };
        };
        if digits.is_empty() {
            return "0".into();
        }
        let len = digits.len() as i64;
        let plain_len = if *exp >= 0 {
            len + exp
        } else {
            len.max(-exp) + 2
        };
        if plain_len > PLAIN_LIMIT as i64 {
            return self.scientific();
        }
        let mut out = String::with_capacity(plain_len as usize + 1);
        if *neg {
            out.push('-');
        }
        let text = Exact::digit_text(digits);
        if *exp >= 0 {
            out.push_str(&text);
            out.extend(std::iter::repeat_n('0', *exp as usize));
        } else {
            let frac = (-exp) as usize;
            if frac >= digits.len() {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', frac - digits.len()));
                out.push_str(&text);
            } else {
                let split = digits.len() - frac;
                out.push_str(&text[..split]);
                out.push('.');
                out.push_str(&text[split..]);
            }
        }
        out
    }

    fn scientific(&self) -> String {
        let Exact::Finite { neg, digits, exp } = self else {
            return self.canonical();
        };
        let Some((first, rest)) = digits.split_first() else {
            return "0".into();
        };
        let mut out = String::new();
        if *neg {
            out.push('-');
        }
        out.push(char::from(b'0' + first));
        if !rest.is_empty() {
            out.push('.');
            out.push_str(&Exact::digit_text(rest));
        }
        out.push_str(&format!("e{:+}", digits.len() as i64 - 1 + exp));
        out
    }
}

impl Ord for Exact {
    fn cmp(&self, other: &Self) -> Ordering {
        use Exact::*;
        match (self, other) {
            (NegInf, NegInf) | (PosInf, PosInf) => Ordering::Equal,
            (NegInf, _) | (_, PosInf) => Ordering::Less,
            (_, NegInf) | (PosInf, _) => Ordering::Greater,
            (
                Finite {
                    neg: an,
                    digits: ad,
                    exp: ae,
                },
                Finite {
                    neg: bn,
                    digits: bd,
                    exp: be,
                },
            ) => {
                let sign = |neg: bool, digits: &[u8]| match (digits.is_empty(), neg) {
                    (true, _) => 0,
                    (false, true) => -1,
                    (false, false) => 1,
                };
                let (sa, sb) = (sign(*an, ad), sign(*bn, bd));
                if sa != sb || sa == 0 {
                    return sa.cmp(&sb);
                }
                // Same sign, both non-zero: compare magnitudes by the position of the
                // leading digit, then digit by digit (no trailing zeros, so a proper
                // prefix is the smaller magnitude).
                let magnitude = (ad.len() as i64 + ae)
                    .cmp(&(bd.len() as i64 + be))
                    .then_with(|| ad.cmp(bd));
                if sa < 0 {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
        }
    }
}

impl PartialOrd for Exact {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Parses `[+-]? (D+ (. D*)? | . D+) ([eE] [+-]? D+)?`, the decimal grammar shared by
/// cty's number strings and JSON (which is a subset).
fn parse_decimal(s: &str) -> Option<Exact> {
    let b = s.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut digits = Vec::new();
    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
        digits.push(d - b'0');
        i += 1;
    }
    let mut frac_len: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            digits.push(d - b'0');
            frac_len += 1;
            i += 1;
        }
    }
    if digits.is_empty() {
        return None;
    }
    let mut exp: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            exp = exp.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            if exp > EXP_LIMIT {
                return None;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        if exp_neg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return None;
    }
    Some(Exact::normalised(neg, digits, exp.checked_sub(frac_len)?))
}

/// The exact decimal value of a float: m × 2^e is m × 5^-e × 10^e when e < 0.
fn exact_f64(f: f64) -> Exact {
    if f.is_infinite() {
        return if f < 0.0 {
            Exact::NegInf
        } else {
            Exact::PosInf
        };
    }
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    if m == 0 {
        return Exact::ZERO;
    }
    let tz = m.trailing_zeros();
    m >>= tz;
    e += i64::from(tz);
    let mut big = BigDec::from_u64(m);
    let exp = if e >= 0 {
        big.mul_pow(2, 29, e as u32);
        0
    } else {
        big.mul_pow(5, 13, (-e) as u32);
        e
    };
    Exact::normalised(neg, big.digits(), exp)
}

/// Just enough of a bignum for [`exact_f64`]: base-10⁹ limbs, little-endian.
struct BigDec(Vec<u64>);

const LIMB: u64 = 1_000_000_000;

impl BigDec {
    fn from_u64(mut v: u64) -> Self {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push(v % LIMB);
            v /= LIMB;
        }
        BigDec(limbs)
    }

    fn mul_small(&mut self, k: u64) {
        let mut carry = 0;
        for limb in &mut self.0 {
            let t = *limb * k + carry;
            *limb = t % LIMB;
            carry = t / LIMB;
        }
        while carry > 0 {
            self.0.push(carry % LIMB);
            carry /= LIMB;
        }
    }

    /// Multiplies by base^power, `chunk` factors at a time (base^chunk must stay below 2^31
    /// so limb products fit in u64).
    fn mul_pow(&mut self, base: u64, chunk: u32, mut power: u32) {
        while power > 0 {
            let step = power.min(chunk);
            self.mul_small(base.pow(step));
            power -= step;
        }
    }

    fn digits(&self) -> Vec<u8> {
        let mut text = String::new();
        for (i, limb) in self.0.iter().rev().enumerate() {
            if i == 0 {
                text.push_str(&limb.to_string());
            } else {
                text.push_str(&format!("{limb:09}"));
            }
        }
        text.bytes().map(|b| b - b'0').collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(n: Option<Number>, expect: &str) {
        let actual = match n {
            Some(n) => format!("{n} {:?}", n.0),
            None => "none".into(),
        };
        assert_eq!(actual, expect);
    }

    #[test]
    fn parse_follows_cty_representation_rule() {
        check(Number::parse("80"), "80 Int(80)");
        check(Number::parse("-12"), "-12 Int(-12)");
        check(Number::parse("1.5"), "1.5 F64(1.5)");
        check(Number::parse("0.1"), r#"0.1 Text("0.1")"#);
        check(
            Number::parse("123456789012345678901234567890"),
            r#"123456789012345678901234567890 Text("123456789012345678901234567890")"#,
        );
        check(Number::parse("1e2"), "100 Int(100)");
        check(Number::parse("+.5"), "0.5 F64(0.5)");
        check(Number::parse("-0.0"), "0 Int(0)");
        check(
            Number::parse("9223372036854775808"),
            "9223372036854775808 F64(9.223372036854776e18)",
        );
        check(
            Number::parse("9223372036854775809"),
            r#"9223372036854775809 Text("9223372036854775809")"#,
        );
    }

    #[test]
    fn parse_rejects_non_decimals() {
        for s in [
            "",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "0x10",
            "inf",
            "NaN",
            " 1",
            "1 ",
            "1_000",
            "1e99999999999999999999",
        ] {
            check(Number::parse(s), "none");
        }
    }

    #[test]
    fn display_is_canonical_and_exact() {
        check(
            Number::from_f64(0.1),
            "0.1000000000000000055511151231257827021181583404541015625 F64(0.1)",
        );
        check(Number::from_f64(3.0), "3 Int(3)");
        check(
            Number::from_f64(-2.5e-3),
            "-0.0025000000000000000520417042793042128323577344417572021484375 F64(-0.0025)",
        );
        let big = Number::from_f64(1e300).unwrap();
        assert!(
            matches!(Number::parse(&big.to_string()).map(|n| n.0), Some(Repr::F64(f)) if f == 1e300)
        );
        check(Number::from_f64(f64::INFINITY), "+Inf F64(inf)");
        check(Number::from_f64(f64::NAN), "none");
        let e400 = Number::parse("1e400").unwrap();
        assert_eq!(e400.to_string(), format!("1{}", "0".repeat(400)));
        assert!(matches!(&e400.0, Repr::Text(t) if &**t == "1e400"));
        check(
            Number::parse("-1.25e9999"),
            r#"-1.25e+9999 Text("-1.25e9999")"#,
        );
        check(Number::parse("0.000120"), r#"0.00012 Text("0.000120")"#);
        check(
            Some(Number::from_u64(u64::MAX)),
            "18446744073709551615 Uint(18446744073709551615)",
        );
    }

    #[test]
    fn comparison_is_numeric_and_exact() {
        let n = |s: &str| Number::from_wire_text(s).unwrap();
        assert_eq!(Number::from_i64(1), Number::from_f64(1.0).unwrap());
        assert_eq!(Number::from_i64(1), n("1.0"));
        assert_eq!(n("100"), n("1e2"));
        assert_eq!(Number::from_f64_wire(1.0).unwrap(), n("1"));
        assert_eq!(Number::from_f32_wire(0.5).unwrap(), n("0.5"));
        assert_ne!(n("0.1"), Number::from_f64(0.1).unwrap());
        assert!(n("0.1") < Number::from_f64(0.1).unwrap());
        assert!(n("-0.1") > Number::from_f64(-0.1).unwrap());
        assert!(n("-5") < n("-4.99"));
        assert!(n("-1") < n("0"));
        assert!(n("0") == n("-0.000"));
        assert!(n("12") < n("12.3"));
        assert!(n("99") < n("1e2"));
        assert!(Number::from_f64(f64::NEG_INFINITY).unwrap() < n("-1e9999"));
        assert!(Number::from_f64(f64::INFINITY).unwrap() > n("1e9999"));
        assert!(Number::from_u64(u64::MAX) > Number::from_i64(i64::MAX));
        assert_eq!(Number::from_u64(u64::MAX), n("18446744073709551615"));
    }

    #[test]
    fn conversions() {
        let n = |s: &str| Number::from_wire_text(s).unwrap();
        assert_eq!(n("0.1").to_f64(), 0.1);
        assert_eq!(n("1e400").to_f64(), f64::INFINITY);
        assert_eq!(n("42.000").as_i64(), Some(42));
        assert_eq!(n("42.5").as_i64(), None);
        assert_eq!(n("9223372036854775807").as_i64(), Some(i64::MAX));
        assert_eq!(n("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(n("9223372036854775808").as_i64(), None);
        assert_eq!(
            Number::from_f64_wire(-((1u64 << 63) as f64))
                .unwrap()
                .as_i64(),
            Some(i64::MIN)
        );
        assert_eq!(
            Number::from_f64_wire((1u64 << 63) as f64).unwrap().as_i64(),
            None
        );
        assert!(n("1e400").is_integer());
        assert!(!n("0.5").is_integer());
        assert!(!Number::from_f64(f64::INFINITY).unwrap().is_integer());
        assert!(Number::from_f64(f64::INFINITY).unwrap().is_infinite());
    }

    #[test]
    fn every_subnormal_bit_is_exact() {
        let tiny = Number::from_f64(f64::from_bits(1)).unwrap();
        let text = tiny.to_string();
        assert!(text.starts_with("0.000") && text.ends_with("625"), "{text}");
        assert_eq!(Number::parse(&text).map(|n| n == tiny), Some(true));
    }
}
