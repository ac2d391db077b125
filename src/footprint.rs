//! The process's memory footprint: few malloc arenas, freed heap handed back to the OS after
//! each busy round, and the executable's pages released once the daemon settles (they are
//! read back from the page cache if ever needed again). Linux/glibc only; no-ops elsewhere.

/// glibc gives every thread that allocates its own arena and keeps freed memory there: with
/// the decoder, SQLite and sink work on different blocking threads a 1 M-event backfill peaked
/// at 189 MiB RSS instead of 83 MiB (BENCHMARKS.md). Two arenas keep memory bounded at no
/// measurable speed cost.
///
/// Blocks of 128 KiB and more (batches, chunk vectors, body buffers) are mapped on their own
/// and returned when freed: glibc otherwise raises that threshold to the largest block freed
/// (up to 32 MiB), after which such blocks come from the arenas and their freed space stays
/// there, fragmenting them from poll to poll (soak peak 59.6 → 53.0 MiB, issue 17).
/// Call it first thing in `main`, before any other thread exists.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Hands memory freed since the last call back to the OS, so the idle footprint between polls
/// stays small after a large window (glibc keeps freed heap otherwise).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Asks the kernel to reclaim the pages of the executable's own mappings (`MADV_PAGEOUT`,
/// Linux 5.4+): most of the file-backed resident set of an idle daemon is code that ran once
/// at startup (config, TLS setup, migrations) or runs once per poll. Pages still in use are
/// read back when touched. The mappings are first marked `MADV_RANDOM` so a fault does not
/// read around the page (the device's readahead is 8 MiB on the test VM); measured, that saved
/// only 0.3–1 MiB of idle RSS on Linux 6.18: fault-around still maps the cached neighbours of
/// each page touched (benches/results/mem-issue17, issue 17).
/// Returns the bytes of mappings advised (0 when the kernel or platform does not support it);
/// never fails the caller.
pub fn page_out_executable() -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
            return 0;
        };
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return 0;
        };
        let mut advised = 0;
        for (start, end) in exe_mappings(&maps, &exe.to_string_lossy()) {
            let (addr, len) = (start as *mut libc::c_void, end - start);
            // SAFETY: the range is one of this process's own file mappings of its executable,
            // read from /proc/self/maps; MADV_RANDOM only changes how faults read ahead, and
            // MADV_PAGEOUT only drops clean pages from memory, never their contents.
            let rc = unsafe {
                libc::madvise(addr, len, libc::MADV_RANDOM);
                libc::madvise(addr, len, libc::MADV_PAGEOUT)
            };
            if rc == 0 {
                advised += end - start;
            }
        }
        advised
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// The `[start, end)` address ranges in a `/proc/<pid>/maps` text whose path is `exe` and
/// that are not writable (code and read-only data: clean file pages, cheap to read back).
fn exe_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let range = cols.next()?;
            let perms = cols.next()?;
            // offset, dev, inode, then the path (which may contain spaces).
            let path = line.splitn(6, char::is_whitespace).nth(5)?.trim();
            if path != exe || perms.contains('w') {
                return None;
            }
            let (lo, hi) = range.split_once('-')?;
            Some((
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_mappings_of_the_executable_are_found_by_path() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 08:01 42 /usr/bin/clickhouse-audit-exporter
55d0c0100000-55d0c0300000 r-xp 00100000 08:01 42 /usr/bin/clickhouse-audit-exporter
55d0c0300000-55d0c0310000 rw-p 00300000 08:01 42 /usr/bin/clickhouse-audit-exporter
55d0c0400000-55d0c0500000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 r-xp 00000000 08:01 7 /usr/lib/libc.so.6
";
        assert_eq!(
            exe_mappings(maps, "/usr/bin/clickhouse-audit-exporter"),
            vec![
                (0x55d0c0000000, 0x55d0c0100000),
                (0x55d0c0100000, 0x55d0c0300000)
            ]
        );
        assert!(exe_mappings(maps, "/usr/bin/other").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_test_binary_pages_out_its_own_mappings_and_keeps_running() {
        let advised = page_out_executable();
        // Kernels before 5.4 refuse MADV_PAGEOUT (EINVAL): then nothing is advised, and the
        // process must carry on either way.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let total: usize = exe_mappings(&maps, &exe.to_string_lossy())
            .iter()
            .map(|(a, b)| b - a)
            .sum();
        assert!(total > 0, "the test binary maps itself");
        assert!(advised == 0 || advised == total, "{advised} of {total}");
        // Code paged out is faulted back in: this runs after the advice.
        assert_eq!(exe_mappings("", "x"), Vec::<(usize, usize)>::new());
    }
}
