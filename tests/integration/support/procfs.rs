//! What /proc says about a process, and this process's descriptor limit.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// What /proc says about a process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Open file descriptors.
    pub fds: usize,
    /// Resident memory.
    pub rss_kib: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// Reads `pid`'s descriptors, memory and CPU time.
pub fn usage(pid: u32) -> Usage {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may contain spaces): state is field 3, utime 14.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 1..]
        .split_whitespace()
        .collect();
    let ticks = |field: usize| fields[field - 3].parse::<u64>().expect("a tick count");
    Usage {
        fds,
        rss_kib,
        cpu_ticks: ticks(14) + ticks(15),
    }
}

/// Raises this process's soft descriptor limit to hold `need` sockets; `false` (test skipped)
/// when the hard limit does not allow it.
pub fn descriptors_for(need: u64) -> bool {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= need {
        return true;
    }
    if hard < need {
        eprintln!("skipping: the hard RLIMIT_NOFILE ({hard}) is below the {need} this test holds");
        return false;
    }
    setrlimit(Resource::RLIMIT_NOFILE, need, hard).expect("setrlimit");
    true
}
