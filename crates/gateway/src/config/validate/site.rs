//! `[ems]`, `[dry_contact]`, `[metrics]` and `[uplink]`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use bmslink_proto::TerminalId;
use toml::Spanned;

use super::super::checks;
use super::super::file::{ContactBackend, FileDryContact, FileEms, FileMetrics, FileUplink, Key};
use super::super::model::{
    ActiveLevel, CommandLine, DryContact, EmsConfig, EmsWrites, RackConfig, UnlockCode,
    UplinkConfig,
};
use super::super::network::IpNetwork;
use super::super::values::Timeout;
use super::{duration_setting, ms, span_of, Checker, Setting};

/// Time between two uploads of a rack, unless the file says otherwise.
const DEFAULT_UPLINK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest wait between two connection attempts of the uplink, unless the file says otherwise
/// (`UplinkOptions::default`'s).
const DEFAULT_UPLINK_RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// The EMS server's default listen address: unprivileged, this machine only.
const DEFAULT_EMS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5020);

impl Checker<'_> {
    pub(super) fn ems(&mut self, ems: &FileEms) -> EmsConfig {
        let listen = self.listen(&ems.listen, "ems.listen", DEFAULT_EMS_LISTEN);
        let unit_id = Setting::of(&ems.unit_id, 1);
        let unit_id = self.integer_in(&unit_id, "ems.unit_id", (1, 247));
        let allow = self.networks(&ems.allow, "ems.allow", &["127.0.0.0/8", "::1/128"]);
        if allow.is_empty() {
            let message = "no client could connect: list at least one network \
                           (\"0.0.0.0/0\" and \"::/0\" accept any)";
            self.errors
                .report(span_of(&ems.allow), "ems.allow", message);
        }
        let writes = self.ems_writes(ems, &allow);
        EmsConfig {
            listen,
            unit_id: u8::try_from(unit_id).unwrap_or(1),
            allow,
            writes,
            heartbeat_timeout: self.timeout_in(
                &ems.heartbeat_timeout,
                Timeout::Off,
                "ems.heartbeat_timeout",
                (ms(1000), ms(600_000)),
            ),
        }
    }

    fn listen(&mut self, key_value: &Key<String>, key: &str, default: SocketAddr) -> SocketAddr {
        let Some(text) = key_value else {
            return default;
        };
        checks::listen_address(text.get_ref()).unwrap_or_else(|message| {
            self.errors.report(Some(text.span()), key, message);
            default
        })
    }

    /// The networks listed (or `default`); invalid ones are reported and left out.
    fn networks(
        &mut self,
        list: &Key<Vec<Spanned<String>>>,
        key: &str,
        default: &[&str],
    ) -> Vec<IpNetwork> {
        let Some(list) = list else {
            return default
                .iter()
                .filter_map(|text| text.parse().ok())
                .collect();
        };
        let mut networks = Vec::new();
        for (index, text) in list.get_ref().iter().enumerate() {
            match text.get_ref().trim().parse::<IpNetwork>() {
                Ok(network) => networks.push(network),
                Err(error) => {
                    let key = format!("{key}[{index}]");
                    self.errors
                        .report(Some(text.span()), key, error.to_string());
                }
            }
        }
        networks
    }

    fn ems_writes(&mut self, ems: &FileEms, allow: &[IpNetwork]) -> EmsWrites {
        let write_allow = self.networks(&ems.write_allow, "ems.write_allow", &[]);
        self.writers_can_connect(ems, allow);
        let code = self.unlock_code(&ems.unlock_code);
        let enabled = Setting::of(&ems.writes_enabled, false);
        if !enabled.value {
            return EmsWrites::Disabled;
        }
        if write_allow.is_empty() {
            let message = "writes_enabled = true needs write_allow: the networks whose \
                           clients may write";
            let span = span_of(&ems.write_allow).or(enabled.span.clone());
            self.errors.report(span, "ems.write_allow", message);
        }
        let Some(unlock_code) = code else {
            if ems.unlock_code.is_none() {
                let message = "writes_enabled = true needs an unlock_code (6 to 32 \
                               characters; there is no default)";
                self.errors.report(enabled.span, "ems.unlock_code", message);
            }
            return EmsWrites::Disabled;
        };
        EmsWrites::Enabled {
            allow: write_allow,
            unlock_code,
        }
    }

    /// Every `write_allow` network lies inside an `allow` network (else its clients could
    /// never connect to write).
    fn writers_can_connect(&mut self, ems: &FileEms, allow: &[IpNetwork]) {
        let Some(list) = &ems.write_allow else {
            return;
        };
        for (index, text) in list.get_ref().iter().enumerate() {
            let Ok(network) = text.get_ref().trim().parse::<IpNetwork>() else {
                continue;
            };
            if !allow.iter().any(|outer| outer.contains_network(&network)) {
                let message = format!(
                    "{network} is not inside any ems.allow network, so its clients cannot connect"
                );
                let key = format!("ems.write_allow[{index}]");
                self.errors.report(Some(text.span()), key, message);
            }
        }
    }

    fn unlock_code(&mut self, code: &Key<String>) -> Option<UnlockCode> {
        let code = code.as_ref()?;
        match checks::unlock_code(code.get_ref()) {
            Ok(()) => Some(UnlockCode(code.get_ref().clone())),
            Err(message) => {
                self.errors
                    .report(Some(code.span()), "ems.unlock_code", message);
                None
            }
        }
    }

    pub(super) fn dry_contact(&mut self, contact: &FileDryContact) -> DryContact {
        let backend = Setting::of(&contact.backend, ContactBackend::None);
        self.foreign_contact_keys(contact, backend.value);
        match backend.value {
            ContactBackend::None => DryContact::None,
            ContactBackend::Gpio => self.gpio_contact(contact, &backend),
            ContactBackend::Command => DryContact::Command {
                open: self.command_line(&contact.open, "open", &backend),
                close: self.command_line(&contact.close, "close", &backend),
            },
        }
    }

    /// Reports keys of a backend other than the chosen one.
    fn foreign_contact_keys(&mut self, contact: &FileDryContact, backend: ContactBackend) {
        let keys = [
            ("chip", span_of(&contact.chip), ContactBackend::Gpio),
            ("line", span_of(&contact.line), ContactBackend::Gpio),
            (
                "active_level",
                span_of(&contact.active_level),
                ContactBackend::Gpio,
            ),
            ("open", span_of(&contact.open), ContactBackend::Command),
            ("close", span_of(&contact.close), ContactBackend::Command),
        ];
        for (name, span, owner) in keys {
            if span.is_some() && owner != backend {
                let owner_name = if owner == ContactBackend::Gpio {
                    "gpio"
                } else {
                    "command"
                };
                let message = format!("is only used with backend = \"{owner_name}\"");
                self.errors
                    .report(span, format!("dry_contact.{name}"), message);
            }
        }
    }

    fn gpio_contact(
        &mut self,
        contact: &FileDryContact,
        backend: &Setting<ContactBackend>,
    ) -> DryContact {
        let chip = match &contact.chip {
            Some(chip) if chip.get_ref().starts_with('/') => chip.get_ref().clone(),
            Some(chip) => {
                let message = format!(
                    "{:?} is not a device path such as \"/dev/gpiochip0\"",
                    chip.get_ref()
                );
                self.errors
                    .report(Some(chip.span()), "dry_contact.chip", message);
                String::new()
            }
            None => {
                let message = "backend = \"gpio\" needs chip = \"/dev/gpiochip0\" (its device)";
                self.errors
                    .report(backend.span.clone(), "dry_contact.chip", message);
                String::new()
            }
        };
        let line = match &contact.line {
            Some(line) => self.integer_in(&Setting::present(line), "dry_contact.line", (0, 1023)),
            None => {
                let message = "backend = \"gpio\" needs line (the line offset on the chip)";
                self.errors
                    .report(backend.span.clone(), "dry_contact.line", message);
                0
            }
        };
        DryContact::Gpio {
            chip: PathBuf::from(chip),
            line: u32::try_from(line).unwrap_or(0),
            active_level: Setting::of(&contact.active_level, ActiveLevel::High).value,
        }
    }

    fn command_line(
        &mut self,
        words: &Key<Vec<String>>,
        name: &str,
        backend: &Setting<ContactBackend>,
    ) -> CommandLine {
        let key = format!("dry_contact.{name}");
        let Some(words) = words else {
            let message =
                format!("backend = \"command\" needs {name} = [\"program\", \"arg\", ...]");
            self.errors.report(backend.span.clone(), key, message);
            return CommandLine {
                program: String::new(),
                args: Vec::new(),
            };
        };
        match words.get_ref().split_first() {
            Some((program, args)) if !program.trim().is_empty() => CommandLine {
                program: program.clone(),
                args: args.to_vec(),
            },
            _ => {
                let message = "needs a program: [\"program\", \"arg\", ...]";
                self.errors.report(Some(words.span()), key, message);
                CommandLine {
                    program: String::new(),
                    args: Vec::new(),
                }
            }
        }
    }

    pub(super) fn metrics(
        &mut self,
        metrics: Option<&FileMetrics>,
        ems: &EmsConfig,
    ) -> Option<SocketAddr> {
        let metrics = metrics?;
        let text = metrics.listen.get_ref();
        let address = match checks::listen_address(text) {
            Ok(address) => address,
            Err(message) => {
                self.errors
                    .report(Some(metrics.listen.span()), "metrics.listen", message);
                return None;
            }
        };
        if checks::listeners_clash(address, ems.listen) {
            let message = format!("{address} takes the port of ems.listen ({})", ems.listen);
            self.errors
                .report(Some(metrics.listen.span()), "metrics.listen", message);
        }
        Some(address)
    }

    pub(super) fn uplink(
        &mut self,
        uplink: &Spanned<FileUplink>,
        racks: &[RackConfig],
    ) -> UplinkConfig {
        let file = uplink.get_ref();
        if let Err(message) = checks::host_port(file.server.get_ref()) {
            self.errors
                .report(Some(file.server.span()), "uplink.server", message);
        }
        let by_rack = self.terminal_numbers(file, racks);
        let terminals = racks
            .iter()
            .map(|rack| self.rack_terminal(&by_rack, rack, file))
            .collect();
        let interval = duration_setting(&file.interval, DEFAULT_UPLINK_INTERVAL);
        let reconnect_max = duration_setting(&file.reconnect_max, DEFAULT_UPLINK_RECONNECT_MAX);
        let (second, hour) = (ms(1000), ms(3_600_000));
        UplinkConfig {
            server: file.server.get_ref().clone(),
            terminals,
            interval: self.duration_in(&interval, "uplink.interval", second, hour),
            backlog_dir: self.backlog_dir(&file.backlog_dir),
            reconnect_max: self.duration_in(&reconnect_max, "uplink.reconnect_max", second, hour),
        }
    }

    /// The terminal number given to each rack name, checked: a known rack, 1..=2^24-1,
    /// unique.
    fn terminal_numbers(
        &mut self,
        file: &FileUplink,
        racks: &[RackConfig],
    ) -> HashMap<String, u32> {
        let mut by_rack = HashMap::new();
        let mut owners: HashMap<i64, &str> = HashMap::new();
        for (name, number) in file.terminals.get_ref() {
            let key = format!("uplink.terminals.{}", name.get_ref());
            if !racks.iter().any(|rack| &rack.name == name.get_ref()) {
                let message = format!("no rack is named {:?}", name.get_ref());
                self.errors.report(Some(name.span()), &key, message);
            }
            let max = i64::from(TerminalId::MAX_NUMBER);
            let value = self.integer_in(&Setting::present(number), &key, (1, max));
            if let Some(owner) = owners.insert(value, name.get_ref()) {
                let message = format!("terminal {value} is also that of {owner:?}");
                self.errors.report(Some(number.span()), &key, message);
            }
            by_rack.insert(name.get_ref().clone(), u32::try_from(value).unwrap_or(0));
        }
        by_rack
    }

    fn rack_terminal(
        &mut self,
        by_rack: &HashMap<String, u32>,
        rack: &RackConfig,
        file: &FileUplink,
    ) -> TerminalId {
        let number = by_rack.get(&rack.name).copied().unwrap_or_else(|| {
            let message = format!("rack {:?} has no terminal number", rack.name);
            self.errors
                .report(Some(file.terminals.span()), "uplink.terminals", message);
            0
        });
        TerminalId::new(0, number).unwrap_or_default()
    }

    fn backlog_dir(&mut self, dir: &Key<String>) -> Option<PathBuf> {
        let dir = dir.as_ref()?;
        if dir.get_ref().trim().is_empty() {
            self.errors
                .report(Some(dir.span()), "uplink.backlog_dir", "is empty");
        }
        Some(PathBuf::from(dir.get_ref()))
    }
}
