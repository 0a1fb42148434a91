//! Sandbox and container IDs: 64 random hex digits, as containerd makes
//! them, and lookup by unique prefix, as crictl users type them.

use std::fmt::Write;

/// A fresh random ID (256 bits from the kernel, hex).
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most `len` bytes into the buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
}

/// What a prefix lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Exactly one ID starts with the prefix.
    Found(&'a str),
    /// None does.
    Missing,
    /// Several do.
    Ambiguous,
}

/// Finds the one ID among `ids` that equals or starts with `prefix`.
pub fn find_by_prefix<'a>(ids: impl IntoIterator<Item = &'a str>, prefix: &str) -> Lookup<'a> {
    if prefix.is_empty() {
        return Lookup::Missing;
    }
    let mut found = None;
    for id in ids {
        if id == prefix {
            return Lookup::Found(id);
        }
        if id.starts_with(prefix) {
            if found.is_some() {
                return Lookup::Ambiguous;
            }
            found = Some(id);
        }
    }
    found.map_or(Lookup::Missing, Lookup::Found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn prefixes_find_one_id_or_say_why_not() {
        let ids = ["abc123", "abd456", "ff"];
        assert_eq!(find_by_prefix(ids, "abc"), Lookup::Found("abc123"));
        assert_eq!(find_by_prefix(ids, "ab"), Lookup::Ambiguous);
        assert_eq!(find_by_prefix(ids, "zz"), Lookup::Missing);
        assert_eq!(find_by_prefix(ids, ""), Lookup::Missing);
        assert_eq!(find_by_prefix(["ab", "abc"], "ab"), Lookup::Found("ab"));
    }
}
