//! Tests of the pure parts of the EMS server: the SunSpec image, the settings block, the address
//! map, write checks and permissions, and the committed point table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bmslink_core::failsafe::FailsafeConfig;
use bmslink_core::session::LinkState;
use bmslink_core::time::Instant;
use bmslink_proto::{Access, Identifier, Warnings};
use tokio_modbus::ExceptionCode;

use super::access::{self, Refusal, UnlockResult, Unlocks};
use super::map::{self, Region, Target};
use super::settings::{self, BadValue};
use super::sunspec::{self, len, Control, Nameplate, NI_I16, NI_U16};
use super::write::{plan, Action};
use crate::config::{self, EmsWrites};
use crate::rack::{PackSnapshot, RackUpdate};
use crate::site::{EmsCommand, RackIdentity, Site, SiteSnapshot};

fn a03() -> Vec<u8> {
    bmslink_proto::vectors::bytes("A03").unwrap()
}

/// A site of `racks` racks, the first `with_readings` of which reported vector A03.
fn snapshot(racks: usize, with_readings: usize) -> SiteSnapshot {
    let identities = (0..racks)
        .map(|i| RackIdentity {
            name: format!("rack-{}", i + 1),
            link_text: format!("tcp://127.0.0.1:{}", 9000 + i),
        })
        .collect();
    let now = Instant::from_millis(1_000);
    let mut site = Site::new(
        identities,
        Duration::from_secs(5),
        FailsafeConfig::default(),
        now,
    );
    for rack in 0..with_readings {
        let reading = PackSnapshot::parse(&a03(), now).unwrap();
        site.handle_update(
            now,
            RackUpdate {
                rack,
                link: LinkState::Online,
                reading: Some(Arc::new(reading)),
            },
        );
    }
    site.snapshot().clone()
}

fn nameplate() -> Nameplate {
    Nameplate {
        serial: "rack-1+rack-2".into(),
        unit_id: 1,
        remote_control: true,
    }
}

/// (model id, start index of its ID register, L) of every model, checking the chain ends.
fn models(image: &[u16]) -> Vec<(u16, usize, u16)> {
    assert_eq!(&image[..2], &sunspec::MARKER);
    let mut at = 2;
    let mut found = Vec::new();
    loop {
        let (id, length) = (image[at], image[at + 1]);
        if id == sunspec::END_ID {
            assert_eq!(length, 0);
            assert_eq!(at + 2, image.len(), "registers after the end marker");
            return found;
        }
        found.push((id, at, length));
        at += 2 + usize::from(length);
    }
}

fn point(image: &[u16], model: u16, instance: usize, offset: usize) -> u16 {
    let (_, start, _) = models(image)
        .into_iter()
        .filter(|m| m.0 == model)
        .nth(instance)
        .unwrap();
    image[start + offset]
}

// --- SunSpec image -------------------------------------------------------------------------------

#[test]
fn sunspec_models_chain_from_the_marker_to_the_end_marker() {
    let image = sunspec::sunspec_image(&snapshot(2, 2), &nameplate(), 0);
    let found: Vec<(u16, u16)> = models(&image).iter().map(|m| (m.0, m.2)).collect();
    let string = len::STRING + len::STRING_MODULE;
    let module = len::MODULE + 16 * len::MODULE_CELL;
    assert_eq!(
        found,
        vec![
            (1, 66),
            (802, 62),
            (803, 26 + 2 * 32),
            (804, string),
            (804, string),
            (805, module),
            (805, module),
        ]
    );
    assert_eq!(
        models(&image)[1].1 + usize::from(sunspec::BASE),
        usize::from(sunspec::BATTERY_MODEL)
    );
}

