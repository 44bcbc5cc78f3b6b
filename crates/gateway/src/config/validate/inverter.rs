//! `[inverter]` and `[inverter.can]`.

use std::path::PathBuf;
use std::time::Duration;

use bmslink_proto::can::Profile;

use super::super::checks;
use super::super::file::{CanTransport, FileCan, FileInverter};
use super::super::model::{CanLink, InverterConfig, SlcanPort};
use super::super::values::Timeout;
use super::{bitrate_message, duration_setting, ms, profile_named, span_of, Checker, Setting};

impl Checker<'_> {
    pub(super) fn inverter(&mut self, inverter: &FileInverter) -> InverterConfig {
        let profile = self.profile(inverter);
        let mut options = profile.default_options();
        options.never_zero = Setting::of(&inverter.never_zero, false).value;
        let send = duration_setting(&inverter.send_interval, Duration::from_secs(1));
        let keepalive_timeout = self.timeout_in(
            &inverter.keepalive_timeout,
            Timeout::After(Duration::from_secs(60)),
            "inverter.keepalive_timeout",
            (ms(2000), ms(600_000)),
        );
        let silence_is_unsafe = Setting::of(&inverter.silence_is_unsafe, false);
        if silence_is_unsafe.value && keepalive_timeout.is_none() {
            let message = "true has no effect while keepalive_timeout is \"off\"";
            self.errors.report(
                silence_is_unsafe.span,
                "inverter.silence_is_unsafe",
                message,
            );
        }
        InverterConfig {
            profile,
            options,
            can: self.can_link(&inverter.can),
            bitrate: self.bitrate(&inverter.can),
            send_interval: self.duration_in(&send, "inverter.send_interval", ms(200), ms(5000)),
            keepalive_timeout,
            silence_is_unsafe: silence_is_unsafe.value,
        }
    }

    fn profile(&mut self, inverter: &FileInverter) -> Profile {
        let name = Setting::of(&inverter.profile, Profile::PylontechV12.name().to_string());
        profile_named(&name.value).unwrap_or_else(|message| {
            self.errors.report(name.span, "inverter.profile", message);
            Profile::PylontechV12
        })
    }

    fn can_link(&mut self, can: &FileCan) -> CanLink {
        match Setting::of(&can.transport, CanTransport::Slcan).value {
            CanTransport::Slcan => self.slcan(can),
            CanTransport::Socketcan => self.socketcan(can),
        }
    }

    fn slcan(&mut self, can: &FileCan) -> CanLink {
        if let Some(interface) = &can.interface {
            let message = "is only used with transport = \"socketcan\"";
            self.errors
                .report(Some(interface.span()), "inverter.can.interface", message);
        }
        let port = Setting::of(&can.port, "/dev/ttyACM0".to_string());
        let text = port.value.trim();
        let key = "inverter.can.port";
        let span = port.span.clone().unwrap_or_default();
        if let Some(address) = text.strip_prefix("tcp://") {
            if let Err(message) = checks::host_port(address) {
                self.errors.report(port.span.clone(), key, message);
            }
            let endpoint = format!("tcp://{}", address.to_ascii_lowercase());
            self.claim_endpoint(endpoint, key, span);
            return CanLink::Slcan(SlcanPort::Tcp(address.to_string()));
        }
        if text.contains("://") || text.is_empty() {
            let message =
                format!("{text:?}: write a serial device (\"/dev/ttyACM0\") or tcp://host:port");
            self.errors.report(port.span.clone(), key, message);
        }
        self.claim_endpoint(text.to_string(), key, span);
        CanLink::Slcan(SlcanPort::Serial(PathBuf::from(text)))
    }

    fn socketcan(&mut self, can: &FileCan) -> CanLink {
        if let Some(port) = &can.port {
            let message = "is only used with transport = \"slcan\"";
            self.errors
                .report(Some(port.span()), "inverter.can.port", message);
        }
        let Some(interface) = &can.interface else {
            let message = "transport = \"socketcan\" needs interface = \"can0\" (its name)";
            self.errors
                .report(span_of(&can.transport), "inverter.can.interface", message);
            return CanLink::SocketCan {
                interface: String::new(),
            };
        };
        if let Err(message) = checks::interface_name(interface.get_ref()) {
            self.errors
                .report(Some(interface.span()), "inverter.can.interface", message);
        }
        CanLink::SocketCan {
            interface: interface.get_ref().clone(),
        }
    }

    fn bitrate(&mut self, can: &FileCan) -> u32 {
        let bitrate = Setting::of(&can.bitrate, 500_000);
        if let Some(message) = bitrate_message(bitrate.value) {
            self.errors
                .report(bitrate.span, "inverter.can.bitrate", message);
        }
        u32::try_from(bitrate.value).unwrap_or(500_000)
    }
}
