//! The bmslink site gateway: several rack BMSes (NW protocol over RS485 or TCP) as one battery
//! for the inverter (CAN) and the EMS (Modbus TCP), with a failsafe that drives both toward the
//! safe state when data goes stale.
//!
//! Where things are, following the data:
//! - [`config`]: the one TOML file that describes a site, typed and validated with errors that
//!   name the file, line, column and key;
//! - [`line`]: serial ports and TCP connections to devices;
//! - [`rack`]: one poller task per rack BMS driving the core's NW session, and the typed
//!   reading of a reply; writes go through a [`rack::RackHandle`];
//! - [`site`]: the racks as one battery: per-rack limits, aggregation, the failsafe, and what
//!   the inverter, the dry contact and the EMS are told;
//! - [`pcs`] over [`can_bus`] ([`can_link`] for SLCAN, `socketcan` on Linux): the frame set
//!   of the inverter's profile and its keep-alive;
//! - [`ems`]: the Modbus TCP server (SunSpec models and every NW setting as registers);
//! - [`contact`]: the dry contact to the PCS's trip input;
//! - [`metrics`] and [`metrics_server`]: Prometheus counters and `/metrics`;
//! - [`uplink`]: the racks uploaded to a monitoring platform as data boxes, with a backlog
//!   (in memory or on disk) while the platform is away, and its reads and writes answered;
//! - [`daemon`]: `bmslink gateway`, which starts all of the above and wires them together;
//! - [`clock`]: the core's time on top of tokio's clock.

#![warn(missing_docs)]

pub mod can_bus;
pub mod can_link;
pub mod clock;
pub mod config;
pub mod contact;
pub mod daemon;
pub mod ems;
pub mod line;
pub mod metrics;
pub mod metrics_server;
pub mod pcs;
pub mod rack;
pub mod site;
#[cfg(target_os = "linux")]
pub mod socketcan;
pub mod uplink;
