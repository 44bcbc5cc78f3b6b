//! Simulated packs as `bmslink sim` and `bmslink demo` make them: a [`PackSpec`] (chemistry,
//! cells, capacity, password, ...) builds pack N's [`VirtualBms`] with its own seed and terminal
//! number, and [`serve_on_tcp`] puts one on a loopback TCP port as a serial-to-Ethernet
//! converter would.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bmslink_core::chemistry::Chemistry;
use bmslink_core::settings::Settings;
use bmslink_proto::TerminalId;
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::profile::LoadProfile;
use bmslink_sim::serve::{self, Faults, SharedBms};

/// The longest parameter-change password (0xB2) a BMS keeps.
pub const MAX_PASSWORD_LEN: usize = 10;

/// What every pack of a set has in common; pack N differs by its seed and terminal number.
#[derive(Clone, Debug)]
pub struct PackSpec {
    /// Cell chemistry.
    pub chemistry: Chemistry,
    /// Cells in series.
    pub cells: u8,
    /// Capacity, Ah.
    pub capacity_ah: f64,
    /// SOC at the start, 0..1.
    pub initial_soc: f64,
    /// Ambient temperature, degC.
    pub ambient_c: f64,
    /// Seed of pack 0's cell-to-cell spread; pack N uses `seed + N`.
    pub seed: u64,
    /// The BMSes' parameter-change password (at most [`MAX_PASSWORD_LEN`] ASCII bytes).
    pub password: String,
    /// Terminal number of pack 0's data box; pack N has `terminal_base + N`.
    pub terminal_base: u32,
    /// Keep reporting the values of the start (the "stale data" fault).
    pub stale: bool,
}

impl PackSpec {
    /// Pack `index`'s BMS on `profile`, stepped once so its first reply already carries the
    /// load.
    pub fn build(&self, index: usize, profile: &LoadProfile) -> Result<VirtualBms> {
        let mut pack = PackConfig::new(
            self.chemistry,
            usize::from(self.cells),
            self.capacity_ah,
            self.seed + index as u64,
        );
        pack.initial_soc = self.initial_soc;
        pack.ambient_c = self.ambient_c;
        let mut settings =
            Settings::preset(self.chemistry, self.cells, self.capacity_ah.round() as u32);
        settings.password = self.password_bytes()?;
        let terminal = u32::try_from(index)
            .ok()
            .and_then(|index| self.terminal_base.checked_add(index))
            .and_then(|number| TerminalId::new(0, number))
            .context("the terminal base + the pack count exceeds the 24-bit terminal number")?;
        let mut config = BmsConfig::new(pack);
        config.settings = Some(settings);
        config.profile = profile.clone();
        config.terminal = terminal;
        let mut bms = VirtualBms::new(config)?;
        bms.step(Duration::from_secs(1));
        bms.set_stale(self.stale);
        Ok(bms)
    }

    /// `count` packs, shared with the tasks that serve and step them.
    pub fn build_all(&self, count: usize, profile: &LoadProfile) -> Result<Vec<SharedBms>> {
        (0..count)
            .map(|index| {
                self.build(index, profile)
                    .map(|bms| SharedBms::new(bms.into()))
            })
            .collect()
    }

    /// The password as the BMS stores it: NUL padded.
    fn password_bytes(&self) -> Result<[u8; MAX_PASSWORD_LEN]> {
        let text = self.password.as_bytes();
        if text.len() > MAX_PASSWORD_LEN || !self.password.is_ascii() {
            bail!("the BMS password must be at most {MAX_PASSWORD_LEN} ASCII characters");
        }
        let mut bytes = [0; MAX_PASSWORD_LEN];
        bytes[..text.len()].copy_from_slice(text);
        Ok(bytes)
    }
}

/// Pack `index`'s address when the first pack listens on `first`: the next ports in turn, or
/// port 0 (any free port) for every pack when `first` has port 0.
pub fn pack_address(first: SocketAddr, index: usize) -> Result<SocketAddr> {
    let port = match first.port() {
        0 => 0,
        port => u16::try_from(usize::from(port) + index).context("port number above 65535")?,
    };
    Ok(SocketAddr::new(first.ip(), port))
}

/// Listens on `address` and serves `bms` there, one controller connection at a time, in a
/// task of its own; returns the address bound (the real port when `address` has port 0).
pub async fn serve_on_tcp(
    address: SocketAddr,
    bms: SharedBms,
    faults: Faults,
    seed: u64,
) -> Result<SocketAddr> {
    let listener = serve::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve::serve_tcp(listener, bms, faults, seed));
    Ok(bound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec(password: &str) -> PackSpec {
        PackSpec {
            chemistry: Chemistry::Lfp,
            cells: 16,
            capacity_ah: 100.0,
            initial_soc: 0.5,
            ambient_c: 25.0,
            seed: 1,
            password: password.to_string(),
            terminal_base: 1000,
            stale: false,
        }
    }

    #[test]
    fn pack_n_gets_its_own_terminal_number() {
        let profile = LoadProfile::Constant(0.0);
        let bms = spec("123456").build(3, &profile).unwrap();
        assert_eq!(bms.pack().cell_count(), 16);
        let packs = spec("123456").build_all(2, &profile).unwrap();
        assert_eq!(packs.len(), 2);
    }

    #[test]
    fn a_password_too_long_for_the_bms_is_an_error_not_a_panic() {
        let built = spec("12345678901").build(0, &LoadProfile::Constant(0.0));
        let error = built.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("at most 10"), "{error}");
    }

    #[test]
    fn packs_take_consecutive_ports_or_any_free_port() {
        let first: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(pack_address(first, 2).unwrap().port(), 9002);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(pack_address(any, 5).unwrap().port(), 0);
        let last: SocketAddr = "127.0.0.1:65535".parse().unwrap();
        assert!(pack_address(last, 1).is_err());
    }
}
