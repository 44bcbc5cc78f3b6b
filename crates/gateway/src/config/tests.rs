//! Tests of the whole configuration: the embedded default, every validation rule (each with a
//! failing example whose message names its line, column and key), and the conversions into
//! the core's settings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bmslink_core::failsafe::FailsafeConfig;
use bmslink_core::session::{self, SessionConfig};
use bmslink_proto::can::Profile;

use super::*;

/// One rack, for files that test something else.
const RACK: &str = "[[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\" }\n";

fn load_ok(text: &str) -> GatewayConfig {
    load("gateway.toml", text).unwrap_or_else(|errors| panic!("{errors}\n--- in ---\n{text}"))
}

fn error_lines(text: &str) -> Vec<String> {
    match load("gateway.toml", text) {
        Ok(config) => panic!("accepted: {config:?}\n--- in ---\n{text}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts an error at `line:column` on `key` whose message contains `fragment`.
#[track_caller]
fn assert_error(text: &str, at: &str, key: &str, fragment: &str) {
    let lines = error_lines(text);
    let prefix = format!("gateway.toml:{at}: {key}: ");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&prefix) && line.contains(fragment)),
        "no error {prefix}...{fragment}... in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_rack_password_longer_than_ten_characters_is_refused() {
    let text =
        "[[racks]]\nname = \"r\"\nlink = { port = \"tcp://h:1\" }\npassword = \"12345678901\"\n";
    assert_error(
        text,
        "4:12",
        "racks[0].password",
        "at most 10 printable ASCII",
    );
}

// --- The default -------------------------------------------------------------------------------

#[test]
fn embedded_default_parses_to_the_defaults_of_an_almost_empty_file() {
    let racks = "[[racks]]\nname = \"rack-1\"\nlink = { port = \"tcp://127.0.0.1:9000\" }\n\
                 password = \"123456\"\n\
                 [[racks]]\nname = \"rack-2\"\nlink = { port = \"tcp://127.0.0.1:9001\" }\n\
                 password = \"123456\"\n";
    assert_eq!(default_config().unwrap(), load_ok(racks));
}

#[test]
fn embedded_default_values() {
    let config = default_config().unwrap();
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.polling.poll_interval, Duration::from_millis(500));
    assert_eq!(config.polling.reply_timeout, Duration::from_millis(500));
    assert_eq!(config.polling.stale_timeout, Duration::from_secs(5));
    assert_eq!(
        (config.polling.retries, config.polling.offline_after),
        (2, 3)
    );
    assert_eq!(config.racks.len(), 2);
    assert_eq!(
        config.racks[0].link,
        RackLink::Tcp {
            address: "127.0.0.1:9000".into()
        }
    );
    assert_eq!(config.inverter.profile, Profile::PylontechV12);
    assert!(!config.inverter.options.never_zero);
    assert_eq!(
        config.inverter.can,
        CanLink::Slcan(SlcanPort::Serial(PathBuf::from("/dev/ttyACM0")))
    );
    assert_eq!(config.inverter.bitrate, 500_000);
    assert_eq!(config.inverter.send_interval, Duration::from_secs(1));
    assert_eq!(
        config.inverter.keepalive_timeout,
        Some(Duration::from_secs(60))
    );
    assert!(!config.inverter.silence_is_unsafe);
    assert_eq!(config.recovery_hold, Duration::from_secs(10));
    assert_eq!(
        config.ems.listen,
        "127.0.0.1:5020".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.ems.unit_id, 1);
    assert_eq!(config.ems.allow.len(), 2);
    assert_eq!(config.ems.writes, EmsWrites::Disabled);
    assert_eq!(config.ems.heartbeat_timeout, None);
    assert_eq!(config.dry_contact, DryContact::None);
    assert_eq!((config.metrics_listen, config.uplink), (None, None));
}

#[test]
fn embedded_default_documents_every_key() {
    let keys = [
        "log_level",
        "poll_interval",
        "reply_timeout",
        "retries",
        "offline_after",
        "stale_timeout",
        "name",
        "link.port",
        "link.baud",
        "profile",
        "never_zero",
        "send_interval",
        "keepalive_timeout",
        "silence_is_unsafe",
        "transport",
        "port",
        "interface",
        "bitrate",
        "recovery_hold",
        "listen",
        "unit_id",
        "allow",
        "writes_enabled",
        "write_allow",
        "unlock_code",
        "heartbeat_timeout",
        "backend",
        "chip",
        "line",
        "active_level",
        "open",
        "close",
        "server",
        "backlog_dir",
        "interval = \"10s\"",
        "[uplink.terminals]",
        "[metrics]",
    ];
    for key in keys {
        assert!(DEFAULT_CONFIG.contains(key), "{key} is not documented");
    }
}

