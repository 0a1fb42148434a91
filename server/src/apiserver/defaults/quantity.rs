//! Resource quantities (`resource.Quantity`) as kube-apiserver writes them
//! back: parsed, rounded up to nano (and to milli in resource lists), and
//! printed in canonical form, so `0.5` reads `500m`, `2048Mi` reads `2Gi`
//! and the JSON number `1` the string `"1"`. Text that does not parse is
//! left for validation to reject.

use serde_json::{Value, json};

/// How a quantity's suffix was written, which its canonical form keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `Ki`, `Mi`, ... `Ei`.
    BinarySi,
    /// none, `n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`.
    DecimalSi,
    /// `e3`, `E-2`, ...
    DecimalExponent,
}

/// A quantity worth `value * 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quantity {
    value: i128,
    scale: i32,
    format: Format,
}

const BINARY: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

fn decimal_exponent(suffix: &str) -> Option<i32> {
    Some(match suffix {
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "" => 0,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        _ => return None,
    })
}

fn decimal_suffix(exponent: i32) -> Option<&'static str> {
    Some(match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Quantity {
    /// Parses `[+-]digits[.digits][suffix]`.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let mut value: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            value = value
                .checked_mul(10)?
                .checked_add(i128::from(digit - b'0'))?;
        }
        let mut scale = -i32::try_from(fraction.len()).ok()?;
        let format = if let Some(power) = BINARY.iter().skip(1).position(|s| *s == suffix) {
            value = value.checked_mul(1024i128.checked_pow(u32::try_from(power + 1).ok()?)?)?;
            Format::BinarySi
        } else if let Some(exponent) = decimal_exponent(suffix) {
            scale = scale.checked_add(exponent)?;
            Format::DecimalSi
        } else {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            scale = scale.checked_add(exponent.parse::<i32>().ok()?)?;
            Format::DecimalExponent
        };
        let quantity = Quantity {
            value: if negative { -value } else { value },
            scale,
            format,
        };
        quantity.round_up(-9)
    }

    /// Rounds away from zero to at most `scale` (-3 milli, -9 nano).
    fn round_up(self, scale: i32) -> Option<Self> {
        if self.scale >= scale {
            return Some(self);
        }
        let divisor = pow10(u32::try_from(scale - self.scale).ok()?)?;
        let mut value = self.value / divisor;
        if self.value % divisor != 0 {
            value += self.value.signum();
        }
        Some(Quantity {
            value,
            scale,
            ..self
        })
    }

    /// The integer value, when the quantity is a whole number.
    fn integer(self) -> Option<i128> {
        if self.scale >= 0 {
            return self.value.checked_mul(pow10(self.scale.unsigned_abs())?);
        }
        let divisor = pow10(self.scale.unsigned_abs())?;
        (self.value % divisor == 0).then_some(self.value / divisor)
    }

    /// Upstream's canonical text (`Quantity.String()`).
    fn canonical(self) -> Option<String> {
        if self.value == 0 {
            return Some("0".to_owned());
        }
        let mut format = self.format;
        if format == Format::BinarySi {
            match self.integer() {
                Some(n) if n.abs() >= 1024 => {
                    let (mut amount, mut power) = (n, 0);
                    while power < BINARY.len() - 1 && amount % 1024 == 0 {
                        amount /= 1024;
                        power += 1;
                    }
                    return Some(format!("{amount}{}", BINARY[power]));
                }
                _ => format = Format::DecimalSi,
            }
        }
        let (mut mantissa, mut exponent) = (self.value, self.scale);
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        // Down to a multiple of 3: 1500 is 1500, not 1.5k.
        match exponent.rem_euclid(3) {
            1 => {
                mantissa = mantissa.checked_mul(10)?;
                exponent -= 1;
            }
            2 => {
                mantissa = mantissa.checked_mul(100)?;
                exponent -= 2;
            }
            _ => {}
        }
        let suffix = match (format, decimal_suffix(exponent)) {
            (Format::DecimalSi, Some(suffix)) => suffix.to_owned(),
            (_, _) if exponent == 0 => String::new(),
            _ => format!("e{exponent}"),
        };
        Some(format!("{mantissa}{suffix}"))
    }
}