#[test]
fn model_1_names_the_gateway() {
    let image = sunspec::sunspec_image(&snapshot(1, 1), &nameplate(), 0);
    let text = |offset: usize, regs: usize| {
        let bytes: Vec<u8> = image[4 + offset - 2..4 + offset - 2 + regs]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        String::from_utf8(bytes)
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    };
    assert_eq!(text(2, 16), "bmslink");
    assert_eq!(text(18, 16), "bmslink-gateway");
    assert_eq!(text(42, 8), env!("CARGO_PKG_VERSION"));
    assert_eq!(text(50, 16), "rack-1+rack-2");
    assert_eq!(image[2 + 66], 1, "DA = unit id");
}

#[test]
fn model_802_values_and_scale_factors_from_vector_a03() {
    let snapshot = snapshot(1, 1);
    let image = sunspec::sunspec_image(&snapshot, &nameplate(), 0x1234);
    let p = |offset| point(&image, 802, 0, offset);
    assert_eq!(p(11), 150, "SoC 15.0 % at SoC_SF -1");
    assert_eq!(p(56) as i16, -1);
    assert_eq!(p(34), 512, "V 51.2 V at V_SF -1");
    assert_eq!(p(59) as i16, -1);
    assert_eq!(p(37), 3203, "CellVMax 3.203 V at CellV_SF -3");
    assert_eq!(p(40), 3185, "CellVMin");
    assert_eq!(p(60) as i16, -3);
    assert_eq!(p(44) as i16, -7, "A -0.69 A at A_SF -1");
    assert_eq!(p(61) as i16, -1);
    assert_eq!(p(2), 81, "AHRtg 81 Ah (0xAA)");
    assert_eq!(p(19), 0x1234, "CtrlHb as last written");
    assert_eq!(p(21), 4, "Typ lithium-ion");
    assert_eq!(p(50), 1, "SetOp connected");
    assert_eq!(p(51), NI_U16, "SetInvState never written");
    let (charge, discharge) = sunspec::pcs_current_limits(&snapshot.pcs);
    assert_eq!(
        p(45),
        sunspec::uint(Some(charge), -1),
        "AChaMax from the PCS limits"
    );
    assert_eq!(
        p(46),
        sunspec::uint(Some(discharge), -1),
        "ADisChaMax from the PCS limits"
    );
    assert_eq!(p(55), NI_I16, "DisChaRte_SF not implemented");
    assert_eq!(p(6), NI_U16, "DisChaRte not implemented");
    assert_eq!([p(24), p(25)], [NI_U16, NI_U16], "WarrDt not implemented");
}

#[test]
fn model_802_events_follow_the_latched_warnings() {
    let mut snapshot = snapshot(1, 1);
    snapshot.ems.latched_warnings = Warnings::CELL_OVER_VOLTAGE | Warnings::LOW_CAPACITY;
    let image = sunspec::sunspec_image(&snapshot, &nameplate(), 0);
    let evt1 = u32::from(point(&image, 802, 0, 26)) << 16 | u32::from(point(&image, 802, 0, 27));
    assert_eq!(
        evt1,
        1 << 9 | 1 << 14,
        "OVER_VOLT_ALARM and UNDER_SOC_MIN_WARNING"
    );
    let vendor = u32::from(point(&image, 802, 0, 31));
    assert_eq!(vendor, u32::from(snapshot.ems.latched_warnings.bits()));
}

#[test]
fn model_805_carries_every_cell_voltage() {
    let image = sunspec::sunspec_image(&snapshot(2, 2), &nameplate(), 0);
    let reading = PackSnapshot::parse(&a03(), Instant::ZERO).unwrap();
    for instance in 0..2 {
        assert_eq!(
            point(&image, 805, instance, 2),
            instance as u16 + 1,
            "StrIdx"
        );
        assert_eq!(point(&image, 805, instance, 4), 16, "NCell");
        assert_eq!(point(&image, 805, instance, 42) as i16, -3, "CellV_SF");
        for (cell, voltage) in reading.cells.iter().enumerate() {
            let at = 44 + 4 * cell;
            assert_eq!(u32::from(point(&image, 805, instance, at)), voltage.0);
            assert_eq!(
                point(&image, 805, instance, at + 1),
                16,
                "CellTmp = sensor 0x82"
            );
        }
    }
}

