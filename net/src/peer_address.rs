//! Where to dial a peer: a socket address, or a host name resolved at every dial.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// A peer to dial: an IP address and port, or a host name and port (`node-1:7000`,
/// `localhost:7000`), as in container networks where peers are known by name.
///
/// A name is resolved again at every dial, so a peer that comes back with another
/// address (a restarted container) is found, and a name that does not resolve yet (a
/// peer not started) is a failed dial, retried with backoff like any other. The
/// addresses it resolves to are tried in order until one connects.
///
/// ```
/// use gossip_net::PeerAddress;
/// let ip: PeerAddress = "127.0.0.1:7000".parse()?;
/// assert_eq!(ip, PeerAddress::Socket("127.0.0.1:7000".parse().unwrap()));
/// let name: PeerAddress = "node-1:7000".parse()?;
/// assert_eq!(name, PeerAddress::Name { host: "node-1".into(), port: 7000 });
/// assert_eq!(name.to_string(), "node-1:7000");
/// assert!("node-1".parse::<PeerAddress>().is_err(), "a port is required");
/// # Ok::<(), gossip_net::PeerAddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerAddress {
    /// An IP address and port (`127.0.0.1:7000`, `[::1]:7000`).
    Socket(SocketAddr),
    /// A host name and port, resolved at each dial.
    Name {
        /// The name, without the port.
        host: String,
        /// The port.
        port: u16,
    },
}

/// A text that is not `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not IP:PORT, [IPv6]:PORT or HOST:PORT")]
pub struct PeerAddressError {
    text: String,
}

impl FromStr for PeerAddress {
    type Err = PeerAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = text.parse() {
            return Ok(PeerAddress::Socket(addr));
        }
        let error = || PeerAddressError { text: text.into() };
        let (host, port) = text.rsplit_once(':').ok_or_else(error)?;
        let port = port.parse().map_err(|_| error())?;
        // A colon left in the host is an IPv6 address without brackets; whitespace or
        // a bracket is no host name either.
        let valid = |c: char| !(c == ':' || c == '[' || c == ']' || c.is_whitespace());
        if host.is_empty() || !host.chars().all(valid) {
            return Err(error());
        }
        let host = host.to_owned();
        Ok(PeerAddress::Name { host, port })
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddress::Socket(addr) => addr.fmt(f),
            PeerAddress::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for PeerAddress {
    fn from(addr: SocketAddr) -> Self {
        PeerAddress::Socket(addr)
    }
}

impl PeerAddress {
    /// The socket addresses to try, in order. A name is resolved by the system's
    /// resolver on a thread of its own (it blocks, for as long as the resolver takes),
    /// so no runtime thread waits for it.
    pub(crate) async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = match self {
            PeerAddress::Socket(addr) => return Ok(vec![*addr]),
            PeerAddress::Name { host, port } => (host.clone(), *port),
        };
        let (answer, answered) = async_channel::bounded(1);
        std::thread::Builder::new()
            .name("gossip-resolve".into())
            .spawn(move || {
                let addrs = (host.as_str(), port).to_socket_addrs().map(Vec::from_iter);
                let _ = answer.try_send(addrs);
            })?;
        let addrs = answered
            .recv()
            .await
            .map_err(|_| io::Error::other("the resolver thread ended without an answer"))??;
        match addrs.is_empty() {
            true => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{self} resolves to no address"),
            )),
            false => Ok(addrs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PeerAddress, PeerAddressError> {
        text.parse()
    }

    #[test]
    fn addresses_and_names_parse_and_print_back() {
        for text in [
            "127.0.0.1:7000",
            "[::1]:7000",
            "localhost:1",
            "node-1.example:65535",
        ] {
            assert_eq!(parse(text).map(|a| a.to_string()), Ok(text.to_owned()));
        }
        assert!(matches!(parse("[::1]:7000"), Ok(PeerAddress::Socket(_))));
        assert!(matches!(parse("node-1:7000"), Ok(PeerAddress::Name { .. })));
    }

    #[test]
    fn texts_that_name_no_peer_are_refused() {
        for text in [
            "",
            "localhost",
            ":7000",
            "localhost:",
            "localhost:port",
            "localhost:65536",
            "::1:7000",
            "[::1:7000",
            "two words:7000",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_socket_address_needs_no_resolver() {
        let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let resolved = futures_lite::future::block_on(PeerAddress::from(addr).resolve());
        assert_eq!(resolved.unwrap(), [addr]);
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let name = parse("localhost:7000").unwrap();
        let resolved = futures_lite::future::block_on(name.resolve()).unwrap();
        assert!(resolved
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 7000));
    }
}