#[test]
fn full_file_with_every_optional_section() {
    let text = r#"
log_level = "debug"
poll_interval = "1s"
reply_timeout = "1s"
stale_timeout = "2s"
[[racks]]
name = "r1"
link = { port = "/dev/ttyUSB0", baud = 9600 }
[[racks]]
name = "r2"
link = { port = "tcp://10.0.0.5:8899" }
[inverter]
profile = "victron"
never_zero = true
keepalive_timeout = "off"
[inverter.can]
transport = "socketcan"
interface = "can0"
[ems]
listen = "0.0.0.0:502"
allow = ["192.168.10.0/24"]
writes_enabled = true
write_allow = ["192.168.10.7"]
unlock_code = "site-7-unlock"
heartbeat_timeout = "30s"
[dry_contact]
backend = "gpio"
chip = "/dev/gpiochip0"
line = 17
active_level = "low"
[metrics]
listen = "0.0.0.0:9464"
[uplink]
server = "platform.example:9100"
backlog_dir = "/var/lib/bmslink/backlog"
[uplink.terminals]
r1 = 1000
r2 = 1001
"#;
    let config = load_ok(text);
    assert_eq!(config.log_level, LogLevel::Debug);
    assert_eq!(
        config.racks[0].link,
        RackLink::Serial {
            path: "/dev/ttyUSB0".into(),
            baud: 9600
        }
    );
    assert_eq!(config.inverter.profile, Profile::Victron);
    assert!(config.inverter.options.never_zero);
    assert_eq!(config.inverter.keepalive_timeout, None);
    assert_eq!(
        config.inverter.can,
        CanLink::SocketCan {
            interface: "can0".into()
        }
    );
    match &config.ems.writes {
        EmsWrites::Enabled { allow, unlock_code } => {
            assert_eq!(allow[0].to_string(), "192.168.10.7/32");
            assert!(unlock_code.matches("site-7-unlock") && !unlock_code.matches("site-7"));
            assert_eq!(format!("{unlock_code:?}"), "UnlockCode(<hidden>)");
        }
        EmsWrites::Disabled => panic!("writes are enabled"),
    }
    assert_eq!(
        config.dry_contact,
        DryContact::Gpio {
            chip: "/dev/gpiochip0".into(),
            line: 17,
            active_level: ActiveLevel::Low
        }
    );
    let uplink = config.uplink.unwrap();
    let numbers: Vec<u32> = uplink.terminals.iter().map(|t| t.number()).collect();
    assert_eq!(numbers, [1000, 1001]);
}

// --- Parse errors ------------------------------------------------------------------------------

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = format!("{RACK}[ems]\nlisten = \"127.0.0.1:5020\"\nlisen = \"x\"\n");
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("gateway.toml:6:1: ") && lines[0].contains("unknown field `lisen`"),
        "{lines:?}"
    );
}

#[test]
fn bad_duration_names_its_key_and_line() {
    let text = format!("poll_interval = \"fast\"\n{RACK}");
    assert_error(&text, "1:17", "poll_interval", "\"fast\" is not a duration");
}

#[test]
fn wrong_type_and_syntax_are_located() {
    assert_error(
        &format!("retries = \"two\"\n{RACK}"),
        "1:11",
        "retries",
        "invalid type",
    );
    let lines = error_lines("poll_interval = \n");
    assert!(lines[0].starts_with("gateway.toml:1:"), "{lines:?}");
    let lines = error_lines("[[racks]]\nname = \"a\"\n");
    assert!(lines[0].contains("missing field `link`"), "{lines:?}");
}

#[test]
fn unknown_enum_value_lists_the_choices() {
    let text = format!("log_level = \"loud\"\n{RACK}");
    assert_error(&text, "1:13", "log_level", "unknown variant `loud`");
}

// --- Polling -----------------------------------------------------------------------------------

#[test]
fn poll_interval_range() {
    let text = format!("poll_interval = \"50ms\"\n{RACK}");
    assert_error(&text, "1:17", "poll_interval", "50ms is outside 100ms..=1s");
    let text = format!("poll_interval = \"2s\"\nreply_timeout = \"100ms\"\n{RACK}");
    assert_error(&text, "1:17", "poll_interval", "2s is outside 100ms..=1s");
}

