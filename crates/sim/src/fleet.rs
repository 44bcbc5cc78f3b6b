//! A fleet of simulated 4G data boxes uploading to a monitoring platform: thousands of virtual
//! BMSes in one process, each with its own TCP connection.
//!
//! Each box is one task ([`Fleet::run_box`]) that owns its connection: it connects (bound to
//! its source address when the fleet has several), sends an active upload every interval
//! (from a random phase, so a fleet's uploads spread over the interval instead of arriving in
//! bursts), counts the platform's acknowledgements (a response frame with the upload's record
//! number), answers the platform's requests (read all, read, pair code, write) with its BMS,
//! and reconnects after a failure. No per-box thread and no per-box timer besides its upload
//! ticker: the packs' physics is stepped by one clock task for all ([`crate::serve::run_clock`]).
//!
//! Flow control:
//! - at most [`FleetConfig::max_connecting`] connection attempts are in flight at once, so a
//!   ramp-up of thousands of boxes does not overflow the platform's accept backlog;
//! - reconnection waits with exponential backoff and full jitter ([`Backoff`]): after a
//!   platform restart, thousands of boxes come back spread over time, not in one storm, and
//!   the spread widens while the platform stays away;
//! - a box blocked writing (the platform reads slowly) stops reading too: back-pressure, not
//!   buffering.
//!
//! Source addresses: a source address has about 28,000 ephemeral ports (32768..60999 on
//! Linux), and each connection bound to it takes one, so large fleets (and several fleet
//! processes on one machine) spread their connections over several addresses: box `i` binds
//! to `sources[i % sources.len()]`. On loopback every 127.x.y.z address is local, so
//! [`auto_sources`] picks 127.0.0.1, 127.0.0.2, ... (one per [`BOXES_PER_SOURCE`] boxes).
//! Each connection is also one open file: [`raise_open_file_limit`] lifts the soft limit as
//! far as the hard limit allows.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bmslink_proto::{Deframer, Event, Frame, Transport};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::debug;

use crate::serve::{lock, Faults, SharedBms};

/// Boxes per source address chosen by [`auto_sources`]: a sixth of an address's ephemeral
/// ports, so that several fleet processes started alike still fit.
pub const BOXES_PER_SOURCE: usize = 5_000;

/// The most source addresses a list may name.
pub const MAX_SOURCES: usize = 65_536;

/// Bytes read at once: the platform sends requests and acknowledgements, all short frames.
const READ_BUFFER: usize = 512;

/// Uploads remembered per box while waiting for their acknowledgement.
const OUTSTANDING: usize = 32;

/// Exponential backoff with full jitter: the `n`th wait after a failure is uniform in
/// `[0, min(max, initial x 2^n))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first wait.
    pub initial: Duration,
    /// Ceiling of every wait; a connection that lasted this long resets the backoff.
    pub max: Duration,
}

impl Default for Backoff {
    /// 500 ms doubling up to 30 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before reconnection attempt `attempt` (0-based), drawn from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(24)).unwrap_or(u32::MAX);
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        ceiling.mul_f64(rng.random::<f64>())
    }
}

/// How a fleet uploads.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// The platform.
    pub platform: SocketAddr,
    /// Time between two uploads of a box.
    pub interval: Duration,
    /// Local addresses the boxes bind to, in turn (empty: the system's choice).
    pub sources: Vec<IpAddr>,
    /// Faults injected in what the boxes send.
    pub faults: Faults,
    /// Seed of box `i`'s faults, upload phase and jitter: `seed + i`.
    pub seed: u64,
    /// Reconnection backoff.
    pub backoff: Backoff,
    /// Connection attempts in flight at once, over the whole fleet.
    pub max_connecting: usize,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
}