#[test]
fn a_rack_without_reading_is_not_implemented_and_has_no_cells() {
    let image = sunspec::sunspec_image(&snapshot(2, 1), &nameplate(), 0);
    let found = models(&image);
    assert_eq!(
        found.last().unwrap(),
        &(805, found.last().unwrap().1, len::MODULE)
    );
    assert_eq!(point(&image, 804, 1, 8), NI_U16, "SoC of a silent rack");
    assert_eq!(point(&image, 804, 1, 13), NI_I16, "A of a silent rack");
    let evt1_low = point(&image, 804, 1, 29);
    assert_eq!(evt1_low & 1, 1, "communication error");
    assert_eq!(point(&image, 803, 0, 3), 1, "NStrCon");
}

#[test]
fn before_any_reading_the_battery_is_initializing_with_unknown_values() {
    let image = sunspec::sunspec_image(&snapshot(1, 0), &nameplate(), 0);
    assert_eq!(point(&image, 802, 0, 22), 2, "INITIALIZING");
    assert_eq!(point(&image, 802, 0, 11), NI_U16);
    assert_eq!(point(&image, 802, 0, 34), NI_U16);
    assert_eq!(point(&image, 802, 0, 44), NI_I16);
}

#[test]
fn encoding_clamps_and_marks_unknowns() {
    assert_eq!(sunspec::uint(Some(-3.0), 0), 0);
    assert_eq!(sunspec::uint(Some(1e9), 0), 65_534);
    assert_eq!(sunspec::uint(None, 0), NI_U16);
    assert_eq!(sunspec::int(Some(-0.69), -1), (-7i16) as u16);
    assert_eq!(sunspec::int(Some(-1e9), 0), (-32_767i16) as u16);
    assert_eq!(sunspec::int(Some(f64::NAN), 0), NI_I16);
    assert_eq!(sunspec::fitting_power(5_000.0, 32_767.0), 0);
    assert_eq!(sunspec::fitting_power(250_000.0, 32_767.0), 1);
}

// --- Settings block ------------------------------------------------------------------------------

#[test]
fn every_writable_identifier_has_a_point_and_the_block_fits_its_stride() {
    for info in bmslink_proto::TABLE {
        let mapped = settings::point_of(info.id).is_some();
        let writable = matches!(info.access, Access::ReadWrite | Access::Write);
        assert_eq!(mapped, writable, "{:?}", info.id);
    }
    assert!(settings::block_len() <= settings::RACK_STRIDE);
    let points = settings::setting_points();
    for pair in points.windows(2) {
        assert_eq!(
            pair[0].offset + pair[0].registers,
            pair[1].offset,
            "contiguous"
        );
    }
    assert_eq!(
        settings::point_of(Identifier::CellOverVoltageProtection)
            .unwrap()
            .registers,
        1
    );
    assert_eq!(
        settings::point_of(Identifier::ManufacturerId)
            .unwrap()
            .registers,
        12
    );
}

#[test]
fn settings_round_trip_through_registers_and_the_password_is_hidden() {
    let reading = PackSnapshot::parse(&a03(), Instant::ZERO).unwrap();
    let block = settings::block_registers(|id| reading.field(id));
    for point in settings::setting_points() {
        let at = usize::from(point.offset);
        let words = &block[at..at + usize::from(point.registers)];
        if !point.readable() {
            assert!(
                words.iter().all(|&w| w == 0),
                "{:?} reads zeros",
                point.id()
            );
            continue;
        }
        let bytes = reading.field(point.id()).unwrap();
        assert_eq!(
            settings::from_registers(words, point.len).unwrap(),
            bytes,
            "{:?}",
            point.id()
        );
        let value = settings::write_value(point, words).unwrap();
        assert_eq!(value.bytes(), bytes, "{:?} writes back as read", point.id());
    }
    let password = settings::point_of(Identifier::Password).unwrap();
    assert!(reading
        .field(Identifier::Password)
        .unwrap()
        .starts_with(b"123456"));
    assert_eq!(&block[usize::from(password.offset)..][..5], &[0; 5]);
}