#[test]
fn reply_timeout_range() {
    let text = format!("reply_timeout = \"6s\"\n{RACK}");
    assert_error(&text, "1:17", "reply_timeout", "6s is outside 1ms..=5s");
    let text = format!("reply_timeout = \"0s\"\n{RACK}");
    assert_error(&text, "1:17", "reply_timeout", "0s is outside 1ms..=5s");
}

#[test]
fn reply_timeout_must_fit_in_the_poll_interval() {
    let text = format!("poll_interval = \"200ms\"\nreply_timeout = \"300ms\"\n{RACK}");
    assert_error(
        &text,
        "2:17",
        "reply_timeout",
        "is longer than poll_interval 200ms",
    );
    // The default reply timeout (500 ms) against a shorter poll: reported at the poll.
    let text = format!("poll_interval = \"200ms\"\n{RACK}");
    assert_error(
        &text,
        "1:17",
        "poll_interval",
        "reply_timeout 500ms (the default)",
    );
}

#[test]
fn stale_timeout_is_at_least_two_polls() {
    let text = format!("stale_timeout = \"900ms\"\n{RACK}");
    assert_error(
        &text,
        "1:17",
        "stale_timeout",
        "shorter than 2 x poll_interval (1s)",
    );
    let text = format!("stale_timeout = \"2m\"\n{RACK}");
    assert_error(&text, "1:17", "stale_timeout", "2m is outside 200ms..=1m");
}

#[test]
fn retries_and_offline_after_ranges() {
    let text = format!("retries = 11\noffline_after = 0\n{RACK}");
    assert_error(&text, "1:11", "retries", "11 is outside 0..=10");
    assert_error(&text, "2:17", "offline_after", "0 is outside 1..=100");
}

// --- Racks -------------------------------------------------------------------------------------

#[test]
fn at_least_one_rack() {
    assert_error(
        "log_level = \"info\"\n",
        "1:1",
        "racks",
        "no rack is configured",
    );
    assert_error("racks = []\n", "1:9", "racks", "no rack is configured");
}

#[test]
fn rack_names_are_valid_and_unique() {
    let text = "[[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\" }\n\
                [[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB1\" }\n\
                [[racks]]\nname = \"rack 3\"\nlink = { port = \"/dev/ttyUSB2\" }\n";
    assert_error(
        text,
        "5:8",
        "racks[1].name",
        "\"a\" is also the name of racks[0]",
    );
    assert_error(text, "8:8", "racks[2].name", "is not a rack name");
}

#[test]
fn baud_must_be_standard() {
    let text = "[[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\" }\n\
                [[racks]]\nname = \"b\"\nlink = { port = \"/dev/ttyUSB1\", baud = 12345 }\n";
    assert_error(
        text,
        "6:40",
        "racks[1].link.baud",
        "12345 is not a standard baud rate (1200..921600",
    );
}

#[test]
fn baud_only_on_serial_links() {
    let text = "[[racks]]\nname = \"a\"\nlink = { port = \"tcp://10.0.0.5:8899\", baud = 9600 }\n";
    assert_error(
        text,
        "3:47",
        "racks[0].link.baud",
        "applies to serial ports only",
    );
}

#[test]
fn link_ports_are_serial_paths_or_tcp_addresses() {
    let text = "[[racks]]\nname = \"a\"\nlink = { port = \"udp://10.0.0.5:8899\" }\n";
    assert_error(text, "3:17", "racks[0].link.port", "write a serial device");
    let text = "[[racks]]\nname = \"a\"\nlink = { port = \"tcp://10.0.0.5\" }\n";
    assert_error(text, "3:17", "racks[0].link.port", "is not host:port");
}

#[test]
fn links_are_unique_across_racks_and_the_can_adapter() {
    let text = "[[racks]]\nname = \"a\"\nlink = { port = \"tcp://Host:1\" }\n\
                [[racks]]\nname = \"b\"\nlink = { port = \"tcp://host:1\" }\n\
                [[racks]]\nname = \"c\"\nlink = { port = \"/dev/ttyACM0\" }\n";
    assert_error(
        text,
        "6:17",
        "racks[1].link.port",
        "tcp://host:1 is already used by racks[0].link.port",
    );
    // The third rack takes the SLCAN adapter's default port.
    assert_error(
        text,
        "1:1",
        "inverter.can.port",
        "/dev/ttyACM0 is already used by racks[2].link.port",
    );
}

