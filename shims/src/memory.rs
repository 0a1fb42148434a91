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
//! A mapping with some written pages (the binary's read-only data holds the
//! GOT, written once by the loader) loses only the pages that
//! `/proc/self/pagemap` shows are still the file's.
//! Called on the main thread, it also drops the main stack's pages below
//! the current frame: a deep call once (a container create) leaves them
//! resident, dead until the next deep call, which gets fresh zero pages.

use std::fs;

/// Unmaps never-written read-only file pages and trims the heap.
pub fn trim() {
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    trim_main_stack(&smaps);
    let mappings = read_only_file_mappings(&smaps);
    drop(smaps);
    let pagemap = fs::File::open("/proc/self/pagemap").ok();
    let mut ranges: Vec<(usize, usize)> = mappings
        .iter()
        .flat_map(|mapping| clean_ranges(mapping, pagemap.as_ref()))
        .collect();
    // The code running now last: whatever runs after its pages are gone
    // maps them back in.
    let here = trim as fn() as usize;
    ranges.sort_by_key(|&(start, end)| (start..end).contains(&here));
    tracing::debug!(ranges = ranges.len(), "unmapping clean file pages");
    for (start, end) in ranges {
        // SAFETY: pages of a read-only private file mapping that were never
        // written (no anonymous copies, e.g. relocations): dropped pages
        // read back identical from the file on next use.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// A read-only private mapping of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    /// Pages of it that are private copies (written before it became
    /// read-only, e.g. relocated pointers), in KiB.
    anonymous_kib: u64,
}

/// The page size the ranges are counted in.
const PAGE: usize = 4096;
/// pagemap: the page is present in memory.
const PM_PRESENT: u64 = 1 << 63;
/// pagemap: the page is swapped out.
const PM_SWAPPED: u64 = 1 << 62;
/// pagemap: the page is a file page (or shared anonymous).
const PM_FILE: u64 = 1 << 61;

/// The parts of `mapping` holding no private copy: all of it when it has
/// none, else the runs of pages `/proc/self/pagemap` shows as file pages or
/// not in memory at all (none when pagemap cannot be read).
fn clean_ranges(mapping: &Mapping, pagemap: Option<&fs::File>) -> Vec<(usize, usize)> {
    if mapping.anonymous_kib == 0 {
        return vec![(mapping.start, mapping.end)];
    }
    let Some(pagemap) = pagemap else {
        return Vec::new();
    };
    let pages = (mapping.end - mapping.start) / PAGE;
    let mut entries = vec![0u8; pages * 8];
    let offset = (mapping.start / PAGE * 8) as u64;
    if std::os::unix::fs::FileExt::read_exact_at(pagemap, &mut entries, offset).is_err() {
        return Vec::new();
    }
    let clean: Vec<bool> = entries
        .chunks_exact(8)
        .map(|bytes| {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            let entry = u64::from_ne_bytes(word);
            entry & PM_FILE != 0 || entry & (PM_PRESENT | PM_SWAPPED) == 0
        })
        .collect();
    runs(mapping.start, &clean)
}

/// The address ranges of the runs of `true` in `clean` (one per page from
/// `start`).
fn runs(start: usize, clean: &[bool]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut run: Option<usize> = None;
    for (i, &is_clean) in clean.iter().chain([&false]).enumerate() {
        match (is_clean, run) {
            (true, None) => run = Some(i),
            (false, Some(first)) => {
                ranges.push((start + first * PAGE, start + i * PAGE));
                run = None;
            }
            _ => {}
        }
    }
    ranges
}

/// Room left below the current frame for the calls still to come (the
/// madvise call itself among them): their frames must not be dropped.
const STACK_MARGIN: usize = 16 << 10;

/// Drops the main stack's pages more than [`STACK_MARGIN`] below the
/// current frame, when called on the main thread.
fn trim_main_stack(smaps: &str) {
    // SAFETY: getpid and gettid cannot fail.
    if unsafe { libc::getpid() != libc::gettid() } {
        return;
    }
    let Some((low, _)) = stack_range(smaps) else {
        return;
    };
    let here = 0u8;
    let frame = std::hint::black_box(&here) as *const u8 as usize;
    let end = frame.saturating_sub(STACK_MARGIN) & !(PAGE - 1);
    if end > low {
        // SAFETY: the range lies in the main stack mapping, wholly below
        // the current frame and the margin kept for the calls made from
        // here: only dead stack is dropped; touching it again maps zeros.
        unsafe {
            libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED);
        }
    }
}

/// The `[stack]` mapping's range, from a `/proc/<pid>/smaps` text.
fn stack_range(smaps: &str) -> Option<(usize, usize)> {
    let line = smaps.lines().find(|line| line.ends_with(" [stack]"))?;
    let (start, end) = line.split_whitespace().next()?.split_once('-')?;
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    ))
}

/// The read-only private file mappings, from a `/proc/<pid>/smaps` text.
fn read_only_file_mappings(smaps: &str) -> Vec<Mapping> {
    let mut mappings = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in smaps.lines() {
        if let Some(anonymous) = line.strip_prefix("Anonymous:") {
            if let Some(mut mapping) = current.take() {
                let kib = anonymous.trim().trim_end_matches("kB").trim();
                // Unknown counts as written: nothing of it is dropped.
                mapping.anonymous_kib = kib.parse().unwrap_or(u64::MAX);
                mappings.push(mapping);
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
        current = (read_only && path.starts_with('/')).then_some(Mapping {
            start,
            end,
            anonymous_kib: u64::MAX,
        });
    }
    mappings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_read_only_file_mappings() {
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
        let found: Vec<(usize, usize, u64)> = read_only_file_mappings(smaps)
            .iter()
            .map(|m| (m.start, m.end, m.anonymous_kib))
            .collect();
        assert_eq!(
            found,
            [
                (0x55d0c0000000, 0x55d0c0155000, 0),
                (0x55d0c0155000, 0x55d0c045f000, 0),
                (0x55d0c045f000, 0x55d0c04a3000, 272),
                (0x7f0000000000, 0x7f0000100000, 0)
            ]
        );
    }

    #[test]
    fn a_mapping_without_copies_is_dropped_whole_and_one_with_copies_by_runs() {
        let whole = Mapping {
            start: 0x1000,
            end: 0x5000,
            anonymous_kib: 0,
        };
        assert_eq!(clean_ranges(&whole, None), [(0x1000, 0x5000)]);
        let written = Mapping {
            anonymous_kib: 4,
            ..whole
        };
        // Without pagemap nothing of a mapping with copies is dropped.
        assert_eq!(clean_ranges(&written, None), []);
        assert_eq!(
            runs(0x1000, &[true, false, true, true]),
            [(0x1000, 0x2000), (0x3000, 0x5000)]
        );
        assert_eq!(runs(0x1000, &[false, false]), []);
    }

    #[test]
    fn finds_the_main_stack() {
        let smaps = "\
55d0c04a3000-55d0c04a5000 rw-p 004a3000 fd:00 123 /usr/bin/skiff
Anonymous:             8 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
Anonymous:           100 kB
";
        assert_eq!(stack_range(smaps), Some((0x7ffc00000000, 0x7ffc00021000)));
        assert_eq!(stack_range("garbage"), None);
    }

    #[test]
    fn the_process_runs_on_after_trimming() {
        trim();
        let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(!read_only_file_mappings(&smaps).is_empty());
    }
}