impl FleetConfig {
    /// A fleet uploading to `platform` every `interval`, with the defaults: the system's
    /// source address, no faults, seed 1, [`Backoff::default`], 256 connection attempts in
    /// flight, 10 s connect timeout.
    pub fn new(platform: SocketAddr, interval: Duration) -> FleetConfig {
        FleetConfig {
            platform,
            interval,
            sources: Vec::new(),
            faults: Faults::default(),
            seed: 1,
            backoff: Backoff::default(),
            max_connecting: 256,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a fleet cannot run as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    /// The upload interval is zero.
    ZeroInterval,
    /// A source address of another family than the platform's.
    SourceFamily {
        /// The source address.
        source: IpAddr,
        /// The platform.
        platform: SocketAddr,
    },
    /// A source address list that does not parse.
    BadSources(String),
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::ZeroInterval => f.write_str("the upload interval must be above zero"),
            FleetError::SourceFamily { source, platform } => write!(
                f,
                "source address {source} cannot reach {platform}: one is IPv4, the other IPv6"
            ),
            FleetError::BadSources(why) => write!(f, "source addresses: {why}"),
        }
    }
}

impl std::error::Error for FleetError {}

/// What a fleet did so far, counted by its boxes.
#[derive(Debug, Default)]
pub struct FleetStats {
    connected: AtomicUsize,
    ever_connected: AtomicUsize,
    uploads: AtomicU64,
    acknowledged: AtomicU64,
    answered: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
}

/// A reading of [`FleetStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Boxes connected now.
    pub connected: usize,
    /// Boxes that have been connected at least once.
    pub ever_connected: usize,
    /// Active uploads written to the platform.
    pub uploads: u64,
    /// Uploads the platform acknowledged (a response with the upload's record number).
    pub acknowledged: u64,
    /// Requests of the platform the BMSes answered.
    pub answered: u64,
    /// Connections made again after one was lost.
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
}

impl FleetStats {
    /// The counters now.
    pub fn counts(&self) -> FleetCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FleetCounts {
            connected: self.connected.load(Ordering::Relaxed),
            ever_connected: self.ever_connected.load(Ordering::Relaxed),
            uploads: load(&self.uploads),
            acknowledged: load(&self.acknowledged),
            answered: load(&self.answered),
            reconnects: load(&self.reconnects),
            connect_failures: load(&self.connect_failures),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Display for FleetCounts {
    /// "connected 30  uploads 120  acknowledged 118  answered 2  reconnects 0  connect
    /// failures 0".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connected {}  uploads {}  acknowledged {}  answered {}  reconnects {}  \
             connect failures {}",
            self.connected,
            self.uploads,
            self.acknowledged,
            self.answered,
            self.reconnects,
            self.connect_failures
        )
    }
}

/// Why a box's connection ended.
enum SessionEnd {
    Closed,
    Read(io::Error),
    Write(io::Error),
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::Closed => f.write_str("the platform closed the connection"),
            SessionEnd::Read(error) => write!(f, "read failed: {error}"),
            SessionEnd::Write(error) => write!(f, "write failed: {error}"),
        }
    }
}

/// The record numbers of a box's uploads not yet acknowledged (the newest few).
#[derive(Default)]
struct Outstanding(VecDeque<u32>);

impl Outstanding {
    fn sent(&mut self, sequence: u32) {
        if self.0.len() == OUTSTANDING {
            self.0.pop_front();
        }
        self.0.push_back(sequence);
    }

    /// Whether `sequence` was waiting (it no longer is).
    fn acknowledge(&mut self, sequence: u32) -> bool {
        let found = self.0.iter().position(|&s| s == sequence);
        found.map(|at| self.0.remove(at)).is_some()
    }
}

/// A fleet: its settings, its counters and the gate of connection attempts. Cheap to clone;
/// every box holds one.
#[derive(Clone, Debug)]
pub struct Fleet {
    config: Arc<FleetConfig>,
    stats: Arc<FleetStats>,
    connecting: Arc<Semaphore>,
}