// --- Inverter ----------------------------------------------------------------------------------

#[test]
fn profile_must_be_known() {
    let text = format!("{RACK}[inverter]\nprofile = \"fronius\"\n");
    assert_error(&text, "5:11", "inverter.profile", "\"victron\"");
}

#[test]
fn send_interval_never_under_200ms() {
    let text = format!("{RACK}[inverter]\nsend_interval = \"100ms\"\n");
    assert_error(
        &text,
        "5:17",
        "inverter.send_interval",
        "100ms is outside 200ms..=5s",
    );
}

#[test]
fn keepalive_timeout_range_and_silence_needs_a_watch() {
    let text = format!("{RACK}[inverter]\nkeepalive_timeout = \"1s\"\n");
    assert_error(
        &text,
        "5:21",
        "inverter.keepalive_timeout",
        "1s is outside 2s..=10m",
    );
    let text = format!("{RACK}[inverter]\nkeepalive_timeout = \"off\"\nsilence_is_unsafe = true\n");
    assert_error(&text, "6:21", "inverter.silence_is_unsafe", "no effect");
}

#[test]
fn can_transport_keys() {
    let text = format!("{RACK}[inverter.can]\ntransport = \"socketcan\"\n");
    assert_error(&text, "5:13", "inverter.can.interface", "needs interface");
    let text = format!("{RACK}[inverter.can]\ntransport = \"socketcan\"\ninterface = \"can/0\"\nport = \"/dev/ttyACM0\"\n");
    assert_error(
        &text,
        "6:13",
        "inverter.can.interface",
        "is not an interface name",
    );
    assert_error(
        &text,
        "7:8",
        "inverter.can.port",
        "only used with transport = \"slcan\"",
    );
    let text = format!("{RACK}[inverter.can]\ninterface = \"can0\"\n");
    assert_error(
        &text,
        "5:13",
        "inverter.can.interface",
        "only used with transport = \"socketcan\"",
    );
    let text = format!("{RACK}[inverter.can]\nport = \"tcp://bridge\"\n");
    assert_error(&text, "5:8", "inverter.can.port", "is not host:port");
}

#[test]
fn can_bitrate_is_standard() {
    let text = format!("{RACK}[inverter.can]\nbitrate = 12345\n");
    assert_error(
        &text,
        "5:11",
        "inverter.can.bitrate",
        "12345 is not a CAN bit rate",
    );
}

#[test]
fn recovery_hold_range() {
    let text = format!("{RACK}[failsafe]\nrecovery_hold = \"500ms\"\n");
    assert_error(
        &text,
        "5:17",
        "failsafe.recovery_hold",
        "500ms is outside 1s..=10m",
    );
}

// --- EMS ---------------------------------------------------------------------------------------

#[test]
fn ems_listen_address_and_unit_id() {
    let text = format!("{RACK}[ems]\nlisten = \"localhost:502\"\nunit_id = 248\n");
    assert_error(&text, "5:10", "ems.listen", "is not ip:port");
    assert_error(&text, "6:11", "ems.unit_id", "248 is outside 1..=247");
    let text = format!("{RACK}[ems]\nlisten = \"127.0.0.1:0\"\nunit_id = 0\n");
    assert_error(&text, "5:10", "ems.listen", "port 0");
    assert_error(&text, "6:11", "ems.unit_id", "0 is outside 1..=247");
}

#[test]
fn ems_allow_lists_are_cidr_networks() {
    let text = format!("{RACK}[ems]\nallow = [\"10.0.0.0/8\", \"192.168.1.5/24\", \"nope\"]\n");
    assert_error(
        &text,
        "5:24",
        "ems.allow[1]",
        "the network is 192.168.1.0/24",
    );
    assert_error(&text, "5:42", "ems.allow[2]", "is not an IP address");
    let text = format!("{RACK}[ems]\nallow = []\n");
    assert_error(&text, "5:9", "ems.allow", "no client could connect");
}

#[test]
fn writes_need_an_unlock_code_and_a_write_allow_list() {
    let text = format!("{RACK}[ems]\nwrites_enabled = true\n");
    assert_error(&text, "5:18", "ems.unlock_code", "needs an unlock_code");
    assert_error(&text, "5:18", "ems.write_allow", "needs write_allow");
}

