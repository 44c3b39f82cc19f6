//! A process's resident set size, read from `VmRSS` in `/proc/PID/status`: the figure both the
//! benchmark's incident section and the nemesis watch on the proxy across a wrong-cluster flood
//! (the incident's leak grew exactly this).

use crate::TestkitError;

/// Resident set size of process `pid`, in bytes (Linux's `/proc/PID/status`).
pub fn resident_bytes(pid: u32) -> Result<u64, TestkitError> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(TestkitError::io(format!("reading {path}")))?;
    resident_bytes_of(&status)
        .ok_or_else(|| TestkitError::Child(format!("{path} has no VmRSS line")))
}

/// `VmRSS:    1234 kB` in the text of `/proc/PID/status` → bytes.
pub fn resident_bytes_of(status: &str) -> Option<u64> {
    let kibibytes: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kibibytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_size_is_read_from_proc_status() {
        let status = "Name:\tvigil\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes_of(status), Some(2048 * 1024));
        assert_eq!(resident_bytes_of("Name:\tvigil\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let bytes = resident_bytes(std::process::id()).expect("our own /proc status");
        assert!(bytes > 0);
    }
}
