//! How flag values are read: addresses, durations, settings that can be switched off.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use gossip_tokio::PeerAddress;

/// IP:PORT, or HOST:PORT resolved now (to its first IPv4 address, if it has one: a
/// name like `localhost` often resolves to `::1` too, which IPv4 peers cannot reach).
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let name = match text.parse::<PeerAddress>().map_err(|e| e.to_string())? {
        PeerAddress::Socket(addr) => return Ok(addr),
        PeerAddress::Name { host, port } => (host, port),
    };
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&name)
        .map_err(|e| format!("cannot resolve {text}: {e}"))?
        .collect();
    let first_v4 = addrs.iter().find(|addr| addr.is_ipv4());
    first_v4
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// A duration of more than zero, as humantime writes it (`2s`, `500ms`).
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".to_string()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

/// [`positive_duration`], in the type clap shows defaults with (`30s`, not `30.0s`).
pub fn positive_humantime(text: &str) -> Result<humantime::Duration, String> {
    positive_duration(text).map(Into::into)
}

/// A whole number of more than zero.
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be more than zero".to_string()),
        Ok(count) => Ok(count),
        Err(error) => Err(error.to_string()),
    }
}

/// A setting that can be switched off: `off`, or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrOff<T>(pub Option<T>);

impl<T: fmt::Display> fmt::Display for OrOff<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// Reads `off` as [`OrOff`]`(None)`, anything else with `value`.
pub fn or_off<T: 'static>(
    value: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<OrOff<T>, String> + Clone + Send + Sync + 'static {
    move |text: &str| match text {
        "off" => Ok(OrOff(None)),
        text => value(text)
            .map(|value| OrOff(Some(value)))
            .map_err(|error| format!("{error} (or `off`)")),
    }
}

/// A number as Rust reads it, for [`or_off`].
pub fn number<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    text.parse().map_err(|error: T::Err| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_switches_a_setting_off_and_anything_else_is_its_value() {
        let duration = or_off(positive_humantime);
        assert_eq!(duration("off"), Ok(OrOff(None)));
        assert_eq!(
            duration("2s").map(|d| d.0.map(Duration::from)),
            Ok(Some(Duration::from_secs(2)))
        );
        let zero = duration("0s").unwrap_err();
        assert!(
            zero.contains("more than zero") && zero.contains("off"),
            "{zero}"
        );
        let bytes = or_off(number::<u32>);
        assert_eq!(bytes("4096"), Ok(OrOff(Some(4096))));
        assert!(bytes("Off").is_err(), "only `off`, as written in the help");
        assert_eq!(OrOff::<u32>(None).to_string(), "off");
        assert_eq!(OrOff(Some(7u32)).to_string(), "7");
    }

    #[test]
    fn counts_and_durations_must_be_more_than_zero() {
        assert!(positive_count("0").is_err());
        assert_eq!(positive_count("3"), Ok(3));
        assert!(positive_duration("0ms").is_err());
        assert_eq!(positive_duration("5ms"), Ok(Duration::from_millis(5)));
    }
}
