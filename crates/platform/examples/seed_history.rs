//! Fills a SQLite platform database with a fleet's month of history, for the web app's load
//! figure (`benches/web_load.sh`): TERMINALS terminals (default 1,000), each with DAYS days
//! (default 30) of 1-minute roll-ups (43,200 per terminal for 30 days: 43.2 M rows), the hour
//! roll-ups of those minutes, a latest upload, and a few alarms (ended ones over the month, an
//! active one on every 25th terminal).
//!
//! ```text
//! cargo run --release -p bmslink-platform --example seed_history -- PATH [TERMINALS] [DAYS]
//! ```
//!
//! The file is created (its schema by [`SqliteStore::open`], as the platform would) and must
//! not exist yet. Rows are written directly with prepared statements in large transactions,
//! journal off (a crash leaves a file to delete, nothing else), and the by-bucket index of the
//! minute roll-ups is built once at the end rather than row by row; the journal mode is set
//! back to WAL, as the platform keeps it. Values follow a daily cycle per pack (charging by
//! day, discharging in the evening, SOC integrated from the current, cells and temperatures
//! following), with 12 samples per minute as from a box uploading every 5 s.
//! Printed: rows written, rows per second, seconds, and the database's size.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bmslink_platform::store::sqlite::SqliteStore;
use bmslink_proto::frame::{FrameBuilder, MAX_FRAME_LEN};
use bmslink_proto::{vectors, Body, Command, Header, Message, RecordNumber, Source, TerminalId};
use rusqlite::{params, Connection};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// The first seeded terminal's number (6 hex digits: 010000).
const TERMINAL_BASE: u32 = 0x01_0000;
/// Uploads per minute (a box every 5 s).
const SAMPLES: u32 = 12;
/// Cells in series.
const CELLS: usize = 16;
/// Terminals per transaction.
const TERMINALS_PER_COMMIT: u32 = 20;

