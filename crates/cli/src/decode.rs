//! `bmslink decode`: frames from a hex string, a capture file or stdin, as a table or JSON lines.
//!
//! Input is either raw bytes (a capture written by `cat /dev/ttyUSB0 > capture.bin`, say) or a
//! hex dump: plain hex (`4E 57 00 13 ...`, `4E5700...`, `4E:57:...`, `4E.57...` as in serial
//! debug logs), `xxd` output, or `hexdump -C` output. Offsets and ASCII columns are skipped, and
//! `#` starts a comment. Everything is fed through the streaming deframer, so frames split over
//! lines, noise between frames and corrupted frames are handled as on a live line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bmslink_proto::{DeframeError, Deframer, Event, Frame, Message, Stats};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::render::{self, Selection};

/// Arguments of `bmslink decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Hex bytes of one or more frames (spaces, colons and dots allowed). Without it, reads
    /// `--file`, or stdin.
    hex: Vec<String>,
    /// A capture file (raw bytes or a hex dump); `-` for stdin.
    #[arg(short, long, conflicts_with = "hex")]
    file: Option<PathBuf>,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Only a summary: frames, errors by kind, bytes dropped, throughput.
    #[arg(long)]
    stats: bool,
    /// Exit with status 3 if any frame is bad or malformed (for scripts and CI).
    #[arg(long)]
    strict: bool,
}

/// How the input is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Raw,
    HexText,
}

/// What `decode` prints, and its tallies.
struct Printer {
    json: bool,
    quiet: bool,
    by_kind: std::collections::BTreeMap<&'static str, u64>,
    malformed: u64,
    out: io::BufWriter<io::Stdout>,
}

impl Printer {
    fn event(&mut self, event: Event<'_>) -> io::Result<()> {
        match event {
            Event::Frame(frame, offset) => self.frame(&frame, offset),
            Event::Error(error) => self.error(&error),
        }
    }

    fn frame(&mut self, frame: &Frame<&[u8]>, offset: u64) -> io::Result<()> {
        let kind = match Message::from_frame(*frame) {
            Ok(message) => render::command_name(message.header.command),
            Err(error) => {
                self.malformed += 1;
                error.kind()
            }
        };
        *self.by_kind.entry(kind).or_default() += 1;
        if self.quiet {
            return Ok(());
        }
        if self.json {
            let line = render::frame_json(Some(offset), frame, &Selection::all());
            writeln!(self.out, "{line}")
        } else {
            writeln!(
                self.out,
                "{}",
                render::frame_table(Some(offset), frame, &Selection::all())
            )
        }
    }

    fn error(&mut self, error: &DeframeError) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        if self.json {
            let line = json!({
                "offset": error.stream_offset,
                "error": error.error.kind(),
                "message": error.error.to_string(),
                "error_offset": error.error.offset(),
            });
            writeln!(self.out, "{line}")
        } else {
            writeln!(
                self.out,
                "bad frame at offset {}: {}\n",
                error.stream_offset, error.error
            )
        }
    }
}

