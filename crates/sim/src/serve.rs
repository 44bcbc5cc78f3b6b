//! Serving virtual BMSes over real transports: a TCP listener per pack, a pseudo-terminal per
//! pack (a serial port to any program), or a TCP client that uploads like a 4G data box.
//!
//! One task per pack line owns it: it deframes what arrives, lets the BMS answer, applies the
//! configured faults to the reply, and writes it. A clock task advances every pack's virtual time
//! in 1 s steps, `speed` times faster than the wall clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bmslink_proto::{Deframer, Event};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::bms::VirtualBms;

/// A virtual BMS shared by its line task and the clock.
pub type SharedBms = Arc<Mutex<VirtualBms>>;

/// Locks a BMS; a poisoned lock (a panicked task) still holds a usable simulation.
pub fn lock(bms: &SharedBms) -> MutexGuard<'_, VirtualBms> {
    bms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Faults injected on a line, in the BMS's replies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that a reply is dropped.
    pub drop: f64,
    /// Probability that a reply has one byte flipped.
    pub corrupt: f64,
    /// Delay before each reply.
    pub delay: Duration,
    /// Send each reply in two writes with a pause between them.
    pub split: bool,
    /// Answer nothing at all.
    pub silent: bool,
}

impl Faults {
    /// What becomes of one reply: the chunks to write (none if dropped).
    pub(crate) fn apply(&self, rng: &mut ChaCha8Rng, mut reply: Vec<u8>) -> Vec<Vec<u8>> {
        if self.silent || rng.random::<f64>() < self.drop {
            return Vec::new();
        }
        if rng.random::<f64>() < self.corrupt && !reply.is_empty() {
            let at = rng.random_range(0..reply.len());
            reply[at] ^= 1 << rng.random_range(0..8);
        }
        if self.split && reply.len() > 1 {
            let at = rng.random_range(1..reply.len());
            let tail = reply.split_off(at);
            return vec![reply, tail];
        }
        vec![reply]
    }
}

/// Advances every pack by `speed` x the wall clock, in steps of at most 1 s, waking every
/// 100 ms.
pub async fn run_clock(packs: Vec<SharedBms>, speed: f64) {
    run_clock_every(packs, speed, Duration::from_millis(100)).await;
}

/// Packs stepped between two yields to the other tasks, so that a clock of thousands of packs
/// does not hold the runtime for a whole pass.
const PACKS_PER_YIELD: usize = 512;