impl Fleet {
    /// A fleet with checked settings.
    pub fn new(config: FleetConfig) -> Result<Fleet, FleetError> {
        if config.interval.is_zero() {
            return Err(FleetError::ZeroInterval);
        }
        let platform = config.platform;
        if let Some(&source) = config
            .sources
            .iter()
            .find(|s| s.is_ipv4() != platform.is_ipv4())
        {
            return Err(FleetError::SourceFamily { source, platform });
        }
        let permits = config.max_connecting.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Fleet {
            config: Arc::new(config),
            stats: Arc::new(FleetStats::default()),
            connecting: Arc::new(Semaphore::new(permits)),
        })
    }

    /// The settings.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<FleetStats> {
        &self.stats
    }

    /// The source address box `index` binds to (`None`: the system's choice).
    pub fn source(&self, index: usize) -> Option<IpAddr> {
        let sources = &self.config.sources;
        (!sources.is_empty()).then(|| sources[index % sources.len()])
    }

    /// Runs data box `index` with `bms` until the task is dropped: connect, upload and
    /// answer, reconnect after a failure.
    pub async fn run_box(self, index: usize, bms: SharedBms) {
        let seed = self.config.seed.wrapping_add(index as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let source = self.source(index);
        let mut attempt = 0u32;
        let mut connected_before = false;
        loop {
            match self.connect(source).await {
                Ok(stream) => {
                    self.note_connected(connected_before);
                    connected_before = true;
                    let started = Instant::now();
                    let end = self.session(stream, &bms, &mut rng).await;
                    self.stats.connected.fetch_sub(1, Ordering::Relaxed);
                    debug!("data box {index}: {end}");
                    if started.elapsed() >= self.config.backoff.max {
                        attempt = 0;
                    }
                }
                Err(error) => {
                    FleetStats::add(&self.stats.connect_failures);
                    debug!(
                        "data box {index} cannot reach {}: {error}",
                        self.config.platform
                    );
                }
            }
            tokio::time::sleep(self.config.backoff.delay(attempt, &mut rng)).await;
            attempt = attempt.saturating_add(1);
        }
    }

    fn note_connected(&self, again: bool) {
        self.stats.connected.fetch_add(1, Ordering::Relaxed);
        if again {
            FleetStats::add(&self.stats.reconnects);
        } else {
            self.stats.ever_connected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One connection attempt, from `source`, within the connect timeout, holding one of
    /// the fleet's connection permits.
    async fn connect(&self, source: Option<IpAddr>) -> io::Result<TcpStream> {
        let _permit = self
            .connecting
            .acquire()
            .await
            .map_err(|_| io::Error::other("the fleet is stopping"))?;
        let platform = self.config.platform;
        let socket = if platform.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0)).map_err(|error| {
                io::Error::new(error.kind(), format!("cannot bind to {ip}: {error}"))
            })?;
        }
        let timeout = self.config.connect_timeout;
        let stream = tokio::time::timeout(timeout, socket.connect(platform))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {} ms", timeout.as_millis()),
                )
            })??;
        stream.set_nodelay(true).ok();
        Ok(stream)
    }

    /// One connection's life: uploads every interval, acknowledgements and requests from
    /// the platform, until it fails.
    async fn session(
        &self,
        stream: TcpStream,
        bms: &SharedBms,
        rng: &mut ChaCha8Rng,
    ) -> SessionEnd {
        let (mut reader, mut writer) = stream.into_split();
        let mut deframer = Deframer::new();
        let mut buffer = [0u8; READ_BUFFER];
        let interval = self.config.interval;
        let phase = interval.mul_f64(rng.random::<f64>());
        let mut ticker = tokio::time::interval_at(Instant::now() + phase, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut outstanding = Outstanding::default();
        loop {
            let mut replies = Vec::new();
            tokio::select! {
                // Every interval, from the random phase: an active upload.
                _ = ticker.tick() => {
                    let frame = lock(bms).upload();
                    if let Ok(checked) = Frame::new_checked(frame.as_slice()) {
                        outstanding.sent(checked.record_number().sequence());
                    }
                    if let Err(error) = self.send(&mut writer, frame, rng).await {
                        return SessionEnd::Write(error);
                    }
                    FleetStats::add(&self.stats.uploads);
                }
                // The platform's acknowledgements and requests, on the same connection.
                read = reader.read(&mut buffer) => {
                    let n = match read {
                        Ok(0) => return SessionEnd::Closed,
                        Ok(n) => n,
                        Err(error) => return SessionEnd::Read(error),
                    };
                    deframer.feed(&buffer[..n], |event| match event {
                        Event::Frame(frame, _) => {
                            replies.extend(self.handle_frame(frame, bms, &mut outstanding));
                        }
                        Event::Error(error) => debug!("data box: from the platform: {error}"),
                    });
                }
            }
            for reply in replies {
                if let Err(error) = self.send(&mut writer, reply, rng).await {
                    return SessionEnd::Write(error);
                }
                FleetStats::add(&self.stats.answered);
            }
        }
    }

    /// An acknowledgement is counted; a request is answered by the BMS (the reply, if any).
    fn handle_frame(
        &self,
        frame: Frame<&[u8]>,
        bms: &SharedBms,
        outstanding: &mut Outstanding,
    ) -> Option<Vec<u8>> {
        if frame.transport_byte() == u8::from(Transport::Response) {
            if outstanding.acknowledge(frame.record_number().sequence()) {
                FleetStats::add(&self.stats.acknowledged);
            }
            return None;
        }
        lock(bms).handle_request(frame.as_bytes())
    }

    /// Writes one frame, through the configured faults.
    async fn send(
        &self,
        writer: &mut OwnedWriteHalf,
        frame: Vec<u8>,
        rng: &mut ChaCha8Rng,
    ) -> io::Result<()> {
        let chunks = self.config.faults.apply(rng, frame);
        let count = chunks.len();
        for (index, chunk) in chunks.into_iter().enumerate() {
            writer.write_all(&chunk).await?;
            if index + 1 < count {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
}

/// Parses a list of source addresses: comma-separated addresses and inclusive ranges
/// (`"127.0.0.1-127.0.0.50,127.0.1.1"`), at most [`MAX_SOURCES`] in all.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, FleetError> {
    let mut sources = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => push_range(&mut sources, first.trim(), last.trim())?,
            None => sources.push(parse_ip(part)?),
        }
        if sources.len() > MAX_SOURCES {
            return Err(FleetError::BadSources(format!(
                "more than {MAX_SOURCES} addresses"
            )));
        }
    }
    if sources.is_empty() {
        return Err(FleetError::BadSources("no address given".to_string()));
    }
    Ok(sources)
}