/// Runs `bmslink decode`; returns whether the exit status should be success: at least one
/// frame was found, and with `--strict`, every frame was good.
pub fn run(args: DecodeArgs) -> Result<bool> {
    let mut printer = Printer {
        json: args.json,
        quiet: args.stats,
        by_kind: Default::default(),
        malformed: 0,
        out: io::BufWriter::new(io::stdout()),
    };
    let mut deframer = Deframer::new();
    let started = Instant::now();
    if !args.hex.is_empty() {
        let bytes = parse_hex_text(&args.hex.join(" ")).context("the hex argument")?;
        feed(&mut deframer, &mut printer, &bytes)?;
    } else {
        let (reader, size) = open_input(args.file.as_ref())?;
        stream(reader, size, &mut deframer, &mut printer)?;
    }
    let mut failure = None;
    deframer.flush(|event| {
        if let Err(e) = printer.event(event) {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    let stats = deframer.stats();
    if args.stats {
        print_stats(&mut printer, &stats, started.elapsed())?;
    }
    printer.out.flush()?;
    if stats.frames == 0 {
        eprintln!(
            "no valid NW frame in the input ({} bytes, {} bad frames)",
            stats.bytes,
            stats.errors()
        );
        return Ok(false);
    }
    let all_good = stats.errors() == 0 && printer.malformed == 0;
    Ok(all_good || !args.strict)
}

fn feed(deframer: &mut Deframer, printer: &mut Printer, bytes: &[u8]) -> io::Result<()> {
    let mut result = Ok(());
    deframer.feed(bytes, |event| {
        if result.is_ok() {
            result = printer.event(event);
        }
    });
    result
}

fn open_input(path: Option<&PathBuf>) -> Result<(Box<dyn Read>, Option<u64>)> {
    match path {
        Some(path) if path.as_os_str() != "-" => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().ok().map(|m| m.len());
            Ok((Box::new(file), size))
        }
        _ => Ok((Box::new(io::stdin()), None)),
    }
}

/// Reads the whole input in chunks, detecting raw bytes or hex text from the first chunk.
fn stream(
    reader: Box<dyn Read>,
    size: Option<u64>,
    deframer: &mut Deframer,
    printer: &mut Printer,
) -> Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let encoding = detect(reader.fill_buf().context("cannot read the input")?);
    let progress = progress_bar(size);
    let mut line_number = 0u64;
    loop {
        let consumed = match encoding {
            Encoding::Raw => {
                let chunk = reader.fill_buf().context("cannot read the input")?;
                if chunk.is_empty() {
                    break;
                }
                feed(deframer, printer, chunk)?;
                chunk.len()
            }
            Encoding::HexText => {
                let mut line = String::new();
                let read = reader
                    .read_line(&mut line)
                    .context("cannot read the input")?;
                if read == 0 {
                    break;
                }
                line_number += 1;
                let bytes = parse_hex_line(&line)
                    .with_context(|| format!("line {line_number} of the hex dump"))?;
                feed(deframer, printer, &bytes)?;
                progress.inc(read as u64);
                continue;
            }
        };
        reader.consume(consumed);
        progress.inc(consumed as u64);
    }
    progress.finish_and_clear();
    Ok(())
}

/// A progress bar on stderr for inputs larger than a few megabytes, hidden otherwise.
fn progress_bar(size: Option<u64>) -> ProgressBar {
    match size {
        Some(size) if size > 8 << 20 => {
            let bar = ProgressBar::new(size);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        _ => ProgressBar::hidden(),
    }
}

/// Text of hex digits, separators and dump decorations is a hex dump; anything with control
/// bytes or non-ASCII is raw.
fn detect(head: &[u8]) -> Encoding {
    let text = head
        .iter()
        .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7F).contains(&b));
    if text && !head.is_empty() {
        Encoding::HexText
    } else {
        Encoding::Raw
    }
}

/// Parses a whole hex string (an argument): every token must be hex.
fn parse_hex_text(text: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for token in tokens(text) {
        push_hex_token(token, &mut bytes)?;
    }
    if bytes.is_empty() {
        bail!("no hex bytes given");
    }
    Ok(bytes)
}

fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | '.' | '-'))
        .filter(|t| !t.is_empty())
}

fn push_hex_token(token: &str, bytes: &mut Vec<u8>) -> Result<()> {
    let digits = token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
        .unwrap_or(token);
    if digits.len() % 2 != 0 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("'{token}' is not hex bytes");
    }
    for pair in digits.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).unwrap_or("");
        bytes.push(u8::from_str_radix(text, 16)?);
    }
    Ok(())
}

/// The decoration of a dump line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dump {
    /// Plain hex: every token is hex.
    Plain,
    /// `xxd`: `00000010: 4e57 0013 ...  NW..`; the ASCII column follows two spaces.
    Xxd,
    /// `hexdump -C`: `00000010  4e 57 00 13 ... |NW..|`; the ASCII column is between bars.
    HexdumpC,
}

/// One line of a hex dump: skips an `xxd` or `hexdump -C` offset, stops at the ASCII column.
fn parse_hex_line(line: &str) -> Result<Vec<u8>> {
    let line = line.split('#').next().unwrap_or("").trim_end();
    let (body, dump) = strip_offset(line);
    let hex_part = match dump {
        Dump::Plain => body,
        Dump::Xxd => body.trim_start().split("  ").next().unwrap_or(""),
        Dump::HexdumpC => body.split('|').next().unwrap_or(""),
    };
    let mut bytes = Vec::new();
    for token in tokens(hex_part) {
        push_hex_token(token, &mut bytes)?;
    }
    Ok(bytes)
}

