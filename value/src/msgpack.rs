//! The msgpack encoding of `DynamicValue.msgpack` (cty's `msgpack` package rules).

use std::collections::BTreeMap;

use crate::number::Repr;
use crate::{Error, MAX_DEPTH, Number, PathStep, Refinements, Type, Value};

/// The extension code of a refined unknown.
const REFINED_UNKNOWN: i8 = 12;
/// cty refuses refinement payloads above this size.
const MAX_REFINEMENTS: usize = 1024;

/// Decodes `bytes` as a value of type `ty`. Every byte must be consumed.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, Error> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = read_value(&mut r, ty, 0)?;
    if r.remaining() != 0 {
        return Err(Error::msg(format!(
            "{} unexpected bytes after the value",
            r.remaining()
        )));
    }
    Ok(v)
}

/// Encodes `v` as type `ty`. Unknowns are written as `d4 00 00`, objects with sorted
/// keys, numbers in the representation they carry.
pub fn encode(v: &Value, ty: &Type) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    write_value(&mut out, v, ty)?;
    Ok(out)
}

/// One msgpack item. Arrays and maps are headers only; their elements follow.
enum Token<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
    Ext(i8, &'a [u8]),
}

impl Token<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Token::Nil => "nil",
            Token::Bool(_) => "bool",
            Token::Int(_) | Token::Uint(_) => "integer",
            Token::F32(_) | Token::F64(_) => "float",
            Token::Str(_) => "string",
            Token::Bin(_) => "binary",
            Token::Array(_) => "array",
            Token::Map(_) => "map",
            Token::Ext(..) => "extension",
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(Error::msg("unexpected end of msgpack input"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    fn len(&mut self, width: usize) -> Result<usize, Error> {
        Ok(match width {
            1 => usize::from(self.u8()?),
            2 => usize::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?) as usize,
        })
    }

    fn token(&mut self) -> Result<Token<'a>, Error> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Token::Int(i64::from(m)),
            0x80..=0x8f => Token::Map(usize::from(m & 0x0f)),
            0x90..=0x9f => Token::Array(usize::from(m & 0x0f)),
            0xa0..=0xbf => Token::Str(self.take(usize::from(m & 0x1f))?),
            0xc0 => Token::Nil,
            0xc1 => return Err(Error::msg("invalid msgpack marker 0xc1")),
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                Token::Bin(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (m - 0xc7))?;
                let code = i8::from_be_bytes(self.array()?);
                Token::Ext(code, self.take(n)?)
            }
            0xca => Token::F32(f32::from_be_bytes(self.array()?)),
            0xcb => Token::F64(f64::from_be_bytes(self.array()?)),
            0xcc => Token::Int(i64::from(self.u8()?)),
            0xcd => Token::Int(i64::from(u16::from_be_bytes(self.array()?))),
            0xce => Token::Int(i64::from(u32::from_be_bytes(self.array()?))),
            0xcf => {
                let u = u64::from_be_bytes(self.array()?);
                match i64::try_from(u) {
                    Ok(i) => Token::Int(i),
                    Err(_) => Token::Uint(u),
                }
            }
            0xd0 => Token::Int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Token::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Token::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Token::Int(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => {
                let code = i8::from_be_bytes(self.array()?);
                Token::Ext(code, self.take(1 << (m - 0xd4))?)
            }
            0xd9..=0xdb => {
                let n = self.len(1 << (m - 0xd9))?;
                Token::Str(self.take(n)?)
            }
            0xdc | 0xdd => Token::Array(self.len(if m == 0xdc { 2 } else { 4 })?),
            0xde | 0xdf => Token::Map(self.len(if m == 0xde { 2 } else { 4 })?),
            0xe0..=0xff => Token::Int(i64::from(m as i8)),
        })
    }

    /// Rejects a collection header whose elements (each at least `min_size` bytes)
    /// could not fit in the rest of the input. This keeps allocation proportional to
    /// the input, whatever count a header claims.
    fn check_count(&self, n: usize, min_size: usize) -> Result<(), Error> {
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(Error::msg(format!(
                "collection of {n} elements does not fit in the remaining {} bytes",
                self.remaining()
            )));
        }
        Ok(())
    }

    /// Skips one complete item, iteratively so nesting cannot exhaust the stack.
    fn skip(&mut self) -> Result<(), Error> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match self.token()? {
                Token::Array(n) => pending += n as u64,
                Token::Map(n) => pending += 2 * n as u64,
                _ => {}
            }
        }
        Ok(())
    }
}

