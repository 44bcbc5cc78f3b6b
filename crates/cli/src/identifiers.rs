//! `bmslink identifiers`: the identifier table, as the bench engineer's reference.

use std::io::Write;

use anyhow::Result;
use bmslink_proto::ident::{Access, FieldLen};
use bmslink_proto::{Number, TABLE};
use clap::Args;
use serde_json::json;

/// Arguments of `bmslink identifiers`.
#[derive(Debug, Args)]
pub struct IdentifiersArgs {
    /// Only identifiers a controller may write.
    #[arg(long)]
    writable: bool,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn access(access: Access) -> &'static str {
    match access {
        Access::Read => "R",
        Access::ReadWrite => "RW",
        Access::Write => "W",
    }
}

/// Runs `bmslink identifiers`.
pub fn run(args: IdentifiersArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for row in TABLE
        .iter()
        .filter(|row| !args.writable || row.is_writable())
    {
        let number = |raw| {
            Number {
                raw,
                unit: row.unit,
                decimals: row.decimals,
            }
            .to_string()
        };
        let range = row.range.map(|(min, max)| (number(min), number(max)));
        let len = match row.len {
            FieldLen::Fixed(n) => n.to_string(),
            FieldLen::Prefixed => "1+3n".to_string(),
        };
        if args.json {
            let line = json!({
                "id": format!("0x{:02X}", row.id.code()),
                "name": row.name,
                "description": row.description,
                "access": access(row.access),
                "length": len,
                "unit": row.unit.symbol(),
                "decimals": row.decimals,
                "min": range.as_ref().map(|r| &r.0),
                "max": range.as_ref().map(|r| &r.1),
            });
            writeln!(out, "{line}")?;
        } else {
            let range = range
                .map(|(min, max)| format!("{min} ..= {max}"))
                .unwrap_or_default();
            writeln!(
                out,
                "0x{:02X}  {:<2}  {:<4}  {:<38} {:<28} {}",
                row.id.code(),
                access(row.access),
                len,
                row.name,
                range,
                row.description
            )?;
        }
    }
    Ok(())
}
