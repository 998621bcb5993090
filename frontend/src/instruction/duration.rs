//! Durations written as Go's `time.ParseDuration` reads them (`30s`, `1m30s`, `1.5h`, `500ms`).
//!
//! HEALTHCHECK flags take this syntax because BuildKit hands them to Go's parser; the error messages
//! are Go's too.

use crate::instruction::error::go_quote;

/// A duration Go would reject, with Go's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all (`abc`, `1.`, overflow).
    #[error("time: invalid duration {}", go_quote(input))]
    Invalid {
        /// The text given.
        input: String,
    },
    /// A number with no unit after it (`30`).
    #[error("time: missing unit in duration {}", go_quote(input))]
    MissingUnit {
        /// The text given.
        input: String,
    },
    /// A unit Go does not know (`30x`).
    #[error("time: unknown unit {} in duration {}", go_quote(unit), go_quote(input))]
    UnknownUnit {
        /// The unit found.
        unit: String,
        /// The text given.
        input: String,
    },
}

/// Parses `input` to signed nanoseconds, exactly as Go's `time.ParseDuration`.
pub fn parse_go_duration(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, rest) = leading_int(s).ok_or_else(invalid)?;
        let has_whole = rest.len() != s.len();
        s = rest;
        let (mut fraction, mut scale, mut has_fraction) = (0, 1.0, false);
        if let Some(rest) = s.strip_prefix('.') {
            let (f, sc, after) = leading_fraction(rest);
            has_fraction = after.len() != rest.len();
            (fraction, scale, s) = (f, sc, after);
        }
        if !has_whole && !has_fraction {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        if whole > (1 << 63) / nanos {
            return Err(invalid());
        }
        let mut value = whole * nanos;
        if fraction > 0 {
            // Go adds the fraction in float64; truncation matches its result.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let extra = (fraction as f64 * (nanos as f64 / scale)) as u64;
            value = value
                .checked_add(extra)
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= 1 << 63)
            .ok_or_else(invalid)?;
    }
    if negative {
        // -(1<<63) is representable; wrapping handles exactly that case.
        #[allow(clippy::cast_possible_wrap)]
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// The digits at the start of `s` as a number (`None` on overflow) and what follows them.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut value: u64 = 0;
    for digit in s[..end].bytes() {
        if value > (1 << 63) / 10 {
            return None;
        }
        value = value * 10 + u64::from(digit - b'0');
        if value > 1 << 63 {
            return None;
        }
    }
    Some((value, &s[end..]))
}

/// The digits after a decimal point: their value, the power of ten they are scaled by, and the
/// rest. Digits past what fits are consumed but ignored, as Go does.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (mut value, mut scale, mut overflow) = (0u64, 1.0f64, false);
    for digit in s[..end].bytes() {
        if overflow {
            continue;
        }
        if value > (i64::MAX as u64) / 10 {
            overflow = true;
            continue;
        }
        let next = value * 10 + u64::from(digit - b'0');
        if next > i64::MAX as u64 {
            overflow = true;
            continue;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale, &s[end..])
}

/// Nanoseconds in one `unit`, for the units Go knows.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-1.5h"), Ok(-5_400_000_000_000));
        assert_eq!(parse_go_duration("+5ms"), Ok(5_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1µs"), Ok(1_000));
        assert_eq!(parse_go_duration("100ns"), Ok(100));
        assert_eq!(parse_go_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
    }

    #[test]
    fn go_errors() {
        let msg = |s: &str| parse_go_duration(s).unwrap_err().to_string();
        assert_eq!(msg(""), r#"time: invalid duration """#);
        assert_eq!(msg("abc"), r#"time: invalid duration "abc""#);
        assert_eq!(msg("."), r#"time: invalid duration ".""#);
        assert_eq!(msg("30"), r#"time: missing unit in duration "30""#);
        assert_eq!(msg("30x"), r#"time: unknown unit "x" in duration "30x""#);
        assert_eq!(msg("3000000h"), r#"time: invalid duration "3000000h""#);
    }
}
