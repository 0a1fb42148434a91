//! crictl's table layout (Go's `text/tabwriter` with minimum width 20,
//! padding 3) and its human-readable sizes (docker's go-units).

/// Rows of cells, aligned as crictl aligns them.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

/// Narrowest column, as crictl configures its tabwriter.
const MIN_WIDTH: usize = 20;
/// Spaces after a column's widest cell.
const PADDING: usize = 3;

impl Table {
    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The aligned text: every cell but a row's last is padded to its
    /// column's width; each row ends with a newline.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns.saturating_sub(1))
            .map(|col| {
                self.rows
                    .iter()
                    .filter(|row| col + 1 < row.len())
                    .map(|row| row[col].chars().count() + PADDING)
                    .max()
                    .unwrap_or(0)
                    .max(MIN_WIDTH)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            for (col, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if col + 1 < row.len() {
                    let pad = widths[col].saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// A size in decimal SI units with `precision` significant digits, as
/// go-units' `HumanSizeWithPrecision` prints it (`2.16MB`, `1e+03kB`).
pub fn human_size(bytes: f64, precision: usize) -> String {
    let mut size = bytes;
    let mut unit = 0;
    while size >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_format_g(size, precision), DECIMAL_UNITS[unit])
}

/// Go's `%.{precision}g` for a non-negative finite number.
fn go_format_g(value: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if value == 0.0 || !value.is_finite() {
        return "0".to_owned();
    }
    // Rust's `{:e}` rounds exactly (half to even), as Go's strconv does.
    let formatted = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let nd = digits.len() as i32;
    let dp = exponent + 1;
    let mut eprec = precision as i32;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        let shown = (precision as i32).min(nd) as usize;
        let mut out = digits[..1].to_owned();
        if shown > 1 {
            out.push('.');
            out.push_str(&digits[1..shown]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exp.abs()));
        return out;
    }
    let decimals = if precision as i32 > dp {
        nd - dp
    } else {
        precision as i32 - dp
    }
    .max(0);
    let digit = |i: i32| -> char {
        if i >= 0 && i < nd {
            digits.as_bytes()[i as usize] as char
        } else {
            '0'
        }
    };
    let mut out = String::new();
    if dp > 0 {
        (0..dp).for_each(|i| out.push(digit(i)));
    } else {
        out.push('0');
    }
    if decimals > 0 {
        out.push('.');
        (0..decimals).for_each(|i| out.push(digit(dp + i)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_crictl_prints_them() {
        let cases = [
            (0.0, "0B"),
            (999.0, "999B"),
            (1000.0, "1kB"),
            (1500.0, "1.5kB"),
            (2_155_345.0, "2.16MB"),
            (4_860_000.0, "4.86MB"),
            (123_456_789.0, "123MB"),
            (120_000_000.0, "120MB"),
            (999_600.0, "1e+03kB"),
            (1_000_000_000.0, "1GB"),
            (80_500_000.0, "80.5MB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human_size(bytes, 3), expected, "{bytes}");
        }
        assert_eq!(human_size(2_155_345.0, 4), "2.155MB");
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let mut table = Table::default();
        table.row(vec!["IMAGE".into(), "TAG".into(), "SIZE".into()]);
        table.row(vec![
            "docker.io/library/busybox-with-a-long-name".into(),
            "latest".into(),
            "2.16MB".into(),
        ]);
        let expected = "\
IMAGE                                        TAG                 SIZE
docker.io/library/busybox-with-a-long-name   latest              2.16MB
";
        assert_eq!(table.render(), expected);
    }
}
