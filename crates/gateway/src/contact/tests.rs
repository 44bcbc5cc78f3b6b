//! Tests of the dry contact.
//!
//! The command backend runs real programs (`sh -c '...'` appending to a file in a temporary
//! directory), so those tests use real time. The GPIO backend can only be tested for its errors
//! here: this machine has no GPIO chip (no `/dev/gpiochip*`), and no configfs
//! (`/sys/kernel/config` is absent), so the `gpio-sim` simulator cannot be set up; the missing
//! chip and not-a-chip paths are tested, and the retry loop against a missing chip in virtual
//! time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::*;

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bmslink-contact-{name}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shell(script: &str) -> CommandLine {
    CommandLine {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
    }
}

/// A command contact that appends "open" / "close" lines to `log`.
fn logging_contact(log: &Path) -> DryContact {
    let log = log.display();
    DryContact::Command {
        open: shell(&format!("echo open >> '{log}'")),
        close: shell(&format!("echo close >> '{log}'")),
    }
}

fn fast() -> ContactSettings {
    ContactSettings {
        command_timeout: Duration::from_secs(5),
        retry_interval: Duration::from_millis(50),
    }
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits (real time, at most 10 s) until `log` holds `expected`.
async fn wait_for_lines(log: &Path, expected: &[&str]) {
    let started = Instant::now();
    while lines(log) != expected {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "log holds {:?}, expected {expected:?}",
            lines(log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gpio(chip: &str) -> DryContact {
    DryContact::Gpio {
        chip: chip.into(),
        line: 17,
        active_level: ActiveLevel::High,
    }
}

const MISSING_CHIP: &str = "/dev/gpiochip-bmslink-test-missing";

#[tokio::test]
async fn the_task_closes_at_start_then_follows_every_change_in_order() {
    let dir = temp_dir("order");
    let log = dir.join("log");
    let metrics = Arc::new(Metrics::new());
    let (sender, receiver) = watch::channel(false);
    let task = tokio::spawn(run_dry_contact_with(
        logging_contact(&log),
        receiver,
        metrics.clone(),
        fast(),
    ));
    wait_for_lines(&log, &["close"]).await;
    assert_eq!(metrics.contact_open.get(), 0);
    sender.send_replace(true);
    wait_for_lines(&log, &["close", "open"]).await;
    assert_eq!(metrics.contact_open.get(), 1);
    sender.send_replace(false);
    wait_for_lines(&log, &["close", "open", "close"]).await;
    assert_eq!(metrics.contact_open.get(), 0);
    drop(sender);
    task.await.unwrap();
    assert_eq!(lines(&log), ["close", "open", "close"]);
    assert_eq!(metrics.contact_errors.get(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_task_starts_open_when_the_failsafe_already_holds_the_safe_state() {
    let dir = temp_dir("start-open");
    let log = dir.join("log");
    let metrics = Arc::new(Metrics::new());
    let (sender, receiver) = watch::channel(true);
    let task = tokio::spawn(run_dry_contact_with(
        logging_contact(&log),
        receiver,
        metrics.clone(),
        fast(),
    ));
    wait_for_lines(&log, &["open"]).await;
    drop(sender);
    task.await.unwrap();
    assert_eq!(metrics.contact_open.get(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_failed_open_is_counted_and_retried_until_it_succeeds() {
    let dir = temp_dir("retry");
    let log = dir.join("log");
    let flag = dir.join("failed-once");
    // Fails the first time (creating the flag), succeeds after.
    let open = shell(&format!(
        "if [ ! -e '{flag}' ]; then touch '{flag}'; echo 'relay busy' >&2; exit 1; fi; \
         echo open >> '{log}'",
        flag = flag.display(),
        log = log.display()
    ));
    let contact = DryContact::Command {
        open,
        close: shell("true"),
    };
    let metrics = Arc::new(Metrics::new());
    let (sender, receiver) = watch::channel(true);
    let task = tokio::spawn(run_dry_contact_with(
        contact,
        receiver,
        metrics.clone(),
        fast(),
    ));
    wait_for_lines(&log, &["open"]).await;
    drop(sender);
    task.await.unwrap();
    assert_eq!(metrics.contact_errors.get(), 1);
    assert_eq!(metrics.contact_open.get(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_failing_program_reports_its_exit_status_and_stderr() {
    let contact = DryContact::Command {
        open: shell("echo 'relay board not found' >&2; exit 3"),
        close: shell("true"),
    };
    let mut contact = Contact::new(&contact, ContactState::Closed, &fast()).unwrap();
    let error = contact.set(ContactState::Open).await.unwrap_err();
    let ContactError::CommandFailed {
        state,
        status,
        ref stderr,
        ..
    } = error
    else {
        panic!("expected CommandFailed, got {error:?}");
    };
    assert_eq!(state, ContactState::Open);
    assert_eq!(status.code(), Some(3));
    assert_eq!(stderr, "relay board not found");
    let message = error.to_string();
    assert!(message.contains("open program sh failed"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(message.contains("relay board not found"), "{message}");
}

#[tokio::test]
async fn a_program_past_the_timeout_is_killed_and_reported() {
    let contact = DryContact::Command {
        open: CommandLine {
            program: "sleep".into(),
            args: vec!["30".into()],
        },
        close: shell("true"),
    };
    let settings = ContactSettings {
        command_timeout: Duration::from_millis(300),
        ..fast()
    };
    let mut contact = Contact::new(&contact, ContactState::Closed, &settings).unwrap();
    let started = Instant::now();
    let error = contact.set(ContactState::Open).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(error, ContactError::CommandTimeout { ref program, .. } if program == "sleep"),
        "{error:?}"
    );
    assert!(error.to_string().contains("did not finish within 300ms"));
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error_naming_it() {
    let contact = DryContact::Command {
        open: CommandLine {
            program: "/nonexistent/bmslink-relay".into(),
            args: vec![],
        },
        close: shell("true"),
    };
    let mut contact = Contact::new(&contact, ContactState::Closed, &fast()).unwrap();
    let error = contact.set(ContactState::Open).await.unwrap_err();
    assert!(matches!(error, ContactError::Spawn { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("/nonexistent/bmslink-relay"), "{message}");
    assert!(message.contains("not through a shell"), "{message}");
}

#[tokio::test]
async fn test_contact_opens_then_closes() {
    let dir = temp_dir("test-contact");
    let log = dir.join("log");
    test_contact(&logging_contact(&log), Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(lines(&log), ["open", "close"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn test_contact_stops_at_the_failed_step() {
    let dir = temp_dir("test-contact-fails");
    let log = dir.join("log");
    let contact = DryContact::Command {
        open: shell("exit 1"),
        close: shell(&format!("echo close >> '{}'", log.display())),
    };
    let error = test_contact(&contact, Duration::ZERO).await.unwrap_err();
    assert!(
        matches!(
            error,
            ContactError::CommandFailed {
                state: ContactState::Open,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(lines(&log).is_empty(), "close ran after a failed open");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn the_none_backend_does_nothing_and_stops_with_the_sender() {
    let metrics = Arc::new(Metrics::new());
    let (sender, receiver) = watch::channel(false);
    let task = tokio::spawn(run_dry_contact(DryContact::None, receiver, metrics.clone()));
    sender.send_replace(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(sender);
    task.await.unwrap();
    assert_eq!(
        (metrics.contact_open.get(), metrics.contact_errors.get()),
        (0, 0)
    );
    let mut none = Contact::new(&DryContact::None, ContactState::Open, &fast()).unwrap();
    none.set(ContactState::Closed).await.unwrap();
}

#[tokio::test]
async fn test_contact_refuses_the_none_backend() {
    let error = test_contact(&DryContact::None, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(error, ContactError::NotConfigured));
    assert!(error.to_string().contains("no dry contact is configured"));
}

#[test]
fn a_missing_gpio_chip_is_named_with_what_to_check() {
    let error = Contact::new(&gpio(MISSING_CHIP), ContactState::Open, &fast()).unwrap_err();
    assert!(matches!(error, ContactError::NoChip { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(MISSING_CHIP), "{message}");
    assert!(message.contains("ls /dev/gpiochip*"), "{message}");
}

#[test]
fn a_file_that_is_not_a_gpio_chip_is_refused() {
    let error = Contact::new(&gpio("/dev/null"), ContactState::Open, &fast()).unwrap_err();
    assert!(matches!(error, ContactError::NotAChip { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("/dev/null is not a GPIO chip"),
        "{message}"
    );
}

#[tokio::test]
async fn test_contact_reports_a_missing_gpio_chip() {
    let error = test_contact(&gpio(MISSING_CHIP), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(error, ContactError::NoChip { .. }), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_missing_gpio_chip_is_retried_and_counted() {
    let metrics = Arc::new(Metrics::new());
    let (sender, receiver) = watch::channel(true);
    let settings = ContactSettings {
        retry_interval: Duration::from_secs(3),
        ..fast()
    };
    let task = tokio::spawn(run_dry_contact_with(
        gpio(MISSING_CHIP),
        receiver,
        metrics.clone(),
        settings,
    ));
    // Attempts at 0, 3 and 6 s.
    tokio::time::sleep(Duration::from_millis(7_000)).await;
    assert_eq!(metrics.contact_errors.get(), 3);
    assert_eq!(metrics.contact_open.get(), 0);
    drop(sender);
    task.await.unwrap();
}

#[test]
fn long_stderr_is_cut() {
    let long = "x".repeat(2_000);
    let text = stderr_text(long.as_bytes());
    assert_eq!(text.len(), STDERR_LIMIT + 3);
    assert!(text.ends_with("..."));
    assert_eq!(stderr_text(b"  short\n"), "short");
}

#[test]
fn the_flag_maps_to_states_with_reasons() {
    assert_eq!(ContactState::from_open(true), ContactState::Open);
    assert_eq!(ContactState::Open.past(), "opened");
    assert_eq!(ContactState::Open.reason(), "safe state");
    assert_eq!(ContactState::Closed.reason(), "normal operation");
}
