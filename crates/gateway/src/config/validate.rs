//! From the file's structures to a [`GatewayConfig`]: defaults applied, every range and
//! cross-field rule checked, every failure reported with its span (see the module docs of
//! `config` for the rules). A section whose values are invalid still yields a value, so that
//! the sections after it are checked too; the result is an error whenever anything was
//! reported.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use bmslink_proto::can::Profile;
use toml::Spanned;

use super::checks::{self, choices, CAN_BITRATES, STANDARD_BAUDS};
use super::error::{Collector, ConfigErrors};
use bmslink_proto::message::PASSWORD_LEN;

use super::file::{FileConfig, FileLink, FileRack, Key};
use super::model::{GatewayConfig, PollingConfig, RackConfig, RackLink};
use super::values::{show, HumanDuration, Timeout};

mod inverter;
mod site;

/// Byte range of a value in the file.
pub(super) type Span = Range<usize>;

/// A setting with its default applied; `span` is `None` when the file does not set it.
#[derive(Clone, Debug)]
pub(super) struct Setting<T> {
    pub value: T,
    pub span: Option<Span>,
}

impl<T: Clone> Setting<T> {
    /// The file's value, or `default`.
    pub(super) fn of(key: &Key<T>, default: T) -> Setting<T> {
        match key {
            Some(spanned) => Setting {
                value: spanned.get_ref().clone(),
                span: Some(spanned.span()),
            },
            None => Setting {
                value: default,
                span: None,
            },
        }
    }

    /// A value that is in the file.
    pub(super) fn present(spanned: &Spanned<T>) -> Setting<T> {
        Setting {
            value: spanned.get_ref().clone(),
            span: Some(spanned.span()),
        }
    }

    /// " (the default)" when the file does not set it, for messages.
    pub(super) fn default_note(&self) -> &'static str {
        if self.span.is_some() {
            ""
        } else {
            " (the default)"
        }
    }
}

/// A duration setting, or `default`.
pub(super) fn duration_setting(key: &Key<HumanDuration>, default: Duration) -> Setting<Duration> {
    match key {
        Some(spanned) => Setting {
            value: spanned.get_ref().0,
            span: Some(spanned.span()),
        },
        None => Setting {
            value: default,
            span: None,
        },
    }
}

/// The span of a present key.
pub(super) fn span_of<T>(key: &Key<T>) -> Option<Span> {
    key.as_ref().map(Spanned::span)
}

/// Checks a parsed file and builds the configuration.
pub(super) fn validate(
    file: &str,
    text: &str,
    parsed: &FileConfig,
) -> Result<GatewayConfig, ConfigErrors> {
    let mut check = Checker {
        errors: Collector::new(file, text),
        endpoints: HashMap::new(),
    };
    let config = check.gateway(parsed);
    check.errors.finish(config)
}

/// Reports into a [`Collector`]; remembers the links seen so far to find shared ones.
pub(super) struct Checker<'a> {
    pub(super) errors: Collector<'a>,
    /// Each serial device or TCP address in use, with the key that uses it first.
    endpoints: HashMap<String, String>,
}

