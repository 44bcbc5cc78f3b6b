//! The dry contact ("hard node") to the PCS's trip input: closed while the battery is normal,
//! open in the safe state, so the inverter stops even when the CAN link is gone.
//!
//! ```text
//! failsafe --watch<bool> (true = open)--> run_dry_contact --> Contact::set --> relay
//!                                                              ├─ GPIO line (gpiocdev, held)
//!                                                              ├─ open / close programs
//!                                                              └─ none
//! ```
//!
//! Backends ([`Contact`]):
//! - GPIO: one line of a Linux GPIO character device, requested as an output with the consumer
//!   name [`CONSUMER`] (so `gpioinfo` shows who holds it) and kept for the daemon's life. The
//!   configured `active_level` is the level that closes the contact; the line is requested
//!   active-low when that is `low`, so "active" always means "closed".
//! - Command: a program run directly (no shell) to open, another to close; a non-zero exit or
//!   a run longer than [`COMMAND_TIMEOUT`] is an error that carries the exit status and stderr.
//!   On a timeout the program is killed (only it: children it started are not).
//! - None: nothing to drive.
//!
//! [`run_dry_contact`] sets the contact once at start and again on every change of the wanted
//! state, logging each change with its reason, and retries a failed operation every
//! [`RETRY_INTERVAL`] until the contact is where it should be. When the GPIO line is released
//! (the daemon exits), the kernel keeps or resets its value as the chip's driver does: wire the
//! relay so that an unpowered output opens the contact.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gpiocdev::line::Value;
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{debug, error, info};

use crate::config::{ActiveLevel, CommandLine, DryContact};
use crate::metrics::Metrics;

/// The consumer name of the requested GPIO line (shown by `gpioinfo`).
pub const CONSUMER: &str = "bmslink-gateway";

/// How long an open or close program may run before it is killed and counted as failed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Time between attempts while the contact is not in the wanted state.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(3);

/// The most bytes of a failed program's stderr kept in the error.
const STDERR_LIMIT: usize = 512;

/// Where the contact is, or should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContactState {
    /// Closed: normal operation, the PCS may run.
    Closed,
    /// Open: the safe state, the PCS's trip input is released.
    Open,
}

impl ContactState {
    /// The state for the failsafe's flag (`true`: safe state, open).
    pub fn from_open(open: bool) -> ContactState {
        if open {
            ContactState::Open
        } else {
            ContactState::Closed
        }
    }

    /// "open" or "close": the action that reaches this state.
    pub fn action(self) -> &'static str {
        match self {
            ContactState::Closed => "close",
            ContactState::Open => "open",
        }
    }

    /// "opened" or "closed".
    pub fn past(self) -> &'static str {
        match self {
            ContactState::Closed => "closed",
            ContactState::Open => "opened",
        }
    }

    /// Why the contact is in this state.
    pub fn reason(self) -> &'static str {
        match self {
            ContactState::Closed => "normal operation",
            ContactState::Open => "safe state",
        }
    }
}

impl fmt::Display for ContactState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContactState::Closed => "closed",
            ContactState::Open => "open",
        })
    }
}

