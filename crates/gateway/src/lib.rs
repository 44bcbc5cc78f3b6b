//! The bmslink site gateway: several rack BMSes (NW protocol over RS485 or TCP) as one battery
//! for the inverter (CAN) and the EMS (Modbus TCP), with a failsafe that drives both toward the
//! safe state when data goes stale.
//!
//! Built so far: [`config`], the one TOML file that describes a site, typed and validated with
//! errors that name the file, line, column and key; [`line`], serial ports and TCP connections to
//! devices; [`can_link`], the CAN bus to the inverter
//! through an SLCAN adapter; and [`pcs`], the PCS link task that sends the profile's frame set
//! and watches the inverter's keep-alive. Rack pollers, the EMS server, failsafe wiring and
//! metrics follow (see the architecture document).

#![warn(missing_docs)]

pub mod can_link;
pub mod config;
pub mod line;
pub mod pcs;
