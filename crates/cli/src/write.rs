//! `bmslink write`: change one setting, range-checked before anything is sent, with the pair
//! code and password, confirmed by reading it back.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bmslink_core::session::Operation;
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::{CurrentEncoding, Identifier, Value, WriteValue};
use clap::Args;
use serde_json::json;

use crate::link::{Link, LinkArgs, Outcome};
use crate::render;

/// Arguments of `bmslink write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    link: LinkArgs,
    /// Identifier by name (cell_over_voltage_protection) or hex (0x90).
    name: String,
    /// Value in engineering units: 3.65, 3650mV, 3.65V, -20, on/off, lfp/nmc/lto, text.
    value: String,
    /// Parameter-change password (identifier 0xB2) sent with the pair code. Without it, the
    /// bare pair code real BMSes accept is sent.
    #[arg(long)]
    password: Option<String>,
    /// Pause between the pair code and the write (10 ms to 1 s).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pair_pause: Duration,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// A setting's value bytes as engineering text ("3.650 V"), or hex if they do not decode.
pub fn value_bytes_text(id: Identifier, bytes: &[u8]) -> String {
    match Value::decode(id, bytes, CurrentEncoding::SignMagnitude) {
        Ok(value) => render::value_text(&value),
        Err(_) => render::hex(bytes),
    }
}

fn password_bytes(password: &str) -> Result<[u8; PASSWORD_LEN]> {
    bmslink_gateway::rack::password_bytes(password).ok_or_else(|| {
        anyhow!("the password must be at most {PASSWORD_LEN} printable ASCII characters")
    })
}

/// Runs `bmslink write`.
pub async fn run(args: WriteArgs) -> Result<()> {
    let id = Identifier::lookup(&args.name).ok_or_else(|| {
        anyhow!(
            "unknown identifier '{}': run `bmslink identifiers` for the list",
            args.name
        )
    })?;
    // Everything is checked before the line is opened: nothing is sent for a bad value.
    let value = WriteValue::parse(id, &args.value).map_err(|e| anyhow!("{e}"))?;
    let password = args.password.as_deref().map(password_bytes).transpose()?;
    let config = args.link.session_config(Some(args.pair_pause))?;
    let mut link = Link::open(args.link.endpoint()?, config).await?;
    let Outcome::Written { old, read_back, .. } =
        link.execute(Operation::Write { value, password }).await?
    else {
        bail!("unexpected outcome of a write");
    };
    let old_text = old.as_deref().map(|b| value_bytes_text(id, b));
    let new_text = value_bytes_text(id, value.bytes());
    if args.json {
        let line = json!({
            "identifier": id.name(),
            "old": old_text,
            "new": new_text,
            "confirmed": read_back.is_some(),
        });
        println!("{line}");
        return Ok(());
    }
    match (old_text, read_back) {
        (Some(old), Some(_)) => println!("{id}: {old} -> {new_text} (confirmed by read-back)"),
        (None, _) | (_, None) => {
            println!("{id}: {new_text} acknowledged (this BMS does not report it back)")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_padded_and_checked() {
        assert_eq!(&password_bytes("123456").unwrap(), b"123456\0\0\0\0");
        assert!(password_bytes("12345678901").is_err());
        assert!(password_bytes("pässword").is_err());
    }
}