/// Why a dry-contact operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ContactError {
    /// No dry contact is configured (`test_contact` on backend `none`).
    NotConfigured,
    /// The GPIO chip's device file does not exist.
    NoChip {
        /// The configured chip.
        chip: PathBuf,
    },
    /// The GPIO chip exists but could not be opened.
    ChipAccess {
        /// The configured chip.
        chip: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a GPIO character device.
    NotAChip {
        /// The configured chip.
        chip: PathBuf,
        /// What it is instead.
        source: gpiocdev::Error,
    },
    /// The chip refused the line as an output.
    LineRequest {
        /// The configured chip.
        chip: PathBuf,
        /// The line offset.
        line: u32,
        /// Why.
        source: gpiocdev::Error,
    },
    /// Setting the line's value failed.
    LineSet {
        /// The configured chip.
        chip: PathBuf,
        /// The line offset.
        line: u32,
        /// The state asked for.
        state: ContactState,
        /// Why.
        source: gpiocdev::Error,
    },
    /// The open or close program could not be started.
    Spawn {
        /// The state asked for.
        state: ContactState,
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// Waiting for the program failed.
    Wait {
        /// The state asked for.
        state: ContactState,
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// The program exited unsuccessfully.
    CommandFailed {
        /// The state asked for.
        state: ContactState,
        /// The program.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its stderr, trimmed (at most 512 bytes).
        stderr: String,
    },
    /// The program ran longer than the timeout and was killed.
    CommandTimeout {
        /// The state asked for.
        state: ContactState,
        /// The program.
        program: String,
        /// The timeout.
        timeout: Duration,
    },
}

impl fmt::Display for ContactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactError::NotConfigured => f.write_str(
                "no dry contact is configured (set [dry_contact] backend to \"gpio\" or \"command\")",
            ),
            ContactError::NoChip { chip } => write!(
                f,
                "no GPIO chip at {}: check the path (`ls /dev/gpiochip*`; `gpiodetect` lists the \
                 chips with their labels)",
                chip.display()
            ),
            ContactError::ChipAccess { chip, source } => write!(
                f,
                "cannot open GPIO chip {}: {source} (check that the gateway's user may use it: \
                 the device's group, e.g. `gpio`, or a udev rule)",
                chip.display()
            ),
            ContactError::NotAChip { chip, source } => write!(
                f,
                "{} is not a GPIO chip: {source} (`gpiodetect` lists the chips)",
                chip.display()
            ),
            ContactError::LineRequest { chip, line, source } => write!(
                f,
                "cannot request line {line} of GPIO chip {} as an output: {source} (check that \
                 the chip has that line and that no other program, driver or sysfs export holds \
                 it: `gpioinfo {}` shows the lines and their consumers)",
                chip.display(),
                chip.display()
            ),
            ContactError::LineSet {
                chip,
                line,
                state,
                source,
            } => write!(
                f,
                "cannot {} the dry contact on line {line} of GPIO chip {}: {source}",
                state.action(),
                chip.display()
            ),
            ContactError::Spawn {
                state,
                program,
                source,
            } => write!(
                f,
                "cannot run the dry contact's {} program {program}: {source} (check the path \
                 and that it is executable; it is run directly, not through a shell)",
                state.action()
            ),
            ContactError::Wait {
                state,
                program,
                source,
            } => write!(
                f,
                "waiting for the dry contact's {} program {program} failed: {source}",
                state.action()
            ),
            ContactError::CommandFailed {
                state,
                program,
                status,
                stderr,
            } => {
                write!(
                    f,
                    "the dry contact's {} program {program} failed ({status})",
                    state.action()
                )?;
                if stderr.is_empty() {
                    f.write_str(", no stderr")
                } else {
                    write!(f, ": {stderr}")
                }
            }
            ContactError::CommandTimeout {
                state,
                program,
                timeout,
            } => write!(
                f,
                "the dry contact's {} program {program} did not finish within {timeout:?} and \
                 was killed",
                state.action()
            ),
        }
    }
}

impl std::error::Error for ContactError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ContactError::ChipAccess { source, .. }
            | ContactError::Spawn { source, .. }
            | ContactError::Wait { source, .. } => Some(source),
            ContactError::NotAChip { source, .. }
            | ContactError::LineRequest { source, .. }
            | ContactError::LineSet { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Timing of the contact's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactSettings {
    /// How long an open or close program may run.
    pub command_timeout: Duration,
    /// Time between attempts after a failure.
    pub retry_interval: Duration,
}

impl Default for ContactSettings {
    fn default() -> Self {
        ContactSettings {
            command_timeout: COMMAND_TIMEOUT,
            retry_interval: RETRY_INTERVAL,
        }
    }
}

/// A dry contact, ready to be set.
#[derive(Debug)]
pub enum Contact {
    /// Nothing to drive.
    None,
    /// A requested GPIO output line.
    Gpio(GpioContact),
    /// Open and close programs.
    Command(CommandContact),
}

impl Contact {
    /// Prepares the configured contact. A GPIO line is requested here, already at `initial`'s
    /// level (no glitch); programs run only on [`set`](Self::set).
    pub fn new(
        config: &DryContact,
        initial: ContactState,
        settings: &ContactSettings,
    ) -> Result<Contact, ContactError> {
        Ok(match config {
            DryContact::None => Contact::None,
            DryContact::Gpio {
                chip,
                line,
                active_level,
            } => Contact::Gpio(GpioContact::request(chip, *line, *active_level, initial)?),
            DryContact::Command { open, close } => Contact::Command(CommandContact {
                open: open.clone(),
                close: close.clone(),
                timeout: settings.command_timeout,
            }),
        })
    }

