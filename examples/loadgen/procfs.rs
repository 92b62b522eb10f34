//! Reading another process's (and our own) CPU time and resident memory
//! from `/proc`, Linux only. Every reader answers `None` where `/proc` or
//! the process is missing, so the load generator still runs elsewhere.

use std::fs;

/// Clock ticks per second of `/proc/PID/stat`'s CPU times (`getconf
/// CLK_TCK`), from the auxiliary vector's `AT_CLKTCK`; 100, the Linux
/// value on every common architecture, when it cannot be read.
pub fn clock_ticks() -> u64 {
    const AT_CLKTCK: usize = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let Ok(auxv) = fs::read("/proc/self/auxv") else {
        return 100;
    };
    for pair in auxv.chunks_exact(2 * WORD) {
        let (key, value) = pair.split_at(WORD);
        let word = |b: &[u8]| usize::from_ne_bytes(b.try_into().unwrap_or([0; WORD]));
        if word(key) == AT_CLKTCK && word(value) > 0 {
            return word(value) as u64;
        }
    }
    100
}

/// User plus system CPU time of `pid` (every thread), or of this process
/// for `None`, in clock ticks: fields 14 (`utime`) and 15 (`stime`) of
/// `/proc/PID/stat`.
pub fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields from the last ')', where field 3 (state) starts.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // fields 3..=13
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_itself() {
        assert!(super::clock_ticks() > 0);
        assert!(super::cpu_ticks(None).is_some());
        assert!(super::rss_kib(std::process::id()).unwrap() > 0);
    }
}