#[test]
fn settings_registers_are_right_aligned_big_endian() {
    assert_eq!(settings::to_registers(&[0x01], 1), vec![0x0001]);
    assert_eq!(settings::to_registers(&[0x0E, 0x42], 1), vec![0x0E42]);
    assert_eq!(settings::to_registers(&[0, 0, 0, 0x51], 2), vec![0, 0x51]);
    assert_eq!(
        settings::from_registers(&[0x0101], 1),
        None,
        "padding byte must be zero"
    );
}

#[test]
fn setting_writes_are_range_checked_against_the_table() {
    let ovp = settings::point_of(Identifier::CellOverVoltageProtection).unwrap();
    assert_eq!(
        settings::write_value(ovp, &[3650]).unwrap().bytes(),
        &[0x0E, 0x42]
    );
    assert!(matches!(
        settings::write_value(ovp, &[4501]),
        Err(BadValue::Table(_))
    ));
    let switch = settings::point_of(Identifier::ChargeMosfetSwitch).unwrap();
    assert!(settings::write_value(switch, &[2]).is_err());
    assert_eq!(
        settings::write_value(switch, &[0x0100]),
        Err(BadValue::Padding)
    );
    let low_temp = settings::point_of(Identifier::ChargeLowTemperatureProtection).unwrap();
    assert_eq!(
        settings::write_value(low_temp, &[(-20i16) as u16])
            .unwrap()
            .bytes(),
        &[0xFF, 0xEC]
    );
    assert!(settings::write_value(low_temp, &[(-46i16) as u16]).is_err());
    let device = settings::point_of(Identifier::DeviceId).unwrap();
    assert_eq!(
        settings::write_value(device, &[0x4142, 0x0007, 0, 0]),
        Err(BadValue::NotText)
    );
    let restart = settings::point_of(Identifier::Restart).unwrap();
    assert!(settings::write_value(restart, &[1]).is_ok());
    assert!(settings::write_value(restart, &[0]).is_err());
}

// --- Address map ---------------------------------------------------------------------------------

