//! Keeping an idle shim small.
//!
//! A shim is the whole `skiff` binary. Creating a container runs a lot of
//! libcontainer's code, and the kernel maps file pages in 64 KiB blocks
//! (fault-around), so after one create a shim keeps megabytes of the
//! binary's code and constants in its resident set although its idle loop
//! needs little of them. Those pages are clean and shared (page cache):
//! unmapping them from the shim frees nothing anyone else uses, and any
//! later use maps them back from the cache with a minor fault. So after
//! heavy requests the shim unmaps them, and returns free heap to the kernel.

use std::fs;

/// Unmaps never-written read-only file pages and trims the heap.
pub fn trim() {
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let ranges = clean_read_only_ranges(&smaps);
    tracing::debug!(ranges = ranges.len(), "unmapping clean file pages");
    for (start, end) in ranges {
        // SAFETY: a read-only private file mapping none of whose pages was
        // ever written (no anonymous copies, e.g. relocations): dropped pages
        // read back identical from the file on next use.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The read-only private file mappings without written (anonymous) pages,
/// from a `/proc/<pid>/smaps` text.
fn clean_read_only_ranges(smaps: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(anonymous) = line.strip_prefix("Anonymous:") {
            if let Some(range) = current.take()
                && anonymous.trim() == "0 kB"
            {
                ranges.push(range);
            }
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        let read_only = perms == "r-xp" || perms == "r--p";
        current = (read_only && path.starts_with('/')).then_some((start, end));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_clean_read_only_file_mappings() {
        let smaps = "\
55d0c0000000-55d0c0155000 r--p 00000000 fd:00 123 /usr/bin/skiff
Rss:                 448 kB
Anonymous:             0 kB
55d0c0155000-55d0c045f000 r-xp 00155000 fd:00 123 /usr/bin/skiff
Anonymous:             0 kB
55d0c045f000-55d0c04a3000 r--p 0045f000 fd:00 123 /usr/bin/skiff
Anonymous:           272 kB
55d0c04a3000-55d0c04a5000 rw-p 004a3000 fd:00 123 /usr/bin/skiff
Anonymous:             8 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:00 456 /usr/lib/libc.so.6
Anonymous:             0 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
Anonymous:           100 kB
7ffc00100000-7ffc00102000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            clean_read_only_ranges(smaps),
            [
                (0x55d0c0000000, 0x55d0c0155000),
                (0x55d0c0155000, 0x55d0c045f000),
                (0x7f0000000000, 0x7f0000100000)
            ]
        );
    }

    #[test]
    fn the_process_runs_on_after_trimming() {
        trim();
        let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(!clean_read_only_ranges(&smaps).is_empty());
    }
}
