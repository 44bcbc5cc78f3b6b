//! From the file's structures to a [`PlatformConfig`]: defaults applied, every range and rule
//! checked, every failure reported with its span.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use bmslink_config::{show, Collector, ConfigErrors, HumanDuration, LogLevel, Timeout};
use toml::Spanned;

use super::file::{FileConfig, Key};
use super::model::{
    AlarmThresholds, ClusterConfig, DatabaseConfig, DevicesConfig, HttpConfig, PlatformConfig,
    RegistrationPolicy, Secret,
};
use crate::store::Retention;

const DAY: Duration = Duration::from_secs(86_400);

/// Checks a parsed file.
pub(super) fn validate(
    file: &str,
    text: &str,
    parsed: &FileConfig,
) -> Result<PlatformConfig, ConfigErrors> {
    let mut checks = Checks {
        errors: Collector::new(file, text),
    };
    let data_dir = PathBuf::from(value_or(&parsed.data_dir, "bmslink-data".to_string()));
    let devices = checks.devices(parsed);
    let database = checks.database(parsed, &data_dir);
    let retention = checks.retention(parsed);
    let http = checks.http(parsed);
    let alarms = checks.alarms(parsed);
    let cluster = checks.cluster(parsed);
    if devices.listen == http.listen {
        let span = parsed.http.listen.as_ref().map(Spanned::span);
        let message = format!("{} is also devices.listen", http.listen);
        checks.errors.report(span, "http.listen", message);
    }
    checks.errors.finish(PlatformConfig {
        log_level: value_or(&parsed.log_level, LogLevel::Info),
        data_dir,
        devices,
        database,
        retention,
        http,
        alarms,
        cluster,
    })
}

fn value_or<T: Clone>(key: &Key<T>, default: T) -> T {
    key.as_ref().map_or(default, |k| k.get_ref().clone())
}

struct Checks<'a> {
    errors: Collector<'a>,
}

