//! Resource quantities (`resource.Quantity`): parsing, comparison and the
//! canonical form upstream prints in messages.

use serde_json::Value;

/// The regular expression upstream quotes for a malformed quantity.
pub(super) const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    BinarySI,
    DecimalSI,
    DecimalExponent,
}

/// A parsed quantity: its value in nano-units and its suffix family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quantity {
    nanos: i128,
    format: Format,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Parses `1`, `250m`, `1.5Gi`, `1e3`, `-2k`, ...
    pub(super) fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let (negative, digits) = match number.as_bytes().first() {
            Some(b'-') => (true, &number[1..]),
            Some(b'+') => (false, &number[1..]),
            _ => (false, number),
        };
        if digits.is_empty() || digits.contains(['+', '-']) {
            return None;
        }
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
            return None;
        }
        let (format, scale) = suffix_scale(suffix)?;
        // value = whole.frac * scale, kept exact in nano-units.
        let frac = frac.get(..frac.len().min(18)).unwrap_or("");
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let frac_num: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        let frac_den: i128 = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        let nanos = match scale {
            Scale::Mul(m) => {
                let w = whole.checked_mul(m)?.checked_mul(NANO)?;
                // Round fractions of a nano-unit up, as upstream does.
                let f = frac_num.checked_mul(m)?.checked_mul(NANO)?;
                w.checked_add((f + frac_den - 1) / frac_den)?
            }
            Scale::Div(d) => {
                let total = whole
                    .checked_mul(frac_den)?
                    .checked_add(frac_num)?
                    .checked_mul(NANO)?;
                let den = frac_den.checked_mul(d)?;
                (total + den - 1) / den
            }
        };
        Some(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// The quantity in `obj` (a JSON string or number).
    pub(super) fn from_value(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(s) => Quantity::parse(s),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    /// Below zero.
    pub(super) fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Above zero.
    pub(super) fn is_positive(&self) -> bool {
        self.nanos > 0
    }

    /// A whole number of units.
    pub(super) fn is_integer(&self) -> bool {
        self.nanos % NANO == 0
    }

    /// Compares the values (formats aside).
    pub(super) fn cmp_value(&self, other: &Quantity) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }

    /// Upstream's `Quantity.String()` (canonical form).
    pub(super) fn canonical(&self) -> String {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        if self.format == Format::BinarySI
            && abs.is_multiple_of(NANO as u128)
            && abs >= 1024 * NANO as u128
        {
            let mut units = abs / NANO as u128;
            let mut i = 0;
            let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            while units.is_multiple_of(1024) && i + 1 < suffixes.len() {
                units /= 1024;
                i += 1;
            }
            return format!("{sign}{units}{}", suffixes[i]);
        }
        // Decimal: the largest power of 1000 leaving an integer mantissa.
        let mut mantissa = abs;
        let mut exp: i32 = -9;
        while mantissa != 0 && mantissa.is_multiple_of(1000) && exp < 18 {
            mantissa /= 1000;
            exp += 3;
        }
        if mantissa == 0 {
            return "0".into();
        }
        if self.format == Format::DecimalExponent {
            return match exp {
                0 => format!("{sign}{mantissa}"),
                e => format!("{sign}{mantissa}e{e}"),
            };
        }
        let suffix = match exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        format!("{sign}{mantissa}{suffix}")
    }
}

enum Scale {
    Mul(i128),
    Div(i128),
}

fn suffix_scale(suffix: &str) -> Option<(Format, Scale)> {
    let binary = |p: u32| Some((Format::BinarySI, Scale::Mul(1024i128.pow(p))));
    let decimal = |p: i32| {
        if p >= 0 {
            Some((Format::DecimalSI, Scale::Mul(10i128.pow(p.unsigned_abs()))))
        } else {
            Some((Format::DecimalSI, Scale::Div(10i128.pow(p.unsigned_abs()))))
        }
    };
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        exp if exp.starts_with(['e', 'E']) => {
            let p: i32 = exp[1..].parse().ok()?;
            if !(-9..=30).contains(&p) {
                return None;
            }
            let (_, scale) = decimal(p)?;
            Some((Format::DecimalExponent, scale))
        }
        _ => None,
    }
}
