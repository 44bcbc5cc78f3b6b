//! # bmslink-core
//!
//! The battery domain and the sans-I/O protocol sessions of bmslink. `#![no_std]` with `alloc`:
//! no sockets, no clocks, no randomness. Time is an input ([`time::Instant`]), bytes go in and
//! out as slices, and every behaviour over time is testable in virtual time.
//!
//! - [`session`]: the controller side of an NW link (platform, gateway, bench tool): request and
//!   reply matching, timeouts and retries, activation of a dormant BMS, pair-code writes with
//!   read-back, link state with reasons.
//! - [`failsafe`]: the gateway's safe state when data goes stale, links go silent or a
//!   protection acts, with hold-time recovery and the dry-contact decision.
//! - [`limits`]: charge and discharge current and voltage limits of a pack, derated and ramped.
//! - [`protection`]: every protection the settings describe, with delays, hysteresis,
//!   over-current hold and latch; warning bits and the live MOSFET decision.
//! - [`rack`]: several racks as one battery: extremes, weighted SOC, merged alarms, and system
//!   limits that stay safe when a rack is offline, stale or weaker.
//! - [`responder`]: the BMS side: answers requests from a register image (used by the simulator
//!   and by tests).
//! - [`balancing`]: which cells bleed, when the balancing conditions hold.
//! - [`chemistry`]: LFP, NMC and LTO: OCV tables, cell equivalent-circuit and thermal
//!   parameters.
//! - [`settings`]: every NW read/write setting, typed, validated per field and across fields,
//!   with chemistry presets.
//! - [`snapshot`]: a pack's read-all reply or upload as typed values (the gateway's racks, the
//!   platform's telemetry).
//! - [`soc`]: state of charge and state of health: coulomb counting corrected by the voltage
//!   where the OCV slope makes it informative, anchors, hysteresis, capacity learning, cycles.
//! - [`time`]: the `Instant` that callers pass in.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod balancing;
pub mod chemistry;
pub mod failsafe;
pub mod limits;
pub mod protection;
pub mod rack;
pub mod responder;
pub mod session;
pub mod settings;
pub mod snapshot;
pub mod soc;
pub mod time;