/// The text of a quantity given as a JSON string or number.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Canonical form of one quantity, `scale` its rounding (-9 nano for a
/// lone quantity, -3 milli in resource lists).
fn canonical_at(value: &Value, scale: i32) -> Option<String> {
    let text = text_of(value)?;
    Quantity::parse(&text)?.round_up(scale)?.canonical()
}

/// Rewrites one quantity (`emptyDir.sizeLimit`, ...) in canonical form.
pub(super) fn canonicalize(value: &mut Value) {
    if let Some(text) = canonical_at(value, -9) {
        *value = json!(text);
    }
}

/// Rewrites every quantity of a resource list (`requests`, `capacity`,
/// ...) in canonical form, rounded up to milli as upstream does.
pub(super) fn resource_list(list: &mut Value) {
    if let Some(map) = list.as_object_mut() {
        for value in map.values_mut() {
            if let Some(text) = canonical_at(value, -3) {
                *value = json!(text);
            }
        }
    }
}

/// [`resource_list`] on `obj[key]` when it is there.
pub(super) fn resource_list_at(obj: &mut Value, key: &str) {
    if let Some(list) = obj.get_mut(key) {
        resource_list(list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        Quantity::parse(text)
            .and_then(Quantity::canonical)
            .unwrap_or_else(|| format!("invalid {text}"))
    }

    fn in_list(text: &str) -> String {
        canonical_at(&json!(text), -3).unwrap_or_else(|| format!("invalid {text}"))
    }

    #[test]
    fn decimal_quantities_take_the_largest_exact_suffix() {
        for (given, want) in [
            ("0", "0"),
            ("0.0", "0"),
            ("1", "1"),
            ("100", "100"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("0.5", "500m"),
            ("0.1", "100m"),
            ("1.0", "1"),
            ("1.5", "1500m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("2500m", "2500m"),
            ("1G", "1G"),
            ("1000M", "1G"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129e3", "129e3"),
            ("1.5e3", "1500"),
            ("1e3", "1e3"),
            ("12E", "12E"),
            ("1E3", "1e3"),
            ("-1.5", "-1500m"),
            ("+2", "2"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("1u", "1u"),
        ] {
            assert_eq!(canon(given), want, "{given}");
        }
    }

    #[test]
    fn binary_quantities_keep_binary_suffixes_when_exact() {
        for (given, want) in [
            ("1Ki", "1Ki"),
            ("1024Ki", "1Mi"),
            ("2048Mi", "2Gi"),
            ("1000Ki", "1000Ki"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("0.1Ki", "102400m"),
            ("1Ei", "1Ei"),
        ] {
            assert_eq!(canon(given), want, "{given}");
        }
    }

    #[test]
    fn resource_lists_round_up_to_milli() {
        assert_eq!(in_list("1.0001"), "1001m");
        assert_eq!(in_list("0.0001"), "1m");
        assert_eq!(in_list("100u"), "1m");
        assert_eq!(in_list("250m"), "250m");
        assert_eq!(canonical_at(&json!(2), -3).as_deref(), Some("2"));
        assert_eq!(canonical_at(&json!(0.5), -3).as_deref(), Some("500m"));
    }

    #[test]
    fn invalid_text_is_left_alone() {
        for text in ["", "abc", "1Kb", "1.2.3", "1e", "--1", "1 Gi", "."] {
            assert_eq!(Quantity::parse(text), None, "{text}");
        }
        let mut list = json!({ "cpu": "lots", "memory": "64Mi", "x": true });
        resource_list(&mut list);
        assert_eq!(list, json!({ "cpu": "lots", "memory": "64Mi", "x": true }));
    }
}