impl Checker<'_> {
    fn gateway(&mut self, parsed: &FileConfig) -> GatewayConfig {
        let polling = self.polling(parsed);
        let racks = self.racks(&parsed.racks);
        let inverter = self.inverter(&parsed.inverter);
        let ems = self.ems(&parsed.ems);
        let metrics_listen = self.metrics(parsed.metrics.as_ref(), &ems);
        let uplink = parsed
            .uplink
            .as_ref()
            .map(|uplink| self.uplink(uplink, &racks));
        GatewayConfig {
            log_level: Setting::of(&parsed.log_level, Default::default()).value,
            polling,
            racks,
            inverter,
            recovery_hold: self.recovery_hold(&parsed.failsafe.recovery_hold),
            ems,
            dry_contact: self.dry_contact(&parsed.dry_contact),
            metrics_listen,
            uplink,
        }
    }

    /// Reports `setting` unless it lies in `min..=max`; returns its value either way.
    pub(super) fn duration_in(
        &mut self,
        setting: &Setting<Duration>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Duration {
        if !(min..=max).contains(&setting.value) {
            let message = format!(
                "{} is outside {}..={}",
                show(setting.value),
                show(min),
                show(max)
            );
            self.errors.report(setting.span.clone(), key, message);
        }
        setting.value
    }

    /// A timeout that may be "off", checked against `min..=max` when on.
    pub(super) fn timeout_in(
        &mut self,
        key_value: &Key<Timeout>,
        default: Timeout,
        key: &str,
        (min, max): (Duration, Duration),
    ) -> Option<Duration> {
        let setting = Setting::of(key_value, default);
        let duration = setting.value.duration()?;
        let as_duration = Setting {
            value: duration,
            span: setting.span,
        };
        Some(self.duration_in(&as_duration, key, min, max))
    }

    /// Reports `setting` unless it lies in `min..=max`; returns its value either way.
    pub(super) fn integer_in(
        &mut self,
        setting: &Setting<i64>,
        key: &str,
        (min, max): (i64, i64),
    ) -> i64 {
        if !(min..=max).contains(&setting.value) {
            let message = format!("{} is outside {min}..={max}", setting.value);
            self.errors.report(setting.span.clone(), key, message);
        }
        setting.value
    }

    /// Records that `key` uses `endpoint` (a device path or `tcp://` address); reports a
    /// second user.
    pub(super) fn claim_endpoint(&mut self, endpoint: String, key: &str, span: Span) {
        if let Some(first) = self.endpoints.get(&endpoint) {
            let message = format!("{endpoint} is already used by {first}");
            self.errors.report(Some(span), key, message);
        } else {
            self.endpoints.insert(endpoint, key.to_string());
        }
    }

    fn polling(&mut self, parsed: &FileConfig) -> PollingConfig {
        let poll = duration_setting(&parsed.poll_interval, Duration::from_millis(500));
        let reply = duration_setting(&parsed.reply_timeout, Duration::from_millis(500));
        let stale = duration_setting(&parsed.stale_timeout, Duration::from_secs(5));
        let poll_interval = self.duration_in(&poll, "poll_interval", ms(100), ms(1000));
        let reply_timeout = self.duration_in(&reply, "reply_timeout", ms(1), ms(5000));
        let stale_timeout = self.duration_in(&stale, "stale_timeout", ms(200), ms(60_000));
        self.reply_within_poll(&reply, &poll);
        self.stale_after_two_polls(&stale, &poll);
        let retries = Setting::of(&parsed.retries, 2);
        let offline_after = Setting::of(&parsed.offline_after, 3);
        PollingConfig {
            poll_interval,
            reply_timeout,
            retries: u8::try_from(self.integer_in(&retries, "retries", (0, 10))).unwrap_or(0),
            offline_after: u32::try_from(self.integer_in(
                &offline_after,
                "offline_after",
                (1, 100),
            ))
            .unwrap_or(1),
            stale_timeout,
        }
    }

    /// `reply_timeout <= poll_interval`, reported at whichever of the two the file sets.
    fn reply_within_poll(&mut self, reply: &Setting<Duration>, poll: &Setting<Duration>) {
        if reply.value <= poll.value {
            return;
        }
        let message = format!(
            "reply_timeout {}{} is longer than poll_interval {}{}: a slow reply would stretch \
             every poll period to the timeout",
            show(reply.value),
            reply.default_note(),
            show(poll.value),
            poll.default_note()
        );
        let (key, span) = located(("reply_timeout", reply), ("poll_interval", poll));
        self.errors.report(span, key, message);
    }

    /// `stale_timeout >= 2 x poll_interval`, reported at whichever of the two the file sets.
    fn stale_after_two_polls(&mut self, stale: &Setting<Duration>, poll: &Setting<Duration>) {
        let two_polls = poll.value.saturating_mul(2);
        if stale.value >= two_polls {
            return;
        }
        let message = format!(
            "stale_timeout {}{} is shorter than 2 x poll_interval ({}): one missed poll would \
             drop a rack",
            show(stale.value),
            stale.default_note(),
            show(two_polls)
        );
        let (key, span) = located(("stale_timeout", stale), ("poll_interval", poll));
        self.errors.report(span, key, message);
    }

    fn racks(&mut self, racks: &Key<Vec<FileRack>>) -> Vec<RackConfig> {
        let listed = racks.as_ref().map_or(&[][..], |racks| racks.get_ref());
        if listed.is_empty() {
            let message = "no rack is configured: add a [[racks]] table with a name and a link";
            self.errors.report(span_of(racks), "racks", message);
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut configs = Vec::with_capacity(listed.len());
        for (index, rack) in listed.iter().enumerate() {
            self.rack_name(rack, index, &mut names);
            configs.push(RackConfig {
                name: rack.name.get_ref().clone(),
                link: self.rack_link(&rack.link, &format!("racks[{index}].link")),
                password: self.rack_password(&rack.password, index),
            });
        }
        configs
    }

    fn rack_password(
        &mut self,
        password: &Key<String>,
        index: usize,
    ) -> Option<[u8; PASSWORD_LEN]> {
        let password = password.as_ref()?;
        let bytes = crate::rack::password_bytes(password.get_ref());
        if bytes.is_none() {
            let message =
                format!("the password must be at most {PASSWORD_LEN} printable ASCII characters");
            self.errors.report(
                Some(password.span()),
                format!("racks[{index}].password"),
                message,
            );
        }
        bytes
    }

    fn rack_name<'r>(
        &mut self,
        rack: &'r FileRack,
        index: usize,
        names: &mut HashMap<&'r str, usize>,
    ) {
        let name = rack.name.get_ref().as_str();
        let key = format!("racks[{index}].name");
        if let Err(message) = checks::rack_name(name) {
            self.errors.report(Some(rack.name.span()), &key, message);
        }
        if let Some(first) = names.get(name) {
            let message = format!("{name:?} is also the name of racks[{first}]");
            self.errors.report(Some(rack.name.span()), &key, message);
        } else {
            names.insert(name, index);
        }
    }

    fn rack_link(&mut self, link: &FileLink, key: &str) -> RackLink {
        let port = link.port.get_ref().trim();
        let port_key = format!("{key}.port");
        if let Some(address) = port.strip_prefix("tcp://") {
            self.tcp_rack_link(link, address, key)
        } else if port.contains("://") || port.is_empty() {
            let message =
                format!("{port:?}: write a serial device (\"/dev/ttyUSB0\") or tcp://host:port");
            self.errors
                .report(Some(link.port.span()), port_key, message);
            RackLink::Tcp {
                address: port.to_string(),
            }
        } else {
            self.claim_endpoint(port.to_string(), &port_key, link.port.span());
            RackLink::Serial {
                path: PathBuf::from(port),
                baud: self.baud(&link.baud, &format!("{key}.baud")),
            }
        }
    }

    fn tcp_rack_link(&mut self, link: &FileLink, address: &str, key: &str) -> RackLink {
        let port_key = format!("{key}.port");
        if let Err(message) = checks::host_port(address) {
            self.errors
                .report(Some(link.port.span()), &port_key, message);
        }
        if let Some(baud) = &link.baud {
            let message = "applies to serial ports only; set the converter's serial side \
                           (115200 8N1) in its own setup";
            self.errors
                .report(Some(baud.span()), format!("{key}.baud"), message);
        }
        let endpoint = format!("tcp://{}", address.to_ascii_lowercase());
        self.claim_endpoint(endpoint, &port_key, link.port.span());
        RackLink::Tcp {
            address: address.to_string(),
        }
    }

    fn baud(&mut self, baud: &Key<i64>, key: &str) -> u32 {
        let setting = Setting::of(baud, 115_200);
        if !STANDARD_BAUDS.contains(&setting.value) {
            let message = format!(
                "{} is not a standard baud rate (1200..921600: {})",
                setting.value,
                STANDARD_BAUDS.map(|baud| baud.to_string()).join(", ")
            );
            self.errors.report(setting.span, key, message);
        }
        u32::try_from(setting.value).unwrap_or(115_200)
    }

    fn recovery_hold(&mut self, key: &Key<HumanDuration>) -> Duration {
        let hold = duration_setting(key, Duration::from_secs(10));
        self.duration_in(&hold, "failsafe.recovery_hold", ms(1000), ms(600_000))
    }
}

/// Checks a CAN bit rate.
pub(super) fn bitrate_message(bitrate: i64) -> Option<String> {
    (!CAN_BITRATES.contains(&bitrate)).then(|| {
        format!(
            "{bitrate} is not a CAN bit rate ({}; inverters use 500000)",
            CAN_BITRATES.map(|rate| rate.to_string()).join(", ")
        )
    })
}

/// The profile named `name`, or a message listing the names.
pub(super) fn profile_named(name: &str) -> Result<Profile, String> {
    Profile::from_name(name).ok_or_else(|| {
        let names = Profile::ALL.map(Profile::name);
        format!("{name:?} is not a profile ({})", choices(&names))
    })
}

/// Where to report a rule between two settings: at the first if the file sets it, else at the
/// second.
fn located<'k, T>(
    first: (&'k str, &Setting<T>),
    second: (&'k str, &Setting<T>),
) -> (&'k str, Option<Span>) {
    if first.1.span.is_some() || second.1.span.is_none() {
        (first.0, first.1.span.clone())
    } else {
        (second.0, second.1.span.clone())
    }
}

/// `millis` milliseconds.
pub(super) const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}
