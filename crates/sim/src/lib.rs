//! # bmslink-sim
//!
//! A faithful simulator of battery packs and their BMS, so that everything in bmslink runs
//! without hardware, deterministically and much faster than real time.
//!
//! - [`cell`]: one series element: 2RC equivalent circuit, one-state hysteresis, lumped thermal
//!   model, Arrhenius resistance;
//! - [`pack`]: series elements with seeded cell-to-cell spread, balancing bleed and the sensors
//!   a BMS reads;
//! - [`bms`]: a virtual BMS running bmslink-core on a simulated pack, speaking NW;
//! - [`profile`]: load profiles (constant, pulses, a solar day, replay of a CSV log);
//! - [`serve`]: virtual BMSes on TCP ports, pseudo-terminals, or uploading as data boxes, with
//!   fault injection;
//! - [`fleet`]: thousands of data boxes uploading to a platform from one process, with
//!   source-address spreading, reconnection backoff with jitter and live counters.
//!
//! Time is virtual: callers step it. The same seed and the same steps give the same results.

#![warn(missing_docs)]

pub mod bms;
pub mod cell;
pub mod fleet;
pub mod pack;
pub mod profile;
pub mod serve;
