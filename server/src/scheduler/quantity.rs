//! Exact parsing of Kubernetes resource quantities ("100m", "1.5", "128Mi",
//! "1G", "2e3").
//!
//! A quantity is kept as `mantissa * 10^exp10 * 2^exp2`, so nothing is lost
//! to floating point; [`Quantity::value`] and [`Quantity::milli_value`] round
//! up the way apimachinery's `Value()` and `MilliValue()` do.

use thiserror::Error;

/// The most significant digits a mantissa may carry; beyond this `i128`
/// arithmetic could overflow before scaling.
const MAX_DIGITS: usize = 30;

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The string does not follow the quantity grammar.
    #[error(
        "quantity {0:?} does not match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Syntax(String),
    /// The number has more digits than can be held exactly.
    #[error("quantity {0:?} is too large")]
    TooLarge(String),
}

/// A parsed resource quantity, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// Parses a quantity in Kubernetes' canonical or non-canonical form.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let syntax = || QuantityError::Syntax(text.to_string());
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
            return Err(syntax());
        }
        let (exp10, exp2) = parse_suffix(suffix).ok_or_else(syntax)?;
        let digits = format!("{whole}{fraction}");
        let significant = digits.trim_start_matches('0');
        if significant.len() > MAX_DIGITS {
            return Err(QuantityError::TooLarge(text.to_string()));
        }
        let mut mantissa: i128 = 0;
        for digit in significant.bytes() {
            mantissa = mantissa * 10 + i128::from(digit - b'0');
        }
        if negative {
            mantissa = -mantissa;
        }
        let fraction_len = i32::try_from(fraction.len()).map_err(|_| syntax())?;
        Ok(Self {
            mantissa,
            exp10: exp10 - fraction_len,
            exp2,
        })
    }

    /// The value rounded up to a whole number (bytes, pods), or `None` if it
    /// does not fit in an `i64`.
    pub fn value(&self) -> Option<i64> {
        self.scaled_ceil(0)
    }

    /// The value in thousandths rounded up (millicores), or `None` if it does
    /// not fit in an `i64`.
    pub fn milli_value(&self) -> Option<i64> {
        self.scaled_ceil(3)
    }

    /// `ceil(self * 10^scale)`.
    fn scaled_ceil(&self, scale: i32) -> Option<i64> {
        let mut n = self
            .mantissa
            .checked_mul(1_i128.checked_shl(self.exp2).filter(|m| *m > 0)?)?;
        let exp = self.exp10 + scale;
        if exp >= 0 {
            n = n.checked_mul(10_i128.checked_pow(exp.unsigned_abs())?)?;
        } else {
            match 10_i128.checked_pow(exp.unsigned_abs()) {
                Some(divisor) => {
                    let quotient = n / divisor;
                    n = if n % divisor > 0 {
                        quotient + 1
                    } else {
                        quotient
                    };
                }
                // Smaller than any representable step: rounds up to 1 or to 0.
                None => n = i128::from(n > 0),
            }
        }
        i64::try_from(n).ok()
    }
}

/// The decimal and binary exponents a suffix stands for.
fn parse_suffix(suffix: &str) -> Option<(i32, u32)> {
    let scale = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let value: i32 = exponent.parse().ok()?;
            // Anything beyond this is out of range for every resource anyway.
            if value.unsigned_abs() > 200 {
                return None;
            }
            (value, 0)
        }
    };
    Some(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> i64 {
        Quantity::parse(s).unwrap().milli_value().unwrap()
    }

    fn value(s: &str) -> i64 {
        Quantity::parse(s).unwrap().value().unwrap()
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("1.5"), 1500);
        assert_eq!(milli("2"), 2000);
        assert_eq!(milli("0.1"), 100);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("1."), 1000);
        assert_eq!(milli("+3"), 3000);
        assert_eq!(milli("0"), 0);
        // Below a millicore rounds up, like MilliValue().
        assert_eq!(milli("1u"), 1);
        assert_eq!(milli("100n"), 1);
        assert_eq!(milli("0.0001"), 1);
        assert_eq!(milli("-1m"), -1);
        assert_eq!(milli("-0.0001"), 0);
    }

    #[test]
    fn memory_forms() {
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("2Ki"), 2048);
        assert_eq!(value("1.5Gi"), 3 * 512 * 1024 * 1024);
        assert_eq!(value("1k"), 1000);
        assert_eq!(value("1e3"), 1000);
        assert_eq!(value("1E3"), 1000);
        assert_eq!(value("12e-1"), 2);
        assert_eq!(value("1E"), 1_000_000_000_000_000_000);
        assert_eq!(value("7Ei"), 7 << 60);
        assert_eq!(value("100m"), 1);
        assert_eq!(value("000110"), 110);
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(Quantity::parse("8Ei").unwrap().value(), None);
        assert_eq!(Quantity::parse("10E").unwrap().milli_value(), None);
        assert!(matches!(
            Quantity::parse("1234567890123456789012345678901234567890"),
            Err(QuantityError::TooLarge(_))
        ));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", ".", "-", "+", "1.2.3", "1K", "1KI", "Mi", "1 Mi", " 1", "1Ki2", "1e", "1e+",
            "1ee3", "1mm", "0x10", "1,5", "1e999",
        ] {
            assert!(
                matches!(Quantity::parse(bad), Err(QuantityError::Syntax(_))),
                "{bad:?} should be rejected"
            );
        }
    }
}