const INSERT_MINUTE: &str = "
INSERT INTO seed_minute (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                         soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const INSERT_HOUR: &str = "
INSERT INTO seed_hour (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                       soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const INSERT_TERMINAL: &str = "
INSERT INTO terminals (id, registration, name, first_seen, last_seen, online)
VALUES (?1, 'approved', ?2, ?3, ?4, 0)";

const INSERT_LATEST: &str = "
INSERT INTO latest (terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box,
                    t_battery, cells, warnings, status, raw)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const INSERT_ALARM: &str = "
INSERT INTO alarms (terminal, kind, detail, started, ended, ack_by, ack_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// One minute of one pack, as the roll-up keeps it.
#[derive(Clone, Copy, Default)]
struct Bucket {
    samples: u32,
    voltage_sum: f64,
    current_sum: f64,
    power_sum: f64,
    soc_sum: f64,
    t_min: i64,
    t_max: i64,
    cell_min: i64,
    cell_max: i64,
    charged_wh: f64,
    discharged_wh: f64,
}

impl Bucket {
    /// Adds a minute to an hour.
    fn add(&mut self, minute: &Bucket) {
        if self.samples == 0 {
            *self = *minute;
            return;
        }
        self.samples += minute.samples;
        self.voltage_sum += minute.voltage_sum;
        self.current_sum += minute.current_sum;
        self.power_sum += minute.power_sum;
        self.soc_sum += minute.soc_sum;
        self.t_min = self.t_min.min(minute.t_min);
        self.t_max = self.t_max.max(minute.t_max);
        self.cell_min = self.cell_min.min(minute.cell_min);
        self.cell_max = self.cell_max.max(minute.cell_max);
        self.charged_wh += minute.charged_wh;
        self.discharged_wh += minute.discharged_wh;
    }
}

/// A pack's state while its month is generated.
struct Pack {
    soc: f64,
    /// Where in the day this pack's cycle is (sites in other places), ms.
    phase_ms: i64,
    /// A small deterministic noise source.
    noise: u64,
    /// The last minute's values, for the latest row.
    last: (i64, i64, f64, i64, [u16; CELLS]),
}

impl Pack {
    fn new(index: u32) -> Pack {
        Pack {
            soc: 40.0 + f64::from(index % 50),
            phase_ms: i64::from(index % 24) * HOUR_MS / 4,
            noise: 0x9E37_79B9_7F4A_7C15 ^ u64::from(index).wrapping_mul(0xD1B5_4A32_D192_ED03),
            last: (0, 0, 0.0, 0, [0; CELLS]),
        }
    }

    /// Uniform in [-1, 1).
    fn jitter(&mut self) -> f64 {
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 7;
        self.noise ^= self.noise << 17;
        (self.noise >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// The minute starting at `bucket`.
    fn minute(&mut self, bucket: i64) -> Bucket {
        let hour_of_day = ((bucket + self.phase_ms).rem_euclid(DAY_MS)) as f64 / HOUR_MS as f64;
        let mut current_a = match hour_of_day {
            h if (8.0..15.0).contains(&h) => 13.0,
            h if (18.0..23.0).contains(&h) => -17.0,
            _ => 0.3,
        } + 2.0 * self.jitter();
        // A full pack stops charging; an empty one stops discharging.
        if (self.soc >= 99.5 && current_a > 0.0) || (self.soc <= 5.0 && current_a < 0.0) {
            current_a = 0.2 * self.jitter();
        }
        self.soc = (self.soc + current_a / 60.0).clamp(0.0, 100.0); // 100 Ah pack
        let cell_mv = 3200.0 + 1.6 * self.soc + 0.8 * current_a;
        let mut cells = [0u16; CELLS];
        for (i, cell) in cells.iter_mut().enumerate() {
            *cell = (cell_mv + ((i * 7) % 11) as f64 - 5.0 + 2.0 * self.jitter()) as u16;
        }
        let voltage_mv: f64 = cells.iter().map(|&c| f64::from(c)).sum();
        let current_ma = (current_a * 1000.0).round();
        let power_w = voltage_mv * current_ma / 1e6;
        let temperature = 22.0 + current_a.abs() / 8.0 + 2.0 * self.jitter();
        let samples = f64::from(SAMPLES);
        let cell_min = i64::from(cells.iter().copied().min().unwrap_or_default());
        let cell_max = i64::from(cells.iter().copied().max().unwrap_or_default());
        self.last = (
            voltage_mv as i64,
            current_ma as i64,
            self.soc,
            temperature as i64,
            cells,
        );
        Bucket {
            samples: SAMPLES,
            voltage_sum: voltage_mv * samples,
            current_sum: current_ma * samples,
            power_sum: power_w * samples,
            soc_sum: self.soc.round() * samples,
            t_min: temperature as i64 - 1,
            t_max: temperature as i64 + 1,
            cell_min,
            cell_max,
            charged_wh: power_w.max(0.0) / 60.0,
            discharged_wh: (-power_w).max(0.0) / 60.0,
        }
    }
}

/// The fields of the captured upload A03, in wire order (the latest rows' raw frames).
fn a03_fields() -> Result<Vec<(bmslink_proto::Identifier, Vec<u8>)>, String> {
    let frame = vectors::bytes("A03").ok_or("no test vector A03")?;
    let message = Message::parse(&frame).map_err(|e| e.to_string())?;
    let Body::Data(info) = message.body else {
        return Err("A03 is not a data frame".into());
    };
    Ok(info.fields().map(|f| (f.id, f.bytes.to_vec())).collect())
}

/// An upload frame of `terminal` with A03's fields.
fn upload(
    terminal: u32,
    record: u32,
    fields: &[(bmslink_proto::Identifier, Vec<u8>)],
) -> Result<Vec<u8>, String> {
    let terminal = TerminalId::new(0, terminal).ok_or("terminal number out of range")?;
    let header = Header {
        terminal,
        command: Command::ReadAll,
        source: Source::DataBox,
        transport: bmslink_proto::Transport::ActiveUpload,
        record: RecordNumber::new(0, record),
    };
    let mut buffer = [0u8; MAX_FRAME_LEN];
    let mut builder = FrameBuilder::new(&mut buffer, header).map_err(|e| format!("{e:?}"))?;
    for (id, bytes) in fields {
        builder
            .push_field(*id, bytes)
            .map_err(|e| format!("{e:?}"))?;
    }
    builder
        .finish()
        .map(<[u8]>::to_vec)
        .map_err(|e| format!("{e:?}"))
}

struct Options {
    path: PathBuf,
    terminals: u32,
    days: i64,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: seed_history PATH [TERMINALS] [DAYS]";
    let path = PathBuf::from(args.next().ok_or(usage)?);
    let terminals = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| format!("TERMINALS: {n:?}; {usage}"))?,
        None => 1000,
    };
    let days = match args.next() {
        Some(n) => n.parse().map_err(|_| format!("DAYS: {n:?}; {usage}"))?,
        None => 30,
    };
    if terminals == 0 || terminals > 100_000 || !(1..=365).contains(&days) {
        return Err(format!("TERMINALS is 1 to 100000, DAYS 1 to 365; {usage}"));
    }
    Ok(Options {
        path,
        terminals,
        days,
    })
}

fn main() -> ExitCode {
    match options().and_then(|options| seed(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seed_history: {error}");
            ExitCode::FAILURE
        }
    }
}

fn sql(error: rusqlite::Error) -> String {
    format!("SQLite: {error}")
}

fn seed(options: &Options) -> Result<(), String> {
    if options.path.exists() {
        return Err(format!(
            "{} exists; give a new file",
            options.path.display()
        ));
    }
    // The schema, exactly as the platform creates it.
    drop(SqliteStore::open(&options.path).map_err(|e| e.to_string())?);

    // The store's writer thread closes its connection on its own time: retry until the
    // journal can be switched off (which needs the file to itself). Buckets are generated a
    // terminal at a time into plain staging tables, then copied in key order (bucket,
    // terminal): appending beats inserting at one place per terminal.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let mut db = loop {
        let db = Connection::open(&options.path).map_err(sql)?;
        match db.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             PRAGMA cache_size = -1048576; PRAGMA temp_store = MEMORY;
             CREATE TABLE seed_minute AS SELECT * FROM rollup_minute WHERE 0;
             CREATE TABLE seed_hour AS SELECT * FROM rollup_hour WHERE 0;",
        ) {
            Ok(()) => break db,
            Err(error) if Instant::now() > deadline => return Err(sql(error)),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    let fields = a03_fields()?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis() as i64;
    let end = now - now.rem_euclid(MINUTE_MS);
    let start = end - options.days * DAY_MS;
    let start = start - start.rem_euclid(HOUR_MS);
    let minutes_per_terminal = (end - start) / MINUTE_MS;

    let started = Instant::now();
    let (mut minutes, mut hours, mut alarms) = (0u64, 0u64, 0u64);
    let mut next_report = Instant::now();
    for first in (0..options.terminals).step_by(TERMINALS_PER_COMMIT as usize) {
        let tx = db.transaction().map_err(sql)?;
        {
            let mut minute_rows = tx.prepare_cached(INSERT_MINUTE).map_err(sql)?;
            let mut hour_rows = tx.prepare_cached(INSERT_HOUR).map_err(sql)?;
            let mut terminal_rows = tx.prepare_cached(INSERT_TERMINAL).map_err(sql)?;
            let mut latest_rows = tx.prepare_cached(INSERT_LATEST).map_err(sql)?;
            let mut alarm_rows = tx.prepare_cached(INSERT_ALARM).map_err(sql)?;
            let last = (first + TERMINALS_PER_COMMIT).min(options.terminals);
            for index in first..last {
                let terminal = TERMINAL_BASE + index;
                let mut pack = Pack::new(index);
                let mut hour = Bucket::default();
                let mut hour_start = start;
                for m in 0..minutes_per_terminal {
                    let bucket = start + m * MINUTE_MS;
                    if bucket - hour_start >= HOUR_MS {
                        insert_bucket(&mut hour_rows, terminal, hour_start, &hour)?;
                        hours += 1;
                        hour = Bucket::default();
                        hour_start = bucket;
                    }
                    let minute = pack.minute(bucket);
                    insert_bucket(&mut minute_rows, terminal, bucket, &minute)?;
                    hour.add(&minute);
                    minutes += 1;
                }
                insert_bucket(&mut hour_rows, terminal, hour_start, &hour)?;
                hours += 1;

                terminal_rows
                    .execute(params![terminal, format!("pack-{index:04}"), start, now])
                    .map_err(sql)?;
                let (voltage_mv, current_ma, soc, temperature, cells) = pack.last;
                let record = (minutes_per_terminal * i64::from(SAMPLES)) as u32;
                let cells_blob: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
                latest_rows
                    .execute(params![
                        terminal,
                        record,
                        now,
                        voltage_mv,
                        current_ma,
                        soc.round() as i64,
                        temperature + 5,
                        temperature - 2,
                        temperature,
                        cells_blob,
                        0,
                        3,
                        upload(terminal, record, &fields)?,
                    ])
                    .map_err(sql)?;
                alarms += seed_alarms(&mut alarm_rows, &mut pack, terminal, index, start, now)?;
            }
        }
        tx.commit().map_err(sql)?;
        if next_report <= Instant::now() {
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{} terminals, {minutes} minute rows in {seconds:.0} s ({:.0} rows/s)",
                (first + TERMINALS_PER_COMMIT).min(options.terminals),
                minutes as f64 / seconds
            );
            next_report = Instant::now() + std::time::Duration::from_secs(10);
        }
    }
    let rows_seconds = started.elapsed().as_secs_f64();
    eprintln!("copying the roll-ups into their tables in key order");
    let copy_started = Instant::now();
    db.execute_batch(
        "INSERT INTO rollup_minute SELECT * FROM seed_minute ORDER BY bucket, terminal;
         INSERT INTO rollup_hour SELECT * FROM seed_hour ORDER BY bucket, terminal;
         DROP TABLE seed_minute;
         DROP TABLE seed_hour;
         INSERT INTO maintenance (id, minute_from) VALUES (1, (SELECT max(bucket) FROM rollup_minute))
         ON CONFLICT (id) DO UPDATE SET minute_from = excluded.minute_from;",
    )
    .map_err(sql)?;
    let copy_seconds = copy_started.elapsed().as_secs_f64();
    db.execute_batch("PRAGMA locking_mode = NORMAL; PRAGMA journal_mode = WAL;")
        .map_err(sql)?;
    drop(db);
    let total = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&options.path)
        .map_err(|e| e.to_string())?
        .len();
    println!(
        "seeded {}: {} terminals x {} days: {minutes} minute roll-ups, {hours} hour roll-ups, {} latest rows, {alarms} alarms",
        options.path.display(),
        options.terminals,
        options.days,
        options.terminals
    );
    println!(
        "rows: {:.0} s ({:.0} minute rows/s, {:.0} rows/s in all); copy in key order: {copy_seconds:.0} s; total {total:.0} s",
        rows_seconds,
        minutes as f64 / rows_seconds,
        (minutes + hours + u64::from(options.terminals) * 2 + alarms) as f64 / rows_seconds
    );
    println!(
        "database: {:.2} GiB ({size} bytes)",
        size as f64 / f64::from(1u32 << 30)
    );
    Ok(())
}

fn insert_bucket(
    statement: &mut rusqlite::CachedStatement<'_>,
    terminal: u32,
    bucket: i64,
    b: &Bucket,
) -> Result<(), String> {
    statement
        .execute(params![
            terminal,
            bucket,
            b.samples,
            b.voltage_sum,
            b.current_sum,
            b.power_sum,
            b.soc_sum,
            b.t_min,
            b.t_max,
            b.cell_min,
            b.cell_max,
            b.charged_wh,
            b.discharged_wh,
        ])
        .map(drop)
        .map_err(sql)
}

/// Two alarms that ended during the month (one acknowledged), and an active one on every
/// 25th terminal.
fn seed_alarms(
    statement: &mut rusqlite::CachedStatement<'_>,
    pack: &mut Pack,
    terminal: u32,
    index: u32,
    start: i64,
    now: i64,
) -> Result<u64, String> {
    let span = (now - start - DAY_MS) as f64;
    let at = |pack: &mut Pack| start + ((pack.jitter() + 1.0) / 2.0 * span) as i64;
    let low = at(pack);
    statement
        .execute(params![
            terminal,
            "soc_low",
            "SOC 9 % below the 10 % alarm",
            low,
            low + 40 * MINUTE_MS,
            "seed",
            low + 5 * MINUTE_MS,
        ])
        .map_err(sql)?;
    let hot = at(pack);
    statement
        .execute(params![
            terminal,
            "bms:battery_over_temperature",
            "the BMS reports battery over-temperature",
            hot,
            hot + 12 * MINUTE_MS,
            None::<String>,
            None::<i64>,
        ])
        .map_err(sql)?;
    if index % 25 != 0 {
        return Ok(2);
    }
    statement
        .execute(params![
            terminal,
            "cell_spread",
            "cell spread 312 mV above the 300 mV alarm",
            now - 30 * MINUTE_MS,
            None::<i64>,
            None::<String>,
            None::<i64>,
        ])
        .map_err(sql)?;
    Ok(3)
}
