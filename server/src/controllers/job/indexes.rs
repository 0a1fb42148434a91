//! An Indexed Job's completed indexes as ordered intervals, written the way
//! `status.completedIndexes` shows them ("1,3-5,7").

use std::fmt;

/// Disjoint, sorted, non-adjacent closed intervals of indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(i32, i32)>);

impl Intervals {
    /// Reads `completedIndexes`, ignoring malformed parts and indexes at or
    /// past `completions`.
    pub fn parse(text: &str, completions: i32) -> Intervals {
        let mut intervals = Intervals::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => match (a.parse::<i32>(), b.parse::<i32>()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => continue,
                },
                None => match part.parse::<i32>() {
                    Ok(a) => (a, a),
                    Err(_) => continue,
                },
            };
            let last = last.min(completions - 1);
            if first < 0 || first > last {
                continue;
            }
            intervals = intervals.merge_interval(first, last);
        }
        intervals
    }

    fn merge_interval(self, first: i32, last: i32) -> Intervals {
        let mut all = self.0;
        all.push((first, last));
        all.sort_unstable();
        let mut merged: Vec<(i32, i32)> = Vec::with_capacity(all.len());
        for (a, b) in all {
            match merged.last_mut() {
                Some((_, end)) if a <= end.saturating_add(1) => *end = (*end).max(b),
                _ => merged.push((a, b)),
            }
        }
        Intervals(merged)
    }

    /// These intervals with `indexes` added.
    pub fn with_indexes(&self, indexes: impl IntoIterator<Item = i32>) -> Intervals {
        let mut result = self.clone();
        for ix in indexes {
            if !result.has(ix) {
                result = result.merge_interval(ix, ix);
            }
        }
        result
    }

    /// Whether `ix` is in one of the intervals.
    pub fn has(&self, ix: i32) -> bool {
        self.0.iter().any(|(a, b)| *a <= ix && ix <= *b)
    }

    /// How many indexes the intervals hold.
    pub fn total(&self) -> i32 {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }
}

impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (first, last)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{first}")?;
            if last > first {
                let sep = if *last == first + 1 { "," } else { "-" };
                write!(f, "{sep}{last}")?;
            }
        }
        Ok(())
    }
}

/// The lowest `count` indexes below `completions` that are neither
/// succeeded nor held by an active pod.
pub fn first_pending(
    succeeded: &Intervals,
    active: &[i32],
    count: usize,
    completions: i32,
) -> Vec<i32> {
    let active: std::collections::HashSet<i32> = active.iter().copied().collect();
    (0..completions)
        .filter(|ix| !succeeded.has(*ix) && !active.contains(ix))
        .take(count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_upstream() {
        let i = Intervals::default().with_indexes([0, 1, 3, 4, 5, 7]);
        assert_eq!(i.to_string(), "0,1,3-5,7");
        assert_eq!(i.total(), 6);
        assert_eq!(Intervals::default().to_string(), "");
    }

    #[test]
    fn parses_and_clamps_to_completions() {
        let i = Intervals::parse("0,1,3-5,7,x,9-2", 5);
        assert_eq!(i.to_string(), "0,1,3,4");
        assert!(i.has(4));
        assert!(!i.has(2));
        assert_eq!(Intervals::parse("1-2,3", 10).to_string(), "1-3");
    }

    #[test]
    fn pending_indexes_skip_succeeded_and_active() {
        let done = Intervals::default().with_indexes([0, 2]);
        assert_eq!(first_pending(&done, &[1], 2, 6), [3, 4]);
        assert_eq!(first_pending(&done, &[1, 3, 4, 5], 2, 6), Vec::<i32>::new());
    }
}
