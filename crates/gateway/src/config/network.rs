//! IP networks in CIDR notation, for the EMS server's client allow lists.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address with its host bits clear, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

/// Why a text is not a network.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkError {
    /// The address part is not an IPv4 or IPv6 address.
    Address(String),
    /// The prefix length is not a number, or above 32 (IPv4) or 128 (IPv6).
    Prefix(String),
    /// The address has bits set beyond the prefix; the network meant is given.
    HostBits {
        /// What was written.
        written: String,
        /// The network with the host bits cleared.
        network: IpNetwork,
    },
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkError::Address(text) => write!(f, "{text:?} is not an IP address"),
            NetworkError::Prefix(text) => {
                write!(
                    f,
                    "{text:?} is not a prefix length (0..=32 for IPv4, 0..=128 for IPv6)"
                )
            }
            NetworkError::HostBits { written, network } => {
                write!(f, "{written} has host bits set; the network is {network}")
            }
        }
    }
}

impl std::error::Error for NetworkError {}

impl IpNetwork {
    /// The network of `address` with `prefix` bits; `None` if the prefix is too long or the
    /// address has host bits set.
    pub fn new(address: IpAddr, prefix: u8) -> Option<IpNetwork> {
        let network = IpNetwork::covering(address, prefix)?;
        (network.address == address).then_some(network)
    }

    /// The network of `prefix` bits that holds `address`.
    fn covering(address: IpAddr, prefix: u8) -> Option<IpNetwork> {
        let masked = match address {
            IpAddr::V4(v4) if prefix <= 32 => IpAddr::V4((u32::from(v4) & mask_v4(prefix)).into()),
            IpAddr::V6(v6) if prefix <= 128 => {
                IpAddr::V6((u128::from(v6) & mask_v6(prefix)).into())
            }
            _ => return None,
        };
        Some(IpNetwork {
            address: masked,
            prefix,
        })
    }

    /// The network address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` is in the network (an IPv4 address is never in an IPv6 network).
    pub fn contains(&self, address: IpAddr) -> bool {
        IpNetwork::covering(address, self.prefix).is_some_and(|covering| covering == *self)
    }

    /// Whether every address of `other` is in this network.
    pub fn contains_network(&self, other: &IpNetwork) -> bool {
        other.prefix >= self.prefix && self.contains(other.address)
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for IpNetwork {
    type Err = NetworkError;

    /// `address/prefix`, or a bare address for one host.
    fn from_str(text: &str) -> Result<IpNetwork, NetworkError> {
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address_text
            .parse()
            .map_err(|_| NetworkError::Address(address_text.to_string()))?;
        let host_prefix = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => host_prefix,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|bits| *bits <= host_prefix)
                .ok_or_else(|| NetworkError::Prefix(prefix.to_string()))?,
        };
        let network = IpNetwork::covering(address, prefix)
            .ok_or_else(|| NetworkError::Prefix(prefix.to_string()))?;
        if network.address != address {
            return Err(NetworkError::HostBits {
                written: text.to_string(),
                network,
            });
        }
        Ok(network)
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_bare_hosts() {
        assert_eq!(net("192.168.10.0/24").to_string(), "192.168.10.0/24");
        assert_eq!(net("10.0.0.7").to_string(), "10.0.0.7/32");
        assert_eq!(net("::1").to_string(), "::1/128");
        assert_eq!(net("0.0.0.0/0").prefix(), 0);
        assert_eq!(net("fd00::/8").to_string(), "fd00::/8");
    }

    #[test]
    fn rejects_bad_addresses_prefixes_and_host_bits() {
        assert!(matches!(
            "10.0.0/8".parse::<IpNetwork>(),
            Err(NetworkError::Address(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<IpNetwork>(),
            Err(NetworkError::Prefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<IpNetwork>(),
            Err(NetworkError::Prefix(_))
        ));
        let error = "192.168.1.5/24".parse::<IpNetwork>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "192.168.1.5/24 has host bits set; the network is 192.168.1.0/24"
        );
    }

    #[test]
    fn containment() {
        assert!(net("192.168.0.0/16").contains("192.168.3.4".parse().unwrap()));
        assert!(!net("192.168.0.0/16").contains("10.0.0.1".parse().unwrap()));
        assert!(!net("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert!(net("192.168.0.0/16").contains_network(&net("192.168.10.0/24")));
        assert!(!net("192.168.10.0/24").contains_network(&net("192.168.0.0/16")));
        assert!(net("::/0").contains_network(&net("fd00::/8")));
    }
}