/// Strips a leading dump offset (`00000010:` from xxd, `00000010 ` from hexdump -C).
fn strip_offset(line: &str) -> (&str, Dump) {
    let trimmed = line.trim_start();
    let first = trimmed.split_whitespace().next().unwrap_or("");
    let is_hex = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(offset) = first.strip_suffix(':') {
        if is_hex(offset) && offset.len() >= 4 {
            return (&trimmed[first.len()..], Dump::Xxd);
        }
    }
    if first.len() == 8 && is_hex(first) && trimmed[8..].starts_with("  ") {
        return (&trimmed[8..], Dump::HexdumpC);
    }
    (line, Dump::Plain)
}

fn print_stats(printer: &mut Printer, stats: &Stats, elapsed: Duration) -> io::Result<()> {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let out = &mut printer.out;
    let by_kind: serde_json::Map<String, serde_json::Value> = printer
        .by_kind
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if printer.json {
        let line = json!({
            "bytes": stats.bytes,
            "frames": stats.frames,
            "frames_by_kind": by_kind,
            "malformed": printer.malformed,
            "bytes_dropped": stats.bytes_dropped,
            "errors": {
                "checksum": stats.checksum_errors,
                "bad_length": stats.length_errors,
                "bad_end": stats.end_errors,
                "checksum_high_not_zero": stats.checksum_high_errors,
                "truncated": stats.truncated_errors,
            },
            "seconds": seconds,
            "frames_per_second": stats.frames as f64 / seconds,
            "megabytes_per_second": stats.bytes as f64 / seconds / 1e6,
        });
        return writeln!(out, "{line}");
    }
    writeln!(out, "bytes            {}", stats.bytes)?;
    writeln!(out, "frames           {}", stats.frames)?;
    for (kind, count) in &printer.by_kind {
        writeln!(out, "  {kind:<14} {count}")?;
    }
    writeln!(out, "bytes dropped    {}", stats.bytes_dropped)?;
    writeln!(out, "errors           {}", stats.errors())?;
    writeln!(out, "  checksum       {}", stats.checksum_errors)?;
    writeln!(out, "  bad LENGTH     {}", stats.length_errors)?;
    writeln!(out, "  bad end byte   {}", stats.end_errors)?;
    writeln!(out, "  checksum high  {}", stats.checksum_high_errors)?;
    writeln!(out, "  truncated      {}", stats.truncated_errors)?;
    writeln!(out, "malformed info   {}", printer.malformed)?;
    writeln!(
        out,
        "throughput       {:.1} MB/s, {:.0} frames/s ({:.3} s)",
        stats.bytes as f64 / seconds / 1e6,
        stats.frames as f64 / seconds,
        seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_text_in_common_shapes() {
        let want = vec![0x4E, 0x57, 0x00, 0x13];
        assert_eq!(parse_hex_text("4E 57 00 13").unwrap(), want);
        assert_eq!(parse_hex_text("4E570013").unwrap(), want);
        assert_eq!(parse_hex_text("4E:57:00:13").unwrap(), want);
        assert_eq!(parse_hex_text("4E.57.00.13").unwrap(), want);
        assert_eq!(parse_hex_text("0x4E 0x57 0x00 0x13").unwrap(), want);
        assert!(parse_hex_text("4E 5").is_err());
        assert!(parse_hex_text("zz").is_err());
    }

    #[test]
    fn dump_lines_skip_offsets_and_ascii_columns() {
        let xxd = "00000000: 4e57 0013 0000 0000 0603 0000 0000 0000  NW......|.......";
        assert_eq!(parse_hex_line(xxd).unwrap().len(), 16);
        let hexdump =
            "00000000  4e 57 00 13 00 00 00 00  06 03 00 00 00 00 00 00  |NW..............|";
        assert_eq!(parse_hex_line(hexdump).unwrap().len(), 16);
        assert_eq!(parse_hex_line("# a comment").unwrap(), Vec::<u8>::new());
        assert_eq!(
            parse_hex_line("4E 57 # trailing").unwrap(),
            vec![0x4E, 0x57]
        );
    }

    #[test]
    fn raw_captures_are_told_from_hex_text() {
        assert_eq!(detect(&[0x4E, 0x57, 0x00, 0x13]), Encoding::Raw);
        assert_eq!(detect(b"4E 57 00 13\n"), Encoding::HexText);
    }
}
