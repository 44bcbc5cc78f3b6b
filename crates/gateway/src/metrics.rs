//! The gateway's Prometheus metrics: per rack link (polls, timeouts, frame errors, latency,
//! link state), the CAN link, the Modbus server, the failsafe and the dry contact.
//!
//! Every task records into one shared [`Metrics`]; [`Metrics::encode`] renders the text
//! exposition format served at `/metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a rack link.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RackLabels {
    /// Rack name.
    pub rack: String,
}

/// Result of a poll.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum PollResult {
    /// A good reading.
    Ok,
    /// No reply after the retries, or an unusable reply.
    Failed,
}

/// Labels of a poll.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    /// Rack name.
    pub rack: String,
    /// Result.
    pub result: PollResult,
}

/// Labels of a framing or reply error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameErrorLabels {
    /// Rack name.
    pub rack: String,
    /// The error's kind ("checksum", "bad_length", "malformed_reply", ...).
    pub kind: String,
}

/// Direction of a CAN frame.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// Gateway to inverter.
    Sent,
    /// Inverter to gateway.
    Received,
}

/// Labels of CAN frames.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CanLabels {
    /// Direction.
    pub direction: Direction,
}

/// Labels of a Modbus request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModbusLabels {
    /// Function code, as a name ("read_holding_registers").
    pub function: String,
}

/// Labels of a Modbus exception.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModbusExceptionLabels {
    /// Function name.
    pub function: String,
    /// Exception name ("illegal_data_address").
    pub exception: String,
}

/// Labels of a failsafe cause.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    /// The cause's name (`Cause::name`).
    pub cause: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~2 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 12))
}

/// Every metric of the gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Polls by rack and result.
    pub polls: Family<PollLabels, Counter>,
    /// Unanswered requests by rack.
    pub timeouts: Family<RackLabels, Counter>,
    /// Framing errors and malformed replies by rack and kind.
    pub frame_errors: Family<FrameErrorLabels, Counter>,
    /// Time from a read-all request to its reply, seconds.
    pub poll_latency: HistogramFamily<RackLabels>,
    /// 1 while a rack's link is online (or degraded), 0 while unknown or offline.
    pub link_up: Family<RackLabels, Gauge>,
    /// 1 while a rack is in the aggregate.
    pub rack_used: Family<RackLabels, Gauge>,
    /// Connections (re)established per rack.
    pub connects: Family<RackLabels, Counter>,
    /// CAN frames by direction.
    pub can_frames: Family<CanLabels, Counter>,
    /// Inverter keep-alives (0x305) received.
    pub can_keepalives: Counter,
    /// Modbus requests by function.
    pub modbus_requests: Family<ModbusLabels, Counter>,
    /// Modbus exceptions by function and exception.
    pub modbus_exceptions: Family<ModbusExceptionLabels, Counter>,
    /// Modbus connections refused by the allowlist.
    pub modbus_refused: Counter,
    /// 1 while the failsafe holds the safe state (including recovery).
    pub failsafe_safe: Gauge,
    /// Entries into the safe state, by cause.
    pub failsafe_entries: Family<CauseLabels, Counter>,
    /// 1 while the dry contact is open (tripped).
    pub contact_open: Gauge,
    /// Failed dry-contact operations.
    pub contact_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bmslink_gateway");
        let metrics = Metrics {
            polls: Family::default(),
            timeouts: Family::default(),
            frame_errors: Family::default(),
            poll_latency: Family::new_with_constructor(latency_histogram),
            link_up: Family::default(),
            rack_used: Family::default(),
            connects: Family::default(),
            can_frames: Family::default(),
            can_keepalives: Counter::default(),
            modbus_requests: Family::default(),
            modbus_exceptions: Family::default(),
            modbus_refused: Counter::default(),
            failsafe_safe: Gauge::default(),
            failsafe_entries: Family::default(),
            contact_open: Gauge::default(),
            contact_errors: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "rack_polls",
            "Polls of a rack BMS by result",
            metrics.polls.clone(),
        );
        registry.register(
            "rack_reply_timeouts",
            "Requests a rack BMS did not answer within the reply timeout",
            metrics.timeouts.clone(),
        );
        registry.register(
            "rack_frame_errors",
            "Framing errors (checksum, length, end byte) and malformed replies on a rack link",
            metrics.frame_errors.clone(),
        );
        registry.register(
            "rack_poll_latency_seconds",
            "Time from a read-all request to its reply",
            metrics.poll_latency.clone(),
        );
        registry.register(
            "rack_link_up",
            "1 while the rack link answers (online or degraded)",
            metrics.link_up.clone(),
        );
        registry.register(
            "rack_in_aggregate",
            "1 while the rack is part of the aggregate battery",
            metrics.rack_used.clone(),
        );
        registry.register(
            "rack_connects",
            "Connections to a rack link opened",
            metrics.connects.clone(),
        );
        registry.register(
            "can_frames",
            "CAN frames by direction",
            metrics.can_frames.clone(),
        );
        registry.register(
            "can_keepalives",
            "Inverter keep-alive frames (0x305) received",
            metrics.can_keepalives.clone(),
        );
        registry.register(
            "modbus_requests",
            "Modbus requests by function",
            metrics.modbus_requests.clone(),
        );
        registry.register(
            "modbus_exceptions",
            "Modbus exception responses by function and exception",
            metrics.modbus_exceptions.clone(),
        );
        registry.register(
            "modbus_refused_connections",
            "Modbus connections refused by the allowlist",
            metrics.modbus_refused.clone(),
        );
        registry.register(
            "failsafe_safe",
            "1 while the inverter is held in the safe state",
            metrics.failsafe_safe.clone(),
        );
        registry.register(
            "failsafe_entries",
            "Entries into the safe state by cause",
            metrics.failsafe_entries.clone(),
        );
        registry.register(
            "dry_contact_open",
            "1 while the dry contact is open (tripped)",
            metrics.contact_open.clone(),
        );
        registry.register(
            "dry_contact_errors",
            "Dry-contact operations that failed",
            metrics.contact_errors.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The labels of a rack.
    pub fn rack(name: &str) -> RackLabels {
        RackLabels {
            rack: name.to_string(),
        }
    }

    /// The text exposition format (OpenMetrics text, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