#[test]
fn reads_must_lie_inside_one_region() {
    let block = settings::block_len();
    assert_eq!(
        map::read_region(40_000, 125, 500, 2),
        Ok(Region::SunSpec(0))
    );
    assert_eq!(
        map::read_region(40_499, 2, 500, 2),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        map::read_region(1200, block, 500, 2),
        Ok(Region::Rack(1, 0))
    );
    assert_eq!(
        map::read_region(1400, 1, 500, 2),
        Err(ExceptionCode::IllegalDataAddress),
        "no third rack"
    );
    assert_eq!(
        map::read_region(1000 + block - 1, 2, 500, 2),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(map::read_region(900, 18, 500, 1), Ok(Region::Site(0)));
    assert_eq!(
        map::read_region(40_000, 126, 500, 1),
        Err(ExceptionCode::IllegalDataValue)
    );
    assert_eq!(
        map::read_region(0, 1, 500, 1),
        Err(ExceptionCode::IllegalDataAddress)
    );
}

#[test]
fn writes_must_cover_whole_points() {
    let manufacturer = settings::point_of(Identifier::ManufacturerId).unwrap();
    let start = 1000 + manufacturer.offset;
    assert_eq!(
        map::split_write(start, &[0x4142; 11], 1),
        Err(ExceptionCode::IllegalDataAddress),
        "partial"
    );
    assert_eq!(
        map::split_write(start + 1, &[0x4142], 1),
        Err(ExceptionCode::IllegalDataAddress),
        "middle"
    );
    let whole = map::split_write(start, &[0x4142; 12], 1).unwrap();
    assert_eq!(whole.len(), 1);
    let controls = map::split_write(Control::SetOperation.address(), &[1, 3], 1).unwrap();
    assert_eq!(
        controls.iter().map(|p| p.target).collect::<Vec<_>>(),
        vec![
            Target::Control(Control::SetOperation),
            Target::Control(Control::SetInverterState)
        ]
    );
    assert_eq!(
        map::split_write(40_000, &[1], 1),
        Err(ExceptionCode::IllegalDataAddress),
        "SunS marker"
    );
    assert_eq!(
        map::split_write(1200, &[1], 1),
        Err(ExceptionCode::IllegalDataAddress),
        "rack 2 of 1"
    );
    assert_eq!(
        map::split_write(map::UNLOCK_CODE, &[0x4142; 8], 1),
        Err(ExceptionCode::IllegalDataAddress)
    );
}

// --- Write plans ---------------------------------------------------------------------------------

fn plan_at(address: u16, words: &[u16]) -> Result<Action, ExceptionCode> {
    let points = map::split_write(address, words, 1)?;
    plan(&points[0]).map_err(|bad| bad.exception)
}

#[test]
fn sunspec_controls_become_site_commands() {
    assert_eq!(
        plan_at(Control::ControllerHeartbeat.address(), &[7]),
        Ok(Action::Heartbeat(7))
    );
    assert_eq!(
        plan_at(Control::AlarmReset.address(), &[1]),
        Ok(Action::Command(EmsCommand::AlarmReset))
    );
    assert_eq!(
        plan_at(Control::AlarmReset.address(), &[0]),
        Err(ExceptionCode::IllegalDataValue)
    );
    assert_eq!(
        plan_at(Control::SetOperation.address(), &[2]),
        Ok(Action::Command(EmsCommand::SetOperation { connect: false }))
    );
    assert_eq!(
        plan_at(Control::SetOperation.address(), &[3]),
        Err(ExceptionCode::IllegalDataValue)
    );
    assert_eq!(
        plan_at(Control::SetInverterState.address(), &[3]),
        Ok(Action::Command(EmsCommand::SetInverterState(3)))
    );
    assert_eq!(
        plan_at(map::FORCE_CHARGE, &[1]),
        Ok(Action::Command(EmsCommand::ForceCharge(true)))
    );
    assert_eq!(
        plan_at(map::FORCE_CHARGE, &[2]),
        Err(ExceptionCode::IllegalDataValue)
    );
}

#[test]
fn unlock_code_is_ascii_nul_padded() {
    let mut words = vec![0u16; 16];
    words[..4].copy_from_slice(&[0x7369, 0x7465, 0x2D37, 0x2D75]); // "site-7-u"
    assert_eq!(
        plan_at(map::UNLOCK_CODE, &words),
        Ok(Action::Unlock("site-7-u".into()))
    );
    words[5] = 0x0107;
    words[4] = 0x4100;
    assert_eq!(
        access::unlock_text(&words),
        Some("site-7-uA".into()),
        "stops at the first NUL"
    );
    words[4] = 0x0741;
    assert_eq!(
        plan_at(map::UNLOCK_CODE, &words),
        Err(ExceptionCode::IllegalDataValue)
    );
}

#[test]
fn privileged_points_are_the_dangerous_ones() {
    let target = |address| map::target_at(address, 1).unwrap();
    assert!(target(Control::AlarmReset.address()).privileged());
    assert!(target(Control::SetOperation.address()).privileged());
    assert!(!target(Control::ControllerHeartbeat.address()).privileged());
    assert!(!target(Control::SetInverterState.address()).privileged());
    assert!(target(map::FORCE_CHARGE).privileged());
    for id in [
        Identifier::ChargeMosfetSwitch,
        Identifier::DischargeMosfetSwitch,
        Identifier::Restart,
        Identifier::FactoryReset,
    ] {
        assert!(settings::point_of(id).unwrap().privileged(), "{id:?}");
    }
    assert!(!settings::point_of(Identifier::CellOverVoltageProtection)
        .unwrap()
        .privileged());
}

// --- Permissions ---------------------------------------------------------------------------------

fn ems_config(text: &str) -> config::EmsConfig {
    let file = format!(
        "[[racks]]\nname = \"a\"\nlink = {{ port = \"tcp://127.0.0.1:9000\" }}\n[ems]\n{text}"
    );
    config::load("gateway.toml", &file).unwrap().ems
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn connections_and_writes_follow_the_allow_lists() {
    let config = ems_config(
        "allow = [\"127.0.0.0/8\"]\nwrites_enabled = true\nwrite_allow = [\"127.0.0.2\"]\nunlock_code = \"site-7-unlock\"\n",
    );
    assert!(access::may_connect(&config, ip("127.0.0.9")));
    assert!(
        access::may_connect(&config, ip("::ffff:127.0.0.9")),
        "IPv4-mapped"
    );
    assert!(!access::may_connect(&config, ip("10.0.0.1")));
    let writes = &config.writes;
    assert_eq!(
        access::may_write(writes, ip("127.0.0.2"), false, false),
        Ok(())
    );
    assert_eq!(
        access::may_write(writes, ip("127.0.0.1"), false, false),
        Err(Refusal::NotInWriteAllow)
    );
    assert_eq!(
        access::may_write(writes, ip("127.0.0.2"), true, false),
        Err(Refusal::Locked)
    );
    assert_eq!(
        access::may_write(writes, ip("127.0.0.2"), true, true),
        Ok(())
    );
    assert_eq!(
        access::may_write(&EmsWrites::Disabled, ip("127.0.0.2"), false, true),
        Err(Refusal::WritesDisabled)
    );
}

#[test]
fn unlocks_expire_and_wrong_codes_lock_out() {
    let config = ems_config(
        "writes_enabled = true\nwrite_allow = [\"127.0.0.1\"]\nunlock_code = \"site-7-unlock\"\n",
    );
    let EmsWrites::Enabled { unlock_code, .. } = &config.writes else {
        panic!()
    };
    let client = ip("127.0.0.1");
    let mut unlocks = Unlocks::default();
    let t0 = Instant::from_millis(10_000);
    assert!(matches!(
        unlocks.attempt(client, t0, unlock_code, "site-7-unlock"),
        UnlockResult::Unlocked { .. }
    ));
    assert!(unlocks.is_unlocked(client, t0 + Duration::from_secs(59)));
    assert!(!unlocks.is_unlocked(client, t0 + Duration::from_secs(60)));
    assert!(!unlocks.is_unlocked(ip("127.0.0.3"), t0), "per address");
    for n in 1..access::MAX_WRONG_CODES {
        assert_eq!(
            unlocks.attempt(client, t0, unlock_code, "guess"),
            UnlockResult::WrongCode { in_a_row: n }
        );
    }
    assert!(
        !unlocks.is_unlocked(client, t0),
        "a wrong code ends the unlock"
    );
    unlocks.attempt(client, t0, unlock_code, "guess");
    assert!(matches!(
        unlocks.attempt(client, t0, unlock_code, "site-7-unlock"),
        UnlockResult::LockedOut { .. }
    ));
    let later = t0 + access::LOCKOUT;
    assert!(matches!(
        unlocks.attempt(client, later, unlock_code, "site-7-unlock"),
        UnlockResult::Unlocked { .. }
    ));
}

// --- The point table -----------------------------------------------------------------------------

#[test]
fn point_table_document_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(super::points::DOCUMENT);
    let generated = super::point_table_markdown();
    if std::env::var("BMSLINK_REGENERATE").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; regenerate it with\n  BMSLINK_REGENERATE=1 cargo test -p bmslink-gateway --lib ems::tests::point_table",
        super::points::DOCUMENT
    );
    for point in settings::setting_points() {
        assert!(generated.contains(point.info.name), "{}", point.info.name);
    }
}