impl Checks<'_> {
    /// A duration within `range`, or the default (reported, and the default used, if out).
    fn duration(
        &mut self,
        key: &Key<HumanDuration>,
        name: &str,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Duration {
        let Some(spanned) = key else { return default };
        let value = spanned.get_ref().0;
        if range.contains(&value) {
            return value;
        }
        let message = format!(
            "{} is outside {}..={}",
            show(value),
            show(*range.start()),
            show(*range.end())
        );
        self.errors.report(Some(spanned.span()), name, message);
        default
    }

    /// An integer within `range`.
    fn integer(
        &mut self,
        key: &Key<i64>,
        name: &str,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> i64 {
        let Some(spanned) = key else { return default };
        let value = *spanned.get_ref();
        if range.contains(&value) {
            return value;
        }
        let message = format!("{value} is outside {}..={}", range.start(), range.end());
        self.errors.report(Some(spanned.span()), name, message);
        default
    }

    /// An ip:port with a port other than 0.
    fn listen(&mut self, key: &Key<String>, name: &str, default: &str) -> SocketAddr {
        let fallback = default
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let Some(spanned) = key else { return fallback };
        let text = spanned.get_ref();
        match text.parse::<SocketAddr>() {
            Ok(address) if address.port() != 0 => address,
            Ok(_) => {
                let message = format!("{text:?}: port 0 would listen on a random port");
                self.errors.report(Some(spanned.span()), name, message);
                fallback
            }
            Err(_) => {
                let message = format!("{text:?} is not ip:port (e.g. \"0.0.0.0:9100\")");
                self.errors.report(Some(spanned.span()), name, message);
                fallback
            }
        }
    }

    fn devices(&mut self, parsed: &FileConfig) -> DevicesConfig {
        let file = &parsed.devices;
        let registration = match file.registration.as_ref() {
            None => RegistrationPolicy::Open,
            Some(spanned) => match spanned.get_ref().as_str() {
                "open" => RegistrationPolicy::Open,
                "approval" => RegistrationPolicy::Approval,
                other => {
                    let message = format!("{other:?} is not \"open\" or \"approval\"");
                    self.errors
                        .report(Some(spanned.span()), "devices.registration", message);
                    RegistrationPolicy::Open
                }
            },
        };
        DevicesConfig {
            listen: self.listen(&file.listen, "devices.listen", "127.0.0.1:9100"),
            idle_timeout: self.duration(
                &file.idle_timeout,
                "devices.idle_timeout",
                Duration::from_secs(120),
                Duration::from_secs(10)..=Duration::from_secs(3600),
            ),
            registration,
        }
    }

    fn database(&mut self, parsed: &FileConfig, data_dir: &std::path::Path) -> DatabaseConfig {
        let file = &parsed.database;
        let backend = file
            .backend
            .as_ref()
            .map_or("sqlite", |b| b.get_ref().as_str());
        match backend {
            "sqlite" => {
                if let Some(url) = &file.url {
                    let message = "url is for backend = \"postgres\"; SQLite uses path";
                    self.errors
                        .report(Some(url.span()), "database.url", message);
                }
                let path = value_or(&file.path, "platform.sqlite".to_string());
                DatabaseConfig::Sqlite {
                    path: data_dir.join(path),
                }
            }
            "postgres" => {
                if let Some(path) = &file.path {
                    let message = "path is for backend = \"sqlite\"; PostgreSQL uses url";
                    self.errors
                        .report(Some(path.span()), "database.path", message);
                }
                let url = match &file.url {
                    Some(url)
                        if url.get_ref().starts_with("postgres://")
                            || url.get_ref().starts_with("postgresql://") =>
                    {
                        url.get_ref().clone()
                    }
                    Some(url) => {
                        let message = "a PostgreSQL URL starts with postgres:// (e.g. \
                                       \"postgres://user:password@host/db\")";
                        self.errors
                            .report(Some(url.span()), "database.url", message);
                        String::new()
                    }
                    None => {
                        let span = file.backend.as_ref().map(Spanned::span);
                        let message = "backend = \"postgres\" needs a url";
                        self.errors.report(span, "database.url", message);
                        String::new()
                    }
                };
                DatabaseConfig::Postgres { url: Secret(url) }
            }
            other => {
                let span = file.backend.as_ref().map(Spanned::span);
                let message = format!("{other:?} is not \"sqlite\" or \"postgres\"");
                self.errors.report(span, "database.backend", message);
                DatabaseConfig::Sqlite {
                    path: data_dir.join("platform.sqlite"),
                }
            }
        }
    }

    fn retention(&mut self, parsed: &FileConfig) -> Retention {
        let file = &parsed.retention;
        let defaults = Retention::default();
        let raw = self.duration(&file.raw, "retention.raw", defaults.raw, DAY..=DAY * 3650);
        let minute = self.duration(
            &file.minute,
            "retention.minute",
            defaults.minute,
            DAY..=DAY * 18_250,
        );
        if minute < raw {
            let span = file.minute.as_ref().map(Spanned::span);
            let message = format!(
                "{} is shorter than retention.raw ({})",
                show(minute),
                show(raw)
            );
            self.errors.report(span, "retention.minute", message);
        }
        let hour = match file.hour.as_ref().map(|h| (h.get_ref(), h.span())) {
            None | Some((Timeout::Off, _)) => None,
            Some((Timeout::After(hour), span)) => {
                if *hour < minute {
                    let message = format!(
                        "{} is shorter than retention.minute ({})",
                        show(*hour),
                        show(minute)
                    );
                    self.errors.report(Some(span), "retention.hour", message);
                }
                Some(*hour)
            }
        };
        Retention { raw, minute, hour }
    }

    fn http(&mut self, parsed: &FileConfig) -> HttpConfig {
        let file = &parsed.http;
        HttpConfig {
            listen: self.listen(&file.listen, "http.listen", "127.0.0.1:8080"),
            secure_cookies: value_or(&file.secure_cookies, false),
            session_lifetime: self.duration(
                &file.session_lifetime,
                "http.session_lifetime",
                Duration::from_secs(12 * 3600),
                Duration::from_secs(300)..=DAY * 30,
            ),
            command_timeout: self.duration(
                &file.command_timeout,
                "http.command_timeout",
                Duration::from_secs(30),
                Duration::from_secs(1)..=Duration::from_secs(300),
            ),
        }
    }

    fn cluster(&mut self, parsed: &FileConfig) -> ClusterConfig {
        ClusterConfig {
            process_timeout: self.duration(
                &parsed.cluster.process_timeout,
                "cluster.process_timeout",
                Duration::from_secs(60),
                Duration::from_secs(3)..=Duration::from_secs(3600),
            ),
        }
    }

    fn alarms(&mut self, parsed: &FileConfig) -> AlarmThresholds {
        let file = &parsed.alarms;
        let rise = match &file.temperature_rise_c_per_min {
            None => 2.0,
            Some(spanned) if (0.1..=50.0).contains(spanned.get_ref()) => *spanned.get_ref(),
            Some(spanned) => {
                let message = format!("{} is outside 0.1..=50", spanned.get_ref());
                self.errors.report(
                    Some(spanned.span()),
                    "alarms.temperature_rise_c_per_min",
                    message,
                );
                2.0
            }
        };
        let spread = self.integer(
            &file.cell_spread_mv,
            "alarms.cell_spread_mv",
            300,
            10..=2000,
        );
        let soc = self.integer(&file.soc_low_percent, "alarms.soc_low_percent", 10, 0..=90);
        AlarmThresholds {
            offline_after: self.duration(
                &file.offline_after,
                "alarms.offline_after",
                Duration::from_secs(300),
                Duration::from_secs(10)..=DAY,
            ),
            cell_spread_mv: u16::try_from(spread).unwrap_or(300),
            temperature_rise_c_per_min: rise as f32,
            soc_low_percent: u8::try_from(soc).unwrap_or(10),
        }
    }
}