#[test]
fn unlock_code_is_long_enough_and_not_well_known() {
    let text = format!(
        "{RACK}[ems]\nwrites_enabled = true\nwrite_allow = [\"127.0.0.1\"]\nunlock_code = \"12345\"\n"
    );
    assert_error(&text, "7:15", "ems.unlock_code", "6 to 32 printable");
    let text = format!(
        "{RACK}[ems]\nwrites_enabled = true\nwrite_allow = [\"127.0.0.1\"]\nunlock_code = \"123456\"\n"
    );
    assert_error(&text, "7:15", "ems.unlock_code", "well-known default");
}

#[test]
fn writers_must_be_allowed_to_connect() {
    let text = format!(
        "{RACK}[ems]\nwrites_enabled = true\nwrite_allow = [\"192.168.1.0/24\"]\nunlock_code = \"s3cret-code\"\n"
    );
    assert_error(
        &text,
        "6:16",
        "ems.write_allow[0]",
        "is not inside any ems.allow network",
    );
}

#[test]
fn ems_heartbeat_range() {
    let text = format!("{RACK}[ems]\nheartbeat_timeout = \"500ms\"\n");
    assert_error(
        &text,
        "5:21",
        "ems.heartbeat_timeout",
        "500ms is outside 1s..=10m",
    );
}

// --- Dry contact, metrics, uplink --------------------------------------------------------------

#[test]
fn gpio_contact_needs_chip_and_line() {
    let text = format!("{RACK}[dry_contact]\nbackend = \"gpio\"\n");
    assert_error(&text, "5:11", "dry_contact.chip", "needs chip");
    assert_error(&text, "5:11", "dry_contact.line", "needs line");
    let text =
        format!("{RACK}[dry_contact]\nbackend = \"gpio\"\nchip = \"gpiochip0\"\nline = 2000\n");
    assert_error(&text, "6:8", "dry_contact.chip", "is not a device path");
    assert_error(&text, "7:8", "dry_contact.line", "2000 is outside 0..=1023");
}

#[test]
fn contact_keys_belong_to_their_backend() {
    let text = format!("{RACK}[dry_contact]\nline = 4\nopen = [\"relay\", \"off\"]\n");
    assert_error(
        &text,
        "5:8",
        "dry_contact.line",
        "only used with backend = \"gpio\"",
    );
    assert_error(
        &text,
        "6:8",
        "dry_contact.open",
        "only used with backend = \"command\"",
    );
}

#[test]
fn command_contact_needs_both_programs() {
    let text = format!("{RACK}[dry_contact]\nbackend = \"command\"\nopen = []\n");
    assert_error(&text, "6:8", "dry_contact.open", "needs a program");
    assert_error(&text, "5:11", "dry_contact.close", "needs close");
    let text = format!(
        "{RACK}[dry_contact]\nbackend = \"command\"\nopen = [\"relay\", \"off\"]\nclose = [\"relay\", \"on\"]\n"
    );
    let config = load_ok(&text);
    let DryContact::Command { open, close } = config.dry_contact else {
        panic!("not a command contact");
    };
    assert_eq!(
        (open.program.as_str(), open.args),
        ("relay", vec!["off".to_string()])
    );
    assert_eq!(close.args, ["on"]);
}

#[test]
fn metrics_listen_is_valid_and_apart_from_the_ems() {
    let text = format!("{RACK}[metrics]\nlisten = \"0.0.0.0:5020\"\n");
    assert_error(
        &text,
        "5:10",
        "metrics.listen",
        "takes the port of ems.listen",
    );
    let text = format!("{RACK}[metrics]\nlisten = \"9464\"\n");
    assert_error(&text, "5:10", "metrics.listen", "is not ip:port");
}

#[test]
fn uplink_terminals_cover_every_rack_once() {
    let racks = "[[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\" }\n\
                 [[racks]]\nname = \"b\"\nlink = { port = \"/dev/ttyUSB1\" }\n";
    let text = format!(
        "{racks}[uplink]\nserver = \"platform\"\n[uplink.terminals]\na = 7\nc = 7\nd = 0\n"
    );
    assert_error(&text, "8:10", "uplink.server", "is not host:port");
    assert_error(
        &text,
        "11:1",
        "uplink.terminals.c",
        "no rack is named \"c\"",
    );
    assert_error(
        &text,
        "11:5",
        "uplink.terminals.c",
        "terminal 7 is also that of \"a\"",
    );
    assert_error(
        &text,
        "12:5",
        "uplink.terminals.d",
        "0 is outside 1..=16777215",
    );
    assert_error(
        &text,
        "9:1",
        "uplink.terminals",
        "rack \"b\" has no terminal number",
    );
}

