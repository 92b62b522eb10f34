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

/// CPU time of `pid` and every process under it, in clock ticks: for
/// each, user plus system time (fields 14 and 15) and that of its children
/// already reaped (16 and 17). A server that runs programs (a process per
/// connection, a shared handler) is charged for them; a server without
/// children reads as [`cpu_ticks`].
pub fn tree_cpu_ticks(pid: u32) -> Option<u64> {
    let mut total = 0;
    for p in tree(pid)? {
        let Some(stat) = fs::read_to_string(format!("/proc/{p}/stat")).ok() else {
            continue; // exited meanwhile: its time is in its parent's 16, 17
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let times: Vec<u64> = stat[close + 1..]
            .split_whitespace()
            .skip(11) // fields 3..=13
            .take(4)
            .filter_map(|f| f.parse().ok())
            .collect();
        total += times.iter().sum::<u64>();
    }
    Some(total)
}

/// Proportional set size of `pid` and every process under it, in KiB
/// (`Pss` of `/proc/PID/smaps_rollup`): shared pages (a program's code,
/// libc) counted once across the processes that map them.
pub fn tree_pss_kib(pid: u32) -> Option<u64> {
    let mut total = 0;
    for p in tree(pid)? {
        let Ok(rollup) = fs::read_to_string(format!("/proc/{p}/smaps_rollup")) else {
            continue;
        };
        if let Some(line) = rollup.lines().find(|l| l.starts_with("Pss:")) {
            total += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}

/// `pid` and its descendants (by the parent pid, field 4, of every
/// process in `/proc`); `None` if `pid` is gone.
fn tree(pid: u32) -> Option<Vec<u32>> {
    fs::metadata(format!("/proc/{pid}")).ok()?;
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|c| stat[c + 1..].split_whitespace().nth(1))
            .and_then(|f| f.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|&&(_, pp)| pp == parent)
                .map(|&(p, _)| p),
        );
        i += 1;
    }
    Some(out)
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size of `pid` so far in KiB (`VmHWM` of
/// `/proc/PID/status`, the "high water mark").
pub fn hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock every process of
/// the machine shares (unlike `Instant`, whose origin is private), so a
/// stamp another process took can be subtracted from it.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists
    // on every Linux (and the call cannot fail with a valid pointer).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_itself() {
        assert!(super::clock_ticks() > 0);
        assert!(super::cpu_ticks(None).is_some());
        assert!(super::rss_kib(std::process::id()).unwrap() > 0);
        assert!(super::hwm_kib(std::process::id()).unwrap() > 0);
        let t = super::monotonic_ns();
        assert!(super::monotonic_ns() >= t);
        let me = std::process::id();
        assert!(super::tree_cpu_ticks(me).unwrap() >= super::cpu_ticks(None).unwrap());
        assert!(super::tree_pss_kib(me).unwrap() > 0);
    }
}
