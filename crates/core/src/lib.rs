#![no_std]
//! core

