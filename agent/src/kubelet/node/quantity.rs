//! Resource quantities as the node reports them: written in the canonical
//! form apimachinery's `Quantity` prints (so the apiserver stores what was
//! sent), and compared by value (so a differently written but equal
//! quantity never counts as a change).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
const DECIMAL_SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];

/// A byte count as a `BinarySI` quantity: the largest power of 1024 that
/// divides it (`16374860Ki`, `2Gi`), a plain number otherwise.
pub fn binary_si(bytes: u64) -> Quantity {
    if bytes < 1024 {
        return Quantity(bytes.to_string());
    }
    let (mut amount, mut power) = (bytes, 0);
    while power < BINARY_SUFFIXES.len() - 1 && amount % 1024 == 0 {
        amount /= 1024;
        power += 1;
    }
    Quantity(format!("{amount}{}", BINARY_SUFFIXES[power]))
}

/// A count as a `DecimalSI` quantity (`4`, `110`).
pub fn decimal_si(count: u64) -> Quantity {
    if count == 0 {
        return Quantity("0".to_owned());
    }
    let (mut amount, mut power) = (count, 0);
    while power < DECIMAL_SUFFIXES.len() - 1 && amount % 1000 == 0 {
        amount /= 1000;
        power += 1;
    }
    Quantity(format!("{amount}{}", DECIMAL_SUFFIXES[power]))
}

/// The value of an integer quantity in thousandths (`500m` is 500, `2Ki`
/// is 2 048 000); `None` for forms the node never reports (fractions,
/// exponents).
pub fn milli_value(quantity: &Quantity) -> Option<i128> {
    let text = quantity.0.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '-' && c != '+')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let number: i128 = number.parse().ok()?;
    let scale: i128 = match suffix {
        "m" => return Some(number),
        "" => 1,
        _ => {
            if let Some(power) = BINARY_SUFFIXES.iter().position(|s| *s == suffix) {
                1024_i128.pow(power as u32)
            } else {
                1000_i128.pow(DECIMAL_SUFFIXES.iter().position(|s| *s == suffix)? as u32)
            }
        }
    };
    number.checked_mul(scale)?.checked_mul(1000)
}

/// Whether two quantities are equal in value (textually equal when either
/// cannot be read).
pub fn same_value(a: &Quantity, b: &Quantity) -> bool {
    match (milli_value(a), milli_value(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.0 == b.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_print_as_apimachinery_prints_them() {
        assert_eq!(binary_si(0).0, "0");
        assert_eq!(binary_si(1000).0, "1000");
        assert_eq!(binary_si(16_767_856_640).0, "16374860Ki");
        assert_eq!(binary_si(2 * 1024 * 1024 * 1024).0, "2Gi");
        assert_eq!(binary_si(93_478_772_582).0, "93478772582");
        assert_eq!(binary_si(2_097_152).0, "2Mi");
    }

    #[test]
    fn counts_print_as_decimal_si() {
        assert_eq!(decimal_si(0).0, "0");
        assert_eq!(decimal_si(4).0, "4");
        assert_eq!(decimal_si(110).0, "110");
        assert_eq!(decimal_si(2000).0, "2k");
    }

    #[test]
    fn quantities_compare_by_value() {
        let q = |s: &str| Quantity(s.to_owned());
        assert!(same_value(&q("1Ki"), &q("1024")));
        assert!(same_value(&q("2k"), &q("2000")));
        assert!(same_value(&q("4"), &q("4000m")));
        assert!(!same_value(&q("1Mi"), &q("1M")));
        assert_eq!(milli_value(&q("1.5")), None);
        assert!(same_value(&q("1.5"), &q("1.5")));
    }
}
