//! Free ports on 127.0.0.1 for child processes to listen on. A child binds its port a moment
//! after the harness chose it, so the choice avoids the ports the kernel hands out on its own.

use std::io;
use std::net::{SocketAddr, TcpListener};

use crate::TestkitError;

/// Ports tried below the kernel's ephemeral range before falling back to port 0.
const PORT_ATTEMPTS_MAX: usize = 64;
/// Ports one call of [`free_loopback_addresses`] hands out at most (a cluster of nine masters,
/// a proxy, each with an HTTP port, and etcd members fit with room).
const ADDRESSES_MAX: usize = 64;

/// A free port on 127.0.0.1 for a child to listen on (bound here, then released; the child
/// binds it a moment later).
///
/// Chosen at random *below* the kernel's ephemeral range (`ip_local_port_range`), where the
/// kernel never hands out ports on its own. A port from port 0 lies in that range, and in the
/// moment before the child binds it any outgoing connection on the machine (other tests, a
/// build fetching crates) may take it as its source port: a master then exits with "Address
/// already in use". Falls back to port 0 if no port below the range is free.
pub fn free_loopback_address() -> io::Result<SocketAddr> {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    for _ in 0..PORT_ATTEMPTS_MAX {
        // `RandomState` is seeded at random per instance: a random port without a dependency.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let port = low + (hasher.finish() % u64::from(high - low)) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr();
        }
    }
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// `count` distinct free ports on 127.0.0.1 ([`free_loopback_address`], each held bound until
/// all are chosen, so no two are the same, then released).
pub fn free_loopback_addresses(count: usize) -> Result<Vec<SocketAddr>, TestkitError> {
    assert!(
        count <= ADDRESSES_MAX,
        "at most {ADDRESSES_MAX} ports at once, not {count}"
    );
    let failed = TestkitError::io("finding free loopback ports");
    let mut held = Vec::with_capacity(count);
    while held.len() < count {
        let address = free_loopback_address().map_err(&failed)?;
        held.push(TcpListener::bind(address).map_err(&failed)?);
    }
    held.iter()
        .map(TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_loopback_address_can_be_bound_and_is_below_the_ephemeral_range() {
        let address = free_loopback_address().expect("a free port");
        assert!(address.ip().is_loopback());
        TcpListener::bind(address).expect("still free");
        if let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
            let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
            if low > 10_001 {
                assert!(
                    address.port() < low,
                    "{address} is in the ephemeral range {range}"
                );
            }
        }
    }

    #[test]
    fn addresses_handed_out_together_are_distinct_and_free() {
        let addresses = free_loopback_addresses(12).expect("free ports");
        let distinct: std::collections::BTreeSet<_> = addresses.iter().collect();
        assert_eq!(distinct.len(), 12, "{addresses:?}");
        for address in &addresses {
            TcpListener::bind(address).expect("still free");
        }
    }
}
