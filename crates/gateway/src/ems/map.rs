//! The holding-register address map: which point a register belongs to, for reads (one region
//! per request) and writes (whole points only). Pure.
//!
//! ```text
//!   900          force charge (0/1, privileged; EmsCommand::ForceCharge)
//!   901          seconds left of this client address's unlock (read only)
//!   902..=917    unlock code: 16 registers of ASCII, NUL padded (write only, reads zeros)
//!  1000 + 200 r  rack r's NW settings block (see `settings`)
//! 40000          SunSpec map (see `sunspec`); writable: 802 CtrlHb, AlmRst, SetOp, SetInvState
//! ```
//!
//! A read must lie inside one region (else 0x02 ILLEGAL DATA ADDRESS) and ask for 1..=125
//! registers (else 0x03 ILLEGAL DATA VALUE). A write must cover whole points: it may start only at
//! a point's first register and must not end inside a point; several adjacent points in one
//! write are fine. Any other write is 0x02 ILLEGAL DATA ADDRESS.

use tokio_modbus::ExceptionCode;

use super::settings::{self, SettingPoint};
use super::sunspec::{self, Control};

/// Force charge (0 off, 1 on).
pub const FORCE_CHARGE: u16 = 900;
/// Seconds left of the client's unlock.
pub const UNLOCK_REMAINING: u16 = 901;
/// First register of the unlock code.
pub const UNLOCK_CODE: u16 = 902;
/// Registers of the unlock code (32 ASCII characters).
pub const UNLOCK_CODE_LEN: u16 = 16;
/// The site block: force charge, unlock time left, unlock code.
pub const SITE_LEN: u16 = 2 + UNLOCK_CODE_LEN;
/// Most registers a read may ask for (Modbus application protocol 6.3).
pub const MAX_READ: u16 = 125;
/// Most registers a write may carry (Modbus application protocol 6.12).
pub const MAX_WRITE: u16 = 123;

/// A writable point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A SunSpec 802 control.
    Control(Control),
    /// The force-charge register.
    ForceCharge,
    /// The unlock code.
    Unlock,
    /// A rack's NW setting.
    Setting {
        /// Rack index.
        rack: usize,
        /// The point.
        point: &'static SettingPoint,
    },
}

impl Target {
    /// Registers the point spans.
    pub fn registers(&self) -> u16 {
        match self {
            Target::Control(_) | Target::ForceCharge => 1,
            Target::Unlock => UNLOCK_CODE_LEN,
            Target::Setting { point, .. } => point.registers,
        }
    }

    /// Whether a write needs the unlock code.
    pub fn privileged(&self) -> bool {
        match self {
            Target::Control(control) => {
                matches!(control, Control::AlarmReset | Control::SetOperation)
            }
            Target::ForceCharge => true,
            Target::Unlock => false,
            Target::Setting { point, .. } => point.privileged(),
        }
    }
}

/// The writable point starting at `address`, with `racks` racks configured.
pub fn target_at(address: u16, racks: usize) -> Option<Target> {
    if let Some(control) = Control::at(address) {
        return Some(Target::Control(control));
    }
    match address {
        FORCE_CHARGE => return Some(Target::ForceCharge),
        UNLOCK_CODE => return Some(Target::Unlock),
        _ => {}
    }
    let (rack, offset) = settings::locate(address)?;
    let point = settings::point_at(offset)?;
    (rack < racks).then_some(Target::Setting { rack, point })
}

/// One point of a write request, with its words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointWrite {
    /// First register.
    pub address: u16,
    /// The point.
    pub target: Target,
    /// The words written to it.
    pub words: Vec<u16>,
}

/// Splits a write of `words` at `address` into whole points.
pub fn split_write(
    address: u16,
    words: &[u16],
    racks: usize,
) -> Result<Vec<PointWrite>, ExceptionCode> {
    if words.is_empty() || words.len() > usize::from(MAX_WRITE) {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let mut points = Vec::new();
    let mut at = 0usize;
    while at < words.len() {
        let register = u16::try_from(usize::from(address) + at)
            .map_err(|_| ExceptionCode::IllegalDataAddress)?;
        let target = target_at(register, racks).ok_or(ExceptionCode::IllegalDataAddress)?;
        let end = at + usize::from(target.registers());
        let chunk = words
            .get(at..end)
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        points.push(PointWrite {
            address: register,
            target,
            words: chunk.to_vec(),
        });
        at = end;
    }
    Ok(points)
}

/// Where a read lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The SunSpec map, from this offset of the image.
    SunSpec(usize),
    /// The site block, from this offset.
    Site(usize),
    /// A rack's settings block, from this offset.
    Rack(usize, usize),
}

/// The region of a read of `count` registers at `address`, given the SunSpec image's length
/// and the racks configured.
pub fn read_region(
    address: u16,
    count: u16,
    sunspec_len: usize,
    racks: usize,
) -> Result<Region, ExceptionCode> {
    if count == 0 || count > MAX_READ {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let (start, end) = (
        usize::from(address),
        usize::from(address) + usize::from(count),
    );
    let within =
        |base: u16, len: usize| start >= usize::from(base) && end <= usize::from(base) + len;
    if within(sunspec::BASE, sunspec_len) {
        return Ok(Region::SunSpec(start - usize::from(sunspec::BASE)));
    }
    if within(FORCE_CHARGE, usize::from(SITE_LEN)) {
        return Ok(Region::Site(start - usize::from(FORCE_CHARGE)));
    }
    let block = usize::from(settings::block_len());
    (0..racks)
        .filter_map(|rack| Some((rack, settings::rack_base(rack)?)))
        .find(|&(_, base)| within(base, block))
        .map(|(rack, base)| Region::Rack(rack, start - usize::from(base)))
        .ok_or(ExceptionCode::IllegalDataAddress)
}