#[test]
fn uplink_interval_defaults_to_10_s_within_1_s_to_1_h() {
    let uplink = |extra: &str| {
        format!("{RACK}[uplink]\nserver = \"platform:9100\"\n{extra}[uplink.terminals]\na = 7\n")
    };
    let config = load_ok(&uplink(""));
    assert_eq!(
        config.uplink.map(|u| u.interval),
        Some(std::time::Duration::from_secs(10))
    );
    let config = load_ok(&uplink("interval = \"1m\"\n"));
    assert_eq!(
        config.uplink.map(|u| u.interval),
        Some(std::time::Duration::from_secs(60))
    );
    assert_error(
        &uplink("interval = \"500ms\"\n"),
        "6:12",
        "uplink.interval",
        "500ms is outside 1s..=1h",
    );
    assert_error(
        &uplink("interval = \"2h\"\n"),
        "6:12",
        "uplink.interval",
        "2h is outside 1s..=1h",
    );
}

#[test]
fn uplink_reconnect_max_defaults_to_60_s_within_1_s_to_1_h() {
    let uplink = |extra: &str| {
        format!("{RACK}[uplink]\nserver = \"platform:9100\"\n{extra}[uplink.terminals]\na = 7\n")
    };
    let reconnect_max = |extra: &str| load_ok(&uplink(extra)).uplink.map(|u| u.reconnect_max);
    assert_eq!(reconnect_max(""), Some(std::time::Duration::from_secs(60)));
    assert_eq!(
        reconnect_max("reconnect_max = \"5s\"\n"),
        Some(std::time::Duration::from_secs(5))
    );
    assert_error(
        &uplink("reconnect_max = \"100ms\"\n"),
        "6:17",
        "uplink.reconnect_max",
        "100ms is outside 1s..=1h",
    );
    assert_error(
        &uplink("reconnect_max = \"1d\"\n"),
        "6:17",
        "uplink.reconnect_max",
        "1d is outside 1s..=1h",
    );
}

// --- Every error at once ----------------------------------------------------------------------

#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let text = "poll_interval = \"50ms\"\nretries = 20\n\
                [[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\", baud = 1 }\n\
                [ems]\nunit_id = 0\n";
    let lines = error_lines(text);
    let locations: Vec<&str> = lines
        .iter()
        .map(|line| line.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        locations,
        [
            "gateway.toml:1:17",
            "gateway.toml:1:17",
            "gateway.toml:2:11",
            "gateway.toml:5:40",
            "gateway.toml:7:11"
        ],
        "{lines:#?}"
    );
}

// --- Conversions into the core ----------------------------------------------------------------

#[test]
fn polling_becomes_the_session_config() {
    let text = format!("reply_timeout = \"250ms\"\nretries = 4\noffline_after = 6\n{RACK}");
    let session = load_ok(&text).session_config().unwrap();
    assert_eq!(
        session,
        SessionConfig {
            reply_timeout: Duration::from_millis(250),
            retries: 4,
            offline_after: 6,
            ..SessionConfig::default()
        }
    );
}

#[test]
fn session_conversion_keeps_the_core_checks() {
    let polling = PollingConfig {
        poll_interval: Duration::from_millis(500),
        reply_timeout: Duration::ZERO,
        retries: 2,
        offline_after: 3,
        stale_timeout: Duration::from_secs(5),
    };
    assert_eq!(
        SessionConfig::try_from(&polling),
        Err(session::ConfigError::ReplyTimeout(Duration::ZERO))
    );
}

#[test]
fn failsafe_config_gathers_the_watches() {
    let text = format!(
        "{RACK}[inverter]\nkeepalive_timeout = \"30s\"\nsilence_is_unsafe = true\n\
         [failsafe]\nrecovery_hold = \"20s\"\n[ems]\nheartbeat_timeout = \"15s\"\n"
    );
    assert_eq!(
        load_ok(&text).failsafe_config(),
        FailsafeConfig {
            recovery_hold: Duration::from_secs(20),
            inverter_timeout: Some(Duration::from_secs(30)),
            inverter_silence_is_unsafe: true,
            ems_timeout: Some(Duration::from_secs(15)),
        }
    );
    assert_eq!(
        default_config().unwrap().failsafe_config(),
        FailsafeConfig::default()
    );
}