    /// Puts the contact in `state`.
    pub async fn set(&mut self, state: ContactState) -> Result<(), ContactError> {
        match self {
            Contact::None => Ok(()),
            Contact::Gpio(gpio) => gpio.set(state),
            Contact::Command(command) => command.set(state).await,
        }
    }
}

/// One GPIO output line, held while this value lives.
#[derive(Debug)]
pub struct GpioContact {
    chip: PathBuf,
    line: u32,
    request: gpiocdev::Request,
}

impl GpioContact {
    /// Requests `line` of `chip` as an output at `initial`'s level; `active_level` closes.
    pub fn request(
        chip: &Path,
        line: u32,
        active_level: ActiveLevel,
        initial: ContactState,
    ) -> Result<GpioContact, ContactError> {
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(chip)
            .with_consumer(CONSUMER)
            .with_line(line);
        if active_level == ActiveLevel::Low {
            builder.as_active_low();
        }
        builder.as_output(line_value(initial));
        let request = builder
            .request()
            .map_err(|source| request_error(chip, line, source))?;
        debug!(chip = %chip.display(), line, "GPIO line requested for the dry contact");
        Ok(GpioContact {
            chip: chip.to_path_buf(),
            line,
            request,
        })
    }

    /// Drives the line to `state`'s level.
    pub fn set(&self, state: ContactState) -> Result<(), ContactError> {
        self.request
            .set_value(self.line, line_value(state))
            .map_err(|source| ContactError::LineSet {
                chip: self.chip.clone(),
                line: self.line,
                state,
                source,
            })
    }
}

/// Active (the configured closing level) closes the contact.
fn line_value(state: ContactState) -> Value {
    match state {
        ContactState::Closed => Value::Active,
        ContactState::Open => Value::Inactive,
    }
}

/// Sorts a failed request into a missing chip, a chip we may not open, not a chip, or a line
/// the chip refused.
fn request_error(chip: &Path, line: u32, source: gpiocdev::Error) -> ContactError {
    let chip = chip.to_path_buf();
    match &source {
        gpiocdev::Error::Os(errno) => {
            let io = io::Error::from_raw_os_error(errno.0);
            match io.kind() {
                io::ErrorKind::NotFound => ContactError::NoChip { chip },
                io::ErrorKind::PermissionDenied => ContactError::ChipAccess { chip, source: io },
                _ => ContactError::LineRequest { chip, line, source },
            }
        }
        gpiocdev::Error::GpioChip(..) => ContactError::NotAChip { chip, source },
        _ => ContactError::LineRequest { chip, line, source },
    }
}

/// Programs run to open and close the contact.
#[derive(Debug)]
pub struct CommandContact {
    open: CommandLine,
    close: CommandLine,
    timeout: Duration,
}

impl CommandContact {
    /// Runs the program for `state` and waits for it (at most the timeout).
    pub async fn set(&self, state: ContactState) -> Result<(), ContactError> {
        let command = match state {
            ContactState::Open => &self.open,
            ContactState::Closed => &self.close,
        };
        run_command(command, state, self.timeout).await
    }
}

async fn run_command(
    command: &CommandLine,
    state: ContactState,
    timeout: Duration,
) -> Result<(), ContactError> {
    let program = command.program.clone();
    let child = Command::new(&command.program)
        .args(&command.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ContactError::Spawn {
            state,
            program: program.clone(),
            source,
        })?;
    // On a timeout the output future, and with it the child, is dropped: kill_on_drop kills it.
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            return Err(ContactError::CommandTimeout {
                state,
                program,
                timeout,
            })
        }
        Ok(Err(source)) => {
            return Err(ContactError::Wait {
                state,
                program,
                source,
            })
        }
        Ok(Ok(output)) => output,
    };
    debug!(program = %program, status = %output.status, stdout = %String::from_utf8_lossy(&output.stdout).trim(), "dry contact program finished");
    if output.status.success() {
        return Ok(());
    }
    Err(ContactError::CommandFailed {
        state,
        program,
        status: output.status,
        stderr: stderr_text(&output.stderr),
    })
}

