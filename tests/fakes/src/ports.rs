//! Free loopback ports: the one home of "a port nothing listens on yet" for every test crate, the
//! e2e kit (which re-exports these) and xtask.

use std::net::{Ipv4Addr, TcpListener};

/// `N` distinct ports the kernel just handed out on 127.0.0.1.
///
/// All listeners stay open until every port is picked, so the kernel cannot hand out one twice. They
/// are closed before the children bind, so another process can still win a port; the control plane
/// and [`crate::registry::TestRegistry`] retry their start when that happens.
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// One port the kernel just handed out on 127.0.0.1 (see [`free_ports`] for the race this leaves). Also
/// a port nothing listens on, for "unreachable" cases.
pub fn free_port() -> u16 {
    let [port] = free_ports::<1>().expect("bind 127.0.0.1:0");
    port
}