fn parse_ip(text: &str) -> Result<IpAddr, FleetError> {
    text.parse()
        .map_err(|_| FleetError::BadSources(format!("{text:?} is not an IP address")))
}

fn push_range(sources: &mut Vec<IpAddr>, first: &str, last: &str) -> Result<(), FleetError> {
    let (from, to) = (parse_ip(first)?, parse_ip(last)?);
    let (start, end) = match (from, to) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
        _ => {
            return Err(FleetError::BadSources(format!(
                "{first}-{last} mixes IPv4 and IPv6"
            )))
        }
    };
    if end < start {
        return Err(FleetError::BadSources(format!(
            "{first}-{last} ends before it starts"
        )));
    }
    if end - start >= MAX_SOURCES as u128 {
        return Err(FleetError::BadSources(format!(
            "{first}-{last} has more than {MAX_SOURCES} addresses"
        )));
    }
    for value in start..=end {
        sources.push(match from {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(0))),
            IpAddr::V6(_) => IpAddr::V6(value.into()),
        });
    }
    Ok(())
}

/// The source addresses a fleet of `boxes` uses without being told: for an IPv4 loopback
/// platform, one 127.0.0.x address per [`BOXES_PER_SOURCE`] boxes from 127.0.0.1 when that
/// is more than one; otherwise none (the system's choice).
pub fn auto_sources(platform: SocketAddr, boxes: usize) -> Vec<IpAddr> {
    let count = boxes.div_ceil(BOXES_PER_SOURCE).min(254);
    if !platform.ip().is_loopback() || !platform.is_ipv4() || count <= 1 {
        return Vec::new();
    }
    (1..=count)
        .map(|host| IpAddr::V4(Ipv4Addr::new(127, 0, 0, host as u8)))
        .collect()
}

