//! A data box whose BMS faults on command, for the alarm-to-browser latency figure
//! (`benches/alarm_latency.sh`): it connects to a platform's device port and uploads the
//! fields of the captured upload A03 every 2 s as terminal TERMINAL; on each `fault` line on
//! stdin it uploads at once with the 0x8B battery over-temperature warning bit set (a `bms`
//! alarm on the platform), on `clear` at once with it clear (the alarm ends), on `quit` or end
//! of input it exits. After writing a command's upload it prints one JSON line,
//! `{"event": "fault"|"clear", "record": N, "sent_ms": T}`, with T the wall-clock time (ms
//! since the epoch) just after the frame was handed to the socket: the moment the fault
//! upload leaves the box.
//!
//! ```text
//! cargo run --release -p bmslink-platform --example fault_box -- HOST:PORT [TERMINAL_HEX]
//! ```

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bmslink_proto::frame::{FrameBuilder, MAX_FRAME_LEN};
use bmslink_proto::{
    vectors, Body, Command, Header, Identifier, Message, RecordNumber, Source, TerminalId,
    Transport, Warnings,
};

/// Uploads between commands.
const EVERY: Duration = Duration::from_secs(2);

type Fields = Vec<(Identifier, Vec<u8>)>;

fn a03_fields() -> Result<Fields, String> {
    let frame = vectors::bytes("A03").ok_or("no test vector A03")?;
    let message = Message::parse(&frame).map_err(|e| e.to_string())?;
    let Body::Data(info) = message.body else {
        return Err("A03 is not a data frame".into());
    };
    Ok(info.fields().map(|f| (f.id, f.bytes.to_vec())).collect())
}

struct DataBox {
    stream: TcpStream,
    terminal: TerminalId,
    fields: Fields,
    record: u32,
    warnings: u16,
}

impl DataBox {
    /// Uploads the current values; returns the record number and the time it left.
    fn upload(&mut self) -> Result<(u32, u128), String> {
        self.record += 1;
        let header = Header {
            terminal: self.terminal,
            command: Command::ReadAll,
            source: Source::DataBox,
            transport: Transport::ActiveUpload,
            record: RecordNumber::new(0, self.record),
        };
        let mut buffer = [0u8; MAX_FRAME_LEN];
        let mut builder = FrameBuilder::new(&mut buffer, header).map_err(|e| format!("{e:?}"))?;
        for (id, bytes) in &self.fields {
            let warnings = self.warnings.to_be_bytes();
            let bytes: &[u8] = if *id == Identifier::Warnings {
                &warnings
            } else {
                bytes
            };
            builder
                .push_field(*id, bytes)
                .map_err(|e| format!("{e:?}"))?;
        }
        let frame = builder.finish().map_err(|e| format!("{e:?}"))?;
        self.stream
            .write_all(frame)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("upload: {e}"))?;
        let sent = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis();
        Ok((self.record, sent))
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fault_box HOST:PORT [TERMINAL_HEX]";
    let address = args.first().ok_or(usage)?;
    let number = match args.get(1) {
        Some(hex) => u32::from_str_radix(hex, 16).map_err(|_| usage.to_string())?,
        None => 0xFA_0001,
    };
    let terminal = TerminalId::new(0, number).ok_or("TERMINAL is 24 bits")?;
    let stream = TcpStream::connect(address).map_err(|e| format!("connect {address}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    // Acknowledgements (and anything else the platform says) are read and dropped.
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while matches!(reader.read(&mut buffer), Ok(n) if n > 0) {}
    });
    let mut fields = a03_fields()?;
    // Start without warnings, whatever the capture had.
    if !fields.iter().any(|(id, _)| *id == Identifier::Warnings) {
        fields.push((Identifier::Warnings, vec![0, 0]));
    }
    let device = Arc::new(Mutex::new(DataBox {
        stream,
        terminal,
        fields,
        record: 0,
        warnings: 0,
    }));
    device
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .upload()?;
    println!("{{\"ready\": true, \"terminal\": \"{number:06X}\"}}");
    let ticker = Arc::clone(&device);
    std::thread::spawn(move || loop {
        std::thread::sleep(EVERY);
        let uploaded = ticker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upload();
        if let Err(error) = uploaded {
            eprintln!("fault_box: {error}");
            std::process::exit(1);
        }
    });
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let event = line.trim();
        let warnings = match event {
            "fault" => Warnings::BATTERY_OVER_TEMPERATURE.bits(),
            "clear" => 0,
            "quit" => break,
            other => return Err(format!("unknown command {other:?} (fault, clear, quit)")),
        };
        let (record, sent_ms) = {
            let mut device = device.lock().unwrap_or_else(PoisonError::into_inner);
            device.warnings = warnings;
            device.upload()?
        };
        println!("{{\"event\": \"{event}\", \"record\": {record}, \"sent_ms\": {sent_ms}}}");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fault_box: {error}");
            ExitCode::FAILURE
        }
    }
}
