#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn errors(text: &str) -> Vec<String> {
    match load("platform.toml", text) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_embedded_default_is_an_empty_file() {
    let default = load("default", DEFAULT_CONFIG).unwrap();
    assert_eq!(default, load("empty", "").unwrap());
    assert_eq!(default.devices.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(default.devices.registration, RegistrationPolicy::Open);
    assert_eq!(
        default.database,
        DatabaseConfig::Sqlite {
            path: PathBuf::from("bmslink-data/platform.sqlite")
        }
    );
    assert_eq!(default.retention.raw, Duration::from_secs(30 * 86_400));
    assert_eq!(default.http.command_timeout, Duration::from_secs(30));
    assert_eq!(default.alarms.cell_spread_mv, 300);
}

#[test]
fn every_error_is_located_and_named() {
    let text = "[devices]\nidle_timeout = \"2s\"\nregistration = \"maybe\"\n\
                [retention]\nraw = \"60d\"\nminute = \"30d\"\n\
                [http]\nlisten = \"127.0.0.1:9100\"\n[alarms]\ncell_spread_mv = 5\n";
    let found = errors(text);
    assert_eq!(
        found,
        [
            "platform.toml:2:16: devices.idle_timeout: 2s is outside 10s..=1h",
            "platform.toml:3:16: devices.registration: \"maybe\" is not \"open\" or \"approval\"",
            "platform.toml:6:10: retention.minute: 30d is shorter than retention.raw (60d)",
            "platform.toml:8:10: http.listen: 127.0.0.1:9100 is also devices.listen",
            "platform.toml:10:18: alarms.cell_spread_mv: 5 is outside 10..=2000",
        ]
    );
}

#[test]
fn postgres_needs_a_url_and_hides_it() {
    let found = errors("[database]\nbackend = \"postgres\"\n");
    assert_eq!(
        found,
        ["platform.toml:2:11: database.url: backend = \"postgres\" needs a url"]
    );
    let config = load(
        "p",
        "[database]\nbackend = \"postgres\"\nurl = \"postgres://u:secret@db/bmslink\"\n",
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("secret"));
    let found = errors("[database]\nurl = \"postgres://x\"\n");
    assert!(found[0].contains("database.url: url is for backend = \"postgres\""));
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let found = errors("[devices]\nlisten_on = \"0.0.0.0:1\"\n");
    assert!(found[0].starts_with("platform.toml:2:1: "), "{found:?}");
    assert!(found[0].contains("listen_on"), "{found:?}");
}

#[test]
fn process_timeout_defaults_to_a_minute_and_is_checked() {
    let default = load("empty", "").unwrap();
    assert_eq!(default.cluster.process_timeout, Duration::from_secs(60));
    assert_eq!(
        default.cluster.heartbeat_interval(),
        Duration::from_secs(10)
    );
    let short = load("p", "[cluster]\nprocess_timeout = \"3s\"\n").unwrap();
    assert_eq!(short.cluster.process_timeout, Duration::from_secs(3));
    let found = errors("[cluster]\nprocess_timeout = \"1s\"\n");
    assert_eq!(
        found,
        ["platform.toml:2:19: cluster.process_timeout: 1s is outside 3s..=1h"]
    );
}