/// The program's stderr as text, trimmed and cut to [`STDERR_LIMIT`] bytes.
fn stderr_text(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let mut end = text.len().min(STDERR_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text.get(..end) {
        Some(cut) if end < text.len() => format!("{cut}..."),
        _ => text.to_string(),
    }
}

/// Drives the dry contact from the failsafe's flag (`true`: safe state, open) until the sender
/// is dropped: once at start, then on every change, retrying failures every [`RETRY_INTERVAL`].
pub async fn run_dry_contact(
    contact: DryContact,
    state: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    run_dry_contact_with(contact, state, metrics, ContactSettings::default()).await;
}

/// [`run_dry_contact`] with other timings (tests use short ones).
pub async fn run_dry_contact_with(
    contact: DryContact,
    mut state: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    settings: ContactSettings,
) {
    if contact == DryContact::None {
        info!("no dry contact configured");
    }
    let mut driver = Driver {
        config: contact,
        settings,
        metrics,
        contact: None,
        applied: None,
        failures: 0,
        last_failure: String::new(),
    };
    let mut wanted = ContactState::from_open(*state.borrow_and_update());
    loop {
        let settled = driver.apply(wanted).await;
        tokio::select! {
            // The wanted state changed (or the failsafe is gone: stop).
            changed = state.changed() => {
                if changed.is_err() {
                    debug!("dry contact task stopped: the failsafe's sender is gone");
                    return;
                }
                wanted = ContactState::from_open(*state.borrow_and_update());
            }
            // Still not where it should be: try again.
            _ = tokio::time::sleep(settings.retry_interval), if !settled => {}
        }
    }
}

/// The task's state between awaits.
struct Driver {
    config: DryContact,
    settings: ContactSettings,
    metrics: Arc<Metrics>,
    /// The prepared contact; `None` until preparing succeeds.
    contact: Option<Contact>,
    /// The state last set successfully.
    applied: Option<ContactState>,
    /// Failed attempts in a row, and the last failure's message.
    failures: u32,
    last_failure: String,
}

impl Driver {
    /// Brings the contact to `wanted` unless it is there; whether it is there now.
    async fn apply(&mut self, wanted: ContactState) -> bool {
        if self.applied == Some(wanted) {
            return true;
        }
        match self.set(wanted).await {
            Ok(()) => {
                self.record(wanted);
                true
            }
            Err(failure) => {
                self.record_failure(wanted, &failure);
                false
            }
        }
    }

    /// Counts a failure and drops the contact (a GPIO line is requested afresh next time, in
    /// case its chip went away). The first failure, and any that differs from the one before,
    /// is logged as an error; repeats of the same one only at debug level.
    fn record_failure(&mut self, wanted: ContactState, failure: &ContactError) {
        self.metrics.contact_errors.inc();
        self.contact = None;
        self.failures += 1;
        let message = failure.to_string();
        let retry = self.settings.retry_interval;
        let (past, reason) = (wanted.past(), wanted.reason());
        if self.failures == 1 || message != self.last_failure {
            error!(
                backend = self.config.backend_name(),
                "dry contact not {past} ({reason}): {message}; retrying every {retry:?}"
            );
        } else {
            debug!(
                attempts = self.failures,
                "dry contact still not {past}: {message}"
            );
        }
        self.last_failure = message;
    }

    async fn set(&mut self, wanted: ContactState) -> Result<(), ContactError> {
        let contact = match &mut self.contact {
            Some(contact) => contact,
            empty => empty.insert(Contact::new(&self.config, wanted, &self.settings)?),
        };
        contact.set(wanted).await
    }

    fn record(&mut self, state: ContactState) {
        let first = self.applied.is_none();
        self.applied = Some(state);
        if self.config == DryContact::None {
            return;
        }
        self.metrics
            .contact_open
            .set(i64::from(state == ContactState::Open));
        let when = if first { " at start" } else { "" };
        let attempts = std::mem::take(&mut self.failures);
        let after = match attempts {
            0 => String::new(),
            n => format!(", after {n} failed attempts"),
        };
        info!(
            backend = self.config.backend_name(),
            "dry contact {}{when} ({}){after}",
            state.past(),
            state.reason()
        );
    }
}

/// Opens the contact, holds it open for `hold`, closes it (`bmslink gateway --test-contact`).
/// Each step is logged; the first failure is returned (its message names the step).
pub async fn test_contact(contact: &DryContact, hold: Duration) -> Result<(), ContactError> {
    if *contact == DryContact::None {
        return Err(ContactError::NotConfigured);
    }
    let settings = ContactSettings::default();
    let mut driven = Contact::new(contact, ContactState::Open, &settings)?;
    driven.set(ContactState::Open).await?;
    info!(
        backend = contact.backend_name(),
        "dry contact opened (test); closing in {hold:?}"
    );
    tokio::time::sleep(hold).await;
    driven.set(ContactState::Closed).await?;
    info!(
        backend = contact.backend_name(),
        "dry contact closed (test)"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
