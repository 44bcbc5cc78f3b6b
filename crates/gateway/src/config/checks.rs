//! Small checks of single values, shared by the sections: addresses, names, codes.

use std::net::SocketAddr;

/// Baud rates a serial link may use.
pub(crate) const STANDARD_BAUDS: [i64; 11] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600,
];

/// CAN bit rates (the SLCAN `S0`..`S8` set).
pub(crate) const CAN_BITRATES: [i64; 9] = [
    10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000,
];

/// Unlock codes that must never be used: the NW default password and common placeholders.
const WELL_KNOWN_CODES: [&str; 8] = [
    "123456", "1234567", "12345678", "000000", "111111", "654321", "password", "changeme",
];

/// `host:port` with a non-empty host and a port in 1..=65535 (an IPv6 host in brackets).
pub(crate) fn host_port(text: &str) -> Result<(), String> {
    let invalid = || format!("{text:?} is not host:port (e.g. \"192.168.1.50:8899\")");
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let port_ok = port.parse::<u16>().is_ok_and(|port| port != 0);
    let host_ok = !host.is_empty() && !host.contains(char::is_whitespace);
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// A listen address: an IP address and a port in 1..=65535.
pub(crate) fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text.parse().map_err(|_| {
        format!(
            "{text:?} is not ip:port (e.g. \"127.0.0.1:5020\", \"0.0.0.0:502\" or \"[::]:502\")"
        )
    })?;
    if address.port() == 0 {
        return Err(format!("{text:?}: port 0 would listen on a random port"));
    }
    Ok(address)
}

/// Whether two listeners would take the same port.
pub(crate) fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A rack name: 1 to 32 ASCII letters, digits, '-', '_' or '.'.
pub(crate) fn rack_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if (1..=32).contains(&name.len()) && name.chars().all(allowed) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a rack name (1 to 32 letters, digits, '-', '_' or '.')"
        ))
    }
}

/// A SocketCAN interface name: 1 to 15 printable ASCII characters, no '/'.
pub(crate) fn interface_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_graphic() && c != '/';
    if (1..=15).contains(&name.len()) && name.chars().all(allowed) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an interface name (1 to 15 printable characters, no '/'; e.g. \"can0\")"
        ))
    }
}

/// An unlock code: 6 to 32 printable ASCII characters without spaces, not a well-known one.
pub(crate) fn unlock_code(code: &str) -> Result<(), String> {
    if !(6..=32).contains(&code.len()) || !code.chars().all(|c| c.is_ascii_graphic()) {
        return Err("must be 6 to 32 printable ASCII characters without spaces".to_string());
    }
    if WELL_KNOWN_CODES.contains(&code.to_ascii_lowercase().as_str()) {
        return Err("is a well-known default; choose a code of your own".to_string());
    }
    Ok(())
}

/// A list of choices for messages: `"a", "b" or "c"`.
pub(crate) fn choices(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_needs_both_parts() {
        assert!(host_port("192.168.1.50:8899").is_ok());
        assert!(host_port("platform.example:9100").is_ok());
        assert!(host_port("[::1]:502").is_ok());
        assert!(host_port("192.168.1.50").is_err());
        assert!(host_port(":8899").is_err());
        assert!(host_port("host:0").is_err());
        assert!(host_port("host:70000").is_err());
    }

    #[test]
    fn listeners_clash_on_the_same_port_of_one_address_or_any() {
        let at = |text: &str| text.parse::<SocketAddr>().ok();
        let clash = |a: &str, b: &str| match (at(a), at(b)) {
            (Some(a), Some(b)) => listeners_clash(a, b),
            _ => false,
        };
        assert!(clash("127.0.0.1:5020", "127.0.0.1:5020"));
        assert!(clash("0.0.0.0:5020", "127.0.0.1:5020"));
        assert!(!clash("127.0.0.1:5020", "127.0.0.2:5020"));
        assert!(!clash("127.0.0.1:5020", "127.0.0.1:9464"));
    }

    #[test]
    fn names_and_codes() {
        assert!(rack_name("rack-1.a_b").is_ok());
        assert!(rack_name("").is_err() && rack_name("rack 1").is_err());
        assert!(interface_name("can0").is_ok() && interface_name("can/0").is_err());
        assert!(unlock_code("s3cret-Code").is_ok());
        assert!(unlock_code("12345").is_err() && unlock_code("123456").is_err());
        assert!(unlock_code("has space").is_err());
        assert_eq!(choices(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }
}