fn type_error(expected: &Type, found: &Token<'_>) -> Error {
    Error::msg(format!("expected {expected}, found {}", found.kind()))
}

fn utf8(bytes: &[u8]) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::msg("string is not valid UTF-8"))
}

fn number(tok: Token<'_>) -> Result<Number, Error> {
    let n = match tok {
        Token::Int(i) => Some(Number::from_i64(i)),
        Token::Uint(u) => Some(Number::from_u64(u)),
        Token::F32(f) => Number::from_f32_wire(f),
        Token::F64(f) => Number::from_f64_wire(f),
        Token::Str(s) => {
            let s = utf8(s)?;
            Some(
                Number::from_wire_text(&s)
                    .ok_or_else(|| Error::msg(format!("invalid number {s:?}")))?,
            )
        }
        other => return Err(type_error(&Type::Number, &other)),
    };
    n.ok_or_else(|| Error::msg("NaN is not a valid number"))
}

fn read_value(r: &mut Reader<'_>, ty: &Type, depth: usize) -> Result<Value, Error> {
    if depth >= MAX_DEPTH {
        return Err(Error::msg(format!(
            "value is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let tok = r.token()?;
    // cty checks for unknowns first, then the dynamic wrapper, then null.
    match tok {
        Token::Ext(code, data) => return unknown(code, data),
        Token::Nil => return Ok(Value::Null),
        _ => {}
    }
    match ty {
        Type::Dynamic => {
            let Token::Array(2) = tok else {
                return Err(Error::msg(format!(
                    "expected a dynamic value as [type, value], found {}",
                    match tok {
                        Token::Array(n) => format!("an array of {n} elements"),
                        other => other.kind().to_string(),
                    }
                )));
            };
            let json = match r.token()? {
                Token::Bin(b) | Token::Str(b) => b,
                other => {
                    return Err(Error::msg(format!(
                        "expected the type JSON of a dynamic value, found {}",
                        other.kind()
                    )));
                }
            };
            let concrete = Type::from_json(json)?;
            let v = read_value(r, &concrete, depth + 1)?;
            Ok(Value::Dynamic(concrete, Box::new(v)))
        }
        Type::Bool => match tok {
            Token::Bool(b) => Ok(Value::Bool(b)),
            other => Err(type_error(ty, &other)),
        },
        Type::Number => Ok(Value::Number(number(tok)?)),
        Type::String => match tok {
            // Terraform writes str; bin is accepted for leniency.
            Token::Str(s) | Token::Bin(s) => Ok(Value::String(utf8(s)?)),
            other => Err(type_error(ty, &other)),
        },
        Type::List(elem) | Type::Set(elem) => {
            let Token::Array(n) = tok else {
                return Err(type_error(ty, &tok));
            };
            r.check_count(n, 1)?;
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                items.push(
                    read_value(r, elem, depth + 1)
                        .map_err(|e| e.within(PathStep::Index(i as i64)))?,
                );
            }
            Ok(if matches!(ty, Type::List(_)) {
                Value::List(items)
            } else {
                Value::Set(items)
            })
        }
        Type::Tuple(elems) => {
            let Token::Array(n) = tok else {
                return Err(type_error(ty, &tok));
            };
            if n != elems.len() {
                return Err(Error::msg(format!(
                    "a tuple of length {} is required ({n} given)",
                    elems.len()
                )));
            }
            let mut items = Vec::with_capacity(n);
            for (i, elem) in elems.iter().enumerate() {
                items.push(
                    read_value(r, elem, depth + 1)
                        .map_err(|e| e.within(PathStep::Index(i as i64)))?,
                );
            }
            Ok(Value::Tuple(items))
        }
        Type::Map(elem) => {
            let Token::Map(n) = tok else {
                return Err(type_error(ty, &tok));
            };
            r.check_count(n, 2)?;
            let mut m = BTreeMap::new();
            for _ in 0..n {
                let key = read_key(r)?;
                let v = read_value(r, elem, depth + 1)
                    .map_err(|e| e.within(PathStep::Key(key.clone())))?;
                // As in cty, a repeated key keeps the last value.
                m.insert(key, v);
            }
            Ok(Value::Map(m))
        }
        Type::Object(attrs) => {
            let Token::Map(n) = tok else {
                return Err(type_error(ty, &tok));
            };
            if n != attrs.len() {
                return Err(Error::msg(format!(
                    "an object with {} attributes is required ({n} given)",
                    attrs.len()
                )));
            }
            let mut m = BTreeMap::new();
            for _ in 0..n {
                let key = read_key(r)?;
                let Some(attr_ty) = attrs.get(&key) else {
                    return Err(Error::msg(format!("unsupported attribute {key:?}")));
                };
                if m.contains_key(&key) {
                    return Err(Error::msg(format!("duplicate attribute {key:?}")));
                }
                let v = read_value(r, attr_ty, depth + 1)
                    .map_err(|e| e.within(PathStep::Attr(key.clone())))?;
                m.insert(key, v);
            }
            // n == attrs.len() and no duplicates or strangers: every attribute is present.
            Ok(Value::Object(m))
        }
    }
}

fn read_key(r: &mut Reader<'_>) -> Result<String, Error> {
    match r.token()? {
        Token::Str(s) | Token::Bin(s) => utf8(s),
        other => Err(Error::msg(format!(
            "expected a string key, found {}",
            other.kind()
        ))),
    }
}

/// cty ≥ 1.13: an extension with at most one payload byte is a plain unknown (any
/// code); longer payloads must be code 12, a refined unknown.
fn unknown(code: i8, data: &[u8]) -> Result<Value, Error> {
    if data.len() <= 1 {
        return Ok(Value::unknown());
    }
    if code != REFINED_UNKNOWN {
        return Err(Error::msg(format!(
            "unsupported extension type {code} with a {}-byte payload",
            data.len()
        )));
    }
    if data.len() > MAX_REFINEMENTS {
        return Err(Error::msg(format!(
            "refinements of {} bytes exceed the {MAX_REFINEMENTS}-byte limit",
            data.len()
        )));
    }
    refinements(data)
        .map(Value::Unknown)
        .map_err(|e| Error::msg(format!("invalid refinements: {}", e.message())))
}

fn refinements(data: &[u8]) -> Result<Refinements, Error> {
    let mut r = Reader { buf: data, pos: 0 };
    let Token::Map(n) = r.token()? else {
        return Err(Error::msg("expected a map"));
    };
    r.check_count(n, 2)?;
    let mut refs = Refinements::default();
    for _ in 0..n {
        let key = match r.token()? {
            Token::Int(k) => k,
            // An integer too large for i64 cannot be a known key.
            Token::Uint(_) => -1,
            other => {
                return Err(Error::msg(format!(
                    "expected an integer key, found {}",
                    other.kind()
                )));
            }
        };
        match key {
            1 => match r.token()? {
                Token::Bool(b) => refs.nullness = Some(b),
                other => {
                    return Err(Error::msg(format!(
                        "nullness must be a bool, found {}",
                        other.kind()
                    )));
                }
            },
            2 => match r.token()? {
                Token::Str(s) => refs.string_prefix = Some(utf8(s)?),
                other => {
                    return Err(Error::msg(format!(
                        "string prefix must be a string, found {}",
                        other.kind()
                    )));
                }
            },
            3 | 4 => {
                let Token::Array(2) = r.token()? else {
                    return Err(Error::msg("a number bound must be [number, inclusive]"));
                };
                let n = number(r.token()?)?;
                let Token::Bool(inclusive) = r.token()? else {
                    return Err(Error::msg("a number bound must be [number, inclusive]"));
                };
                if key == 3 {
                    refs.number_lower = Some((n, inclusive));
                } else {
                    refs.number_upper = Some((n, inclusive));
                }
            }
            5 | 6 => {
                let len = match r.token()? {
                    Token::Int(i) if i >= 0 => i as u64,
                    Token::Uint(u) => u,
                    _ => return Err(Error::msg("a length bound must be a non-negative integer")),
                };
                if key == 5 {
                    refs.length_min = Some(len);
                } else {
                    refs.length_max = Some(len);
                }
            }
            // Newer Terraform may add refinements; skipping them is what cty does.
            _ => r.skip()?,
        }
    }
    if r.remaining() != 0 {
        return Err(Error::msg("unexpected bytes after the refinement map"));
    }
    Ok(refs)
}

fn write_err<E: std::fmt::Display>(e: E) -> Error {
    Error::msg(format!("msgpack write failed: {e}"))
}

fn len32(n: usize) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::msg(format!("{n} elements are too many for msgpack")))
}

fn write_value(out: &mut Vec<u8>, v: &Value, ty: &Type) -> Result<(), Error> {
    use rmp::encode as enc;
    match (v, ty) {
        (Value::Null, _) => enc::write_nil(out).map_err(write_err),
        // Always a plain unknown (fixext1, type 0, payload 0): refinements are never sent back.
        (Value::Unknown(_), _) => {
            out.extend_from_slice(&[0xd4, 0x00, 0x00]);
            Ok(())
        }
        (Value::Dynamic(concrete, inner), Type::Dynamic) => {
            enc::write_array_len(out, 2).map_err(write_err)?;
            enc::write_bin(out, concrete.to_json().as_bytes()).map_err(write_err)?;
            write_value(out, inner, concrete)
        }
        (other, Type::Dynamic) => Err(Error::msg(format!(
            "a dynamic-typed value must be Value::Dynamic, found {}",
            other.kind()
        ))),
        (Value::Bool(b), Type::Bool) => enc::write_bool(out, *b).map_err(write_err),
        (Value::Number(n), Type::Number) => match &n.0 {
            Repr::Int(i) => enc::write_sint(out, *i).map(drop),
            Repr::Uint(u) => enc::write_uint(out, *u).map(drop),
            Repr::F32(f) => enc::write_f32(out, *f),
            Repr::F64(f) => enc::write_f64(out, *f),
            Repr::Text(s) => enc::write_str(out, s),
        }
        .map_err(write_err),
        (Value::String(s), Type::String) => enc::write_str(out, s).map_err(write_err),
        (Value::List(items), Type::List(elem)) | (Value::Set(items), Type::Set(elem)) => {
            enc::write_array_len(out, len32(items.len())?).map_err(write_err)?;
            for (i, item) in items.iter().enumerate() {
                write_value(out, item, elem).map_err(|e| e.within(PathStep::Index(i as i64)))?;
            }
            Ok(())
        }
        (Value::Tuple(items), Type::Tuple(elems)) => {
            if items.len() != elems.len() {
                return Err(Error::msg(format!(
                    "a tuple of length {} is required ({} given)",
                    elems.len(),
                    items.len()
                )));
            }
            enc::write_array_len(out, len32(items.len())?).map_err(write_err)?;
            for (i, (item, elem)) in items.iter().zip(elems).enumerate() {
                write_value(out, item, elem).map_err(|e| e.within(PathStep::Index(i as i64)))?;
            }
            Ok(())
        }
        (Value::Map(m), Type::Map(elem)) => {
            enc::write_map_len(out, len32(m.len())?).map_err(write_err)?;
            for (k, item) in m {
                enc::write_str(out, k).map_err(write_err)?;
                write_value(out, item, elem).map_err(|e| e.within(PathStep::Key(k.clone())))?;
            }
            Ok(())
        }
        (Value::Object(m), Type::Object(attrs)) => {
            check_attributes(m, attrs)?;
            enc::write_map_len(out, len32(attrs.len())?).map_err(write_err)?;
            for (k, attr_ty) in attrs {
                let item = m.get(k).unwrap_or(&Value::Null);
                enc::write_str(out, k).map_err(write_err)?;
                write_value(out, item, attr_ty).map_err(|e| e.within(PathStep::Attr(k.clone())))?;
            }
            Ok(())
        }
        (other, _) => Err(Error::msg(format!("expected {ty}, found {}", other.kind()))),
    }
}

/// The encoders are strict: an object value must have exactly the type's attributes.
pub(crate) fn check_attributes(
    m: &BTreeMap<String, Value>,
    attrs: &BTreeMap<String, Type>,
) -> Result<(), Error> {
    if let Some(k) = m.keys().find(|k| !attrs.contains_key(*k)) {
        return Err(Error::msg(format!("unsupported attribute {k:?}")));
    }
    if let Some(k) = attrs.keys().find(|k| !m.contains_key(*k)) {
        return Err(Error::msg(format!("missing attribute {k:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