/// Raises this process's soft limit of open files to at least `wanted` if the hard limit
/// allows; returns the soft limit now in force.
pub fn raise_open_file_limit(wanted: u64) -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft >= wanted {
        return Ok(soft);
    }
    let raised = wanted.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, raised, hard).map_err(io::Error::from)?;
    Ok(raised)
}

/// A range of source addresses in words: "127.0.0.1-127.0.0.4 (4 addresses)".
pub fn describe_sources(sources: &[IpAddr]) -> String {
    match sources {
        [] => "the system's source address".to_string(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}-{last} ({} addresses)", sources.len()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn source_lists_expand_ranges_and_refuse_what_cannot_work() {
        let sources = parse_sources("127.0.0.1-127.0.0.3, 127.0.1.1").unwrap();
        let text: Vec<String> = sources.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.1.1"]);
        assert_eq!(parse_sources("::1").unwrap().len(), 1);
        let error = |text: &str| parse_sources(text).unwrap_err().to_string();
        assert_eq!(
            error("127.0.0.9-127.0.0.1"),
            "source addresses: 127.0.0.9-127.0.0.1 ends before it starts"
        );
        assert_eq!(
            error("127.0.0.1-::1"),
            "source addresses: 127.0.0.1-::1 mixes IPv4 and IPv6"
        );
        assert_eq!(
            error("localhost"),
            "source addresses: \"localhost\" is not an IP address"
        );
        assert_eq!(
            error("10.0.0.0-10.1.0.0"),
            "source addresses: 10.0.0.0-10.1.0.0 has more than 65536 addresses"
        );
        assert_eq!(error(""), "source addresses: no address given");
    }

    #[test]
    fn auto_sources_spread_large_loopback_fleets_only() {
        let loopback: SocketAddr = "127.0.0.1:9100".parse().unwrap();
        assert!(auto_sources(loopback, 5_000).is_empty());
        let sources = auto_sources(loopback, 19_000);
        assert_eq!(
            describe_sources(&sources),
            "127.0.0.1-127.0.0.4 (4 addresses)"
        );
        let remote: SocketAddr = "192.0.2.7:9100".parse().unwrap();
        assert!(auto_sources(remote, 19_000).is_empty());
    }

    #[test]
    fn backoff_grows_to_its_ceiling_and_spreads_a_storm() {
        let backoff = Backoff::default();
        let mut waits = Vec::new();
        for seed in 0..1000u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let first = backoff.delay(0, &mut rng);
            assert!(first < Duration::from_millis(500));
            assert!(backoff.delay(40, &mut rng) < Duration::from_secs(30));
            waits.push(first);
        }
        // 1000 boxes losing their connection at once come back spread over the 500 ms.
        waits.sort();
        let early = waits
            .iter()
            .filter(|w| **w < Duration::from_millis(100))
            .count();
        assert!(
            (120..=280).contains(&early),
            "{early} of 1000 within 100 ms"
        );
        waits.dedup();
        assert!(waits.len() > 990, "the waits are not synchronised");
    }

    #[test]
    fn a_source_of_the_other_family_is_refused() {
        let mut config = FleetConfig::new("127.0.0.1:9".parse().unwrap(), Duration::from_secs(1));
        config.sources = vec!["::1".parse().unwrap()];
        assert_eq!(
            Fleet::new(config).unwrap_err().to_string(),
            "source address ::1 cannot reach 127.0.0.1:9: one is IPv4, the other IPv6"
        );
    }
}
