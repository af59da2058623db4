//! Free loopback ports.

use std::net::{Ipv4Addr, TcpListener};

/// A port the kernel just handed out on 127.0.0.1.
///
/// The listener is closed before the caller binds it, so another process can win the race; the
/// control plane retries its start when a child reports "address already in use".
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}