/// [`run_clock`] waking every `tick` (at least 10 ms): at real time (`speed` < 10) each wake
/// steps every pack by `tick`, so a fleet of thousands of slowly changing packs is stepped
/// every second rather than ten times a second, for a tenth of the work.
pub async fn run_clock_every(packs: Vec<SharedBms>, speed: f64, tick: Duration) {
    let tick = tick.max(Duration::from_millis(10));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut owed = 0.0f64;
    loop {
        interval.tick().await;
        owed += tick.as_secs_f64() * speed;
        let whole = owed.floor();
        if whole < 1.0 && speed >= 10.0 {
            continue;
        }
        let advance = if speed < 10.0 { owed } else { whole };
        owed -= advance;
        for (index, bms) in packs.iter().enumerate() {
            step_by(bms, advance);
            if (index + 1) % PACKS_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Steps one pack by `seconds`, at most 1 s at a time.
fn step_by(bms: &SharedBms, seconds: f64) {
    let mut bms = lock(bms);
    let mut left = seconds;
    while left > 1e-9 {
        let dt = left.min(1.0);
        bms.step(Duration::from_secs_f64(dt));
        left -= dt;
    }
}

/// Serves one BMS on a byte stream until it closes.
async fn serve_line<L: AsyncRead + AsyncWrite + Unpin>(
    mut line: L,
    bms: SharedBms,
    faults: Faults,
    seed: u64,
    name: &str,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut deframer = Deframer::new();
    let mut buffer = [0u8; 2048];
    loop {
        let n = match line.read(&mut buffer).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(error) => {
                debug!("{name}: {error}");
                return;
            }
        };
        let mut replies = Vec::new();
        deframer.feed(&buffer[..n], |event| match event {
            Event::Frame(frame, _) => {
                if let Some(reply) = lock(&bms).handle_request(frame.as_bytes()) {
                    replies.push(reply);
                }
            }
            Event::Error(error) => warn!("{name}: {error}"),
        });
        for reply in replies {
            if !faults.delay.is_zero() {
                tokio::time::sleep(faults.delay).await;
            }
            let chunks = faults.apply(&mut rng, reply);
            let count = chunks.len();
            for (index, chunk) in chunks.into_iter().enumerate() {
                if line
                    .write_all(&chunk)
                    .await
                    .and(line.flush().await)
                    .is_err()
                {
                    return;
                }
                if index + 1 < count {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// Binds a listener for one pack; the caller spawns [`serve_tcp`] with it.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves one BMS on a TCP listener, one connection after another (a serial line carries one
/// controller at a time; a converter typically accepts one client).
pub async fn serve_tcp(listener: TcpListener, bms: SharedBms, faults: Faults, seed: u64) {
    let name = listener
        .local_addr()
        .map_or_else(|_| "tcp".to_string(), |a| format!("tcp://{a}"));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                debug!("{name}: controller {peer} connected");
                stream.set_nodelay(true).ok();
                serve_line(stream, bms.clone(), faults, seed, &name).await;
                debug!("{name}: controller {peer} left");
            }
            Err(error) => {
                warn!("{name}: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A pseudo-terminal pair: programs open `path` like a serial port; the BMS serves the other
/// end.
pub struct Pty {
    /// The serial-port side, for other programs.
    pub path: PathBuf,
    master: std::fs::File,
    /// Held open so the line stays up while no program has the port open.
    _slave: std::os::fd::OwnedFd,
}

impl Pty {
    /// Opens a raw (8-bit clean, no echo) pseudo-terminal pair.
    pub fn open() -> std::io::Result<Pty> {
        use nix::sys::termios;
        let pair = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        let mut attributes = termios::tcgetattr(&pair.slave).map_err(std::io::Error::from)?;
        termios::cfmakeraw(&mut attributes);
        termios::tcsetattr(&pair.slave, termios::SetArg::TCSANOW, &attributes)
            .map_err(std::io::Error::from)?;
        let path = nix::unistd::ttyname(&pair.slave).map_err(std::io::Error::from)?;
        Ok(Pty {
            path,
            master: std::fs::File::from(pair.master),
            _slave: pair.slave,
        })
    }

    /// Serves one BMS on the pty until the process ends.
    pub async fn serve(self, bms: SharedBms, faults: Faults, seed: u64) {
        let name = self.path.display().to_string();
        let master = tokio::fs::File::from_std(self.master);
        // The slave end stays open here, so the master never sees end-of-file while programs
        // open and close the port.
        let _slave = self._slave;
        serve_line(master, bms, faults, seed, &name).await;
        warn!("{name}: the pseudo-terminal closed");
    }
}

/// Uploads like a 4G data box: connects to `platform`, sends an active upload every
/// `interval` (virtual time runs on regardless), answers the platform's requests on the same
/// connection, and reconnects with backoff and jitter when the connection fails. A fleet of
/// one ([`crate::fleet`]); `platform` is resolved again while it does not resolve.
pub async fn run_data_box(
    platform: String,
    bms: SharedBms,
    interval: Duration,
    faults: Faults,
    seed: u64,
) {
    let backoff = crate::fleet::Backoff::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut attempt = 0;
    let address = loop {
        match tokio::net::lookup_host(&platform)
            .await
            .map(|mut a| a.next())
        {
            Ok(Some(address)) => break address,
            Ok(None) => warn!("data box: {platform} resolves to no address"),
            Err(error) => warn!("data box: cannot resolve {platform}: {error}"),
        }
        tokio::time::sleep(backoff.delay(attempt, &mut rng)).await;
        attempt += 1;
    };
    let mut config = crate::fleet::FleetConfig::new(address, interval);
    config.faults = faults;
    config.seed = seed;
    match crate::fleet::Fleet::new(config) {
        Ok(fleet) => {
            info!("data box uploading to {platform} ({address})");
            fleet.run_box(0, bms).await;
        }
        Err(error) => warn!("data box: {error}"),
    }
}
