//! The demo's listen addresses and the flags that choose them, so that a port already taken is
//! reported with the flag to change ("127.0.0.1:8080 is already in use (by another program or
//! another demo): choose another port with --http ADDR, or --http 127.0.0.1:0 for any free
//! port").

use std::io;
use std::net::SocketAddr;

use anyhow::anyhow;

/// An address to listen on and the flag that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The flag, e.g. `--http`.
    pub flag: &'static str,
    /// The address (port 0: any free port).
    pub address: SocketAddr,
}

impl Listen {
    /// `address`, set by `flag`.
    pub fn new(flag: &'static str, address: SocketAddr) -> Listen {
        Listen { flag, address }
    }
}

/// The error for a failed bind of `address`, naming the flag of whichever of `listens` asked
/// for it.
pub fn bind_error(listens: &[Listen], address: SocketAddr, source: &io::Error) -> anyhow::Error {
    let Some(listen) = listens.iter().find(|listen| listen.address == address) else {
        return anyhow!("cannot listen on {address}: {source}");
    };
    let flag = listen.flag;
    let any_port = SocketAddr::new(address.ip(), 0);
    match source.kind() {
        io::ErrorKind::AddrInUse => anyhow!(
            "{address} is already in use (by another program or another demo): choose another \
             port with {flag} ADDR, or {flag} {any_port} for any free port"
        ),
        io::ErrorKind::PermissionDenied => anyhow!(
            "not allowed to listen on {address} ({flag}): ports below 1024 need root or \
             CAP_NET_BIND_SERVICE; choose another with {flag} ADDR"
        ),
        _ => anyhow!("cannot listen on {address} ({flag}): {source}"),
    }
}

/// An error when two flags ask for the same port (a second bind would fail less clearly).
pub fn check_distinct(listens: &[Listen]) -> anyhow::Result<()> {
    for (index, first) in listens.iter().enumerate() {
        let clash = listens[index + 1..].iter().find(|other| {
            first.address.port() != 0
                && first.address.port() == other.address.port()
                && (first.address.ip() == other.address.ip()
                    || first.address.ip().is_unspecified()
                    || other.address.ip().is_unspecified())
        });
        if let Some(other) = clash {
            anyhow::bail!(
                "{} {} and {} {} take the same port: choose different ones",
                first.flag,
                first.address,
                other.flag,
                other.address
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_port_in_use_names_its_flag() {
        let listens = [
            Listen::new("--http", at("127.0.0.1:8080")),
            Listen::new("--devices", at("127.0.0.1:7700")),
        ];
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        let message = bind_error(&listens, at("127.0.0.1:7700"), &in_use).to_string();
        assert!(
            message.contains("127.0.0.1:7700 is already in use"),
            "{message}"
        );
        assert!(message.contains("--devices ADDR"), "{message}");
        assert!(message.contains("--devices 127.0.0.1:0"), "{message}");
        let unknown = bind_error(&listens, at("127.0.0.1:1"), &in_use).to_string();
        assert!(
            unknown.starts_with("cannot listen on 127.0.0.1:1"),
            "{unknown}"
        );
    }

    #[test]
    fn two_flags_on_one_port_are_refused_but_any_free_port_is_not_a_clash() {
        let same = [
            Listen::new("--modbus", at("127.0.0.1:5502")),
            Listen::new("--metrics", at("0.0.0.0:5502")),
        ];
        let message = check_distinct(&same).unwrap_err().to_string();
        assert!(message.contains("--modbus 127.0.0.1:5502 and --metrics 0.0.0.0:5502"));
        let any = [
            Listen::new("--modbus", at("127.0.0.1:0")),
            Listen::new("--metrics", at("127.0.0.1:0")),
        ];
        assert!(check_distinct(&any).is_ok());
    }
}
