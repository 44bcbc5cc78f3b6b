//! `bmslink read`: read all or chosen identifiers from a BMS, once or every interval.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use bmslink_core::session::Operation;
use bmslink_proto::{Body, Identifier, Message};
use clap::Args;
use serde_json::json;
use tracing::warn;

use crate::link::{Link, LinkArgs, Outcome};
use crate::render::{self, Selection};

/// Arguments of `bmslink read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    link: LinkArgs,
    /// Identifiers to show, by name (total_voltage) or hex (0x83); all when none is given.
    identifiers: Vec<String>,
    /// Read the chosen identifiers one by one (command 03) instead of one read-all (06).
    #[arg(long, requires = "identifiers")]
    single: bool,
    /// JSON (one object per read) instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep polling at this interval (e.g. 2s) until interrupted.
    #[arg(long, value_parser = humantime::parse_duration)]
    watch: Option<Duration>,
}

/// Parses identifier names or hex codes, naming the one that is unknown.
pub fn parse_identifiers(texts: &[String]) -> Result<Vec<Identifier>> {
    texts
        .iter()
        .map(|text| match Identifier::lookup(text) {
            Some(id) => Ok(id),
            None => bail!("unknown identifier '{text}': run `bmslink identifiers` for the list"),
        })
        .collect()
}

/// Runs `bmslink read`.
pub async fn run(args: ReadArgs) -> Result<()> {
    let ids = parse_identifiers(&args.identifiers)?;
    let selection = Selection::only(ids.clone());
    let config = args.link.session_config(None)?;
    if let Some(interval) = args.watch {
        if interval < config.packet_gap {
            bail!("--watch {interval:?} is shorter than the protocol's 100 ms between packets");
        }
    }
    let mut link = Link::open(args.link.endpoint()?, config).await?;
    let Some(interval) = args.watch else {
        return read_once(&mut link, &ids, args.single, &selection, args.json).await;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let clear = !args.json && std::io::stdout().is_terminal();
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        tokio::select! {
            result = read_once(&mut link, &ids, args.single, &selection, args.json) => {
                if let Err(error) = result {
                    warn!("{error:#}");
                    if args.json {
                        println!("{}", json!({"time": timestamp(), "port": link.endpoint().to_string(), "error": format!("{error:#}")}));
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn read_once(
    link: &mut Link,
    ids: &[Identifier],
    single: bool,
    selection: &Selection,
    json: bool,
) -> Result<()> {
    let started = std::time::Instant::now();
    let frames = if single {
        let mut frames = Vec::new();
        for id in ids {
            frames.push(data(link.execute(Operation::Read(*id)).await?)?);
        }
        frames
    } else {
        vec![data(link.execute(Operation::ReadAll).await?)?]
    };
    let elapsed = started.elapsed();
    let mut fields = serde_json::Map::new();
    let mut table = String::new();
    let mut missing = Vec::new();
    for frame in &frames {
        let message = Message::parse(frame)?;
        let Body::Data(info) = message.body else {
            bail!("the reply carries no data")
        };
        if let serde_json::Value::Object(object) = render::fields_json(&info, selection) {
            fields.extend(object);
        }
        table.push_str(&render::fields_table(&info, selection));
        missing.extend(selection.missing_from(&info));
    }
    if single {
        missing.clear(); // each single read was matched on its identifier
    }
    let mut out = std::io::stdout().lock();
    if json {
        let line = json!({
            "time": timestamp(),
            "port": link.endpoint().to_string(),
            "milliseconds": elapsed.as_millis() as u64,
            "fields": fields,
            "missing": missing.iter().map(|id| id.name()).collect::<Vec<_>>(),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "{} · {} · {} ms",
            link.endpoint(),
            timestamp(),
            elapsed.as_millis()
        )?;
        write!(out, "{table}")?;
        for id in &missing {
            writeln!(
                out,
                "  {:<44} not reported by this BMS",
                format!("{} (0x{:02X})", id.name(), id.code())
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn data(outcome: Outcome) -> Result<Vec<u8>> {
    match outcome {
        Outcome::Data(frame) => Ok(frame),
        other => bail!("unexpected outcome of a read: {other:?}"),
    }
}

/// Wall-clock time as RFC 3339 (UTC, seconds).
pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
