//! The EMS server over real TCP on 127.0.0.1, with tokio-modbus's client: the SunSpec map, the
//! settings block, writes through a fake rack backend, permissions, unlock, unit id and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is a failed test

mod ems_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bmslink_gateway::ems::map::{FORCE_CHARGE, UNLOCK_CODE, UNLOCK_REMAINING};
use bmslink_gateway::ems::settings;
use bmslink_gateway::ems::sunspec::{Control, MARKER};
use bmslink_gateway::site::EmsCommand;
use bmslink_proto::Identifier;
use ems_support::{
    ascii_registers, ems_config, metric, snapshot_at, start, writable_config, Backend,
    UNLOCK_CODE as CODE,
};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

async fn connect_from(source: &str, server: SocketAddr, unit: u8) -> Context {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    tcp::attach_slave(stream, Slave(unit))
}

async fn connect(server: SocketAddr) -> Context {
    connect_from("127.0.0.1", server, 1).await
}

fn address_of(rack: usize, id: Identifier) -> u16 {
    settings::rack_base(rack).unwrap() + settings::point_of(id).unwrap().offset
}

async fn read(ctx: &mut Context, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
    ctx.read_holding_registers(address, count).await.unwrap()
}

async fn write(ctx: &mut Context, address: u16, words: &[u16]) -> Result<(), ExceptionCode> {
    if words.len() == 1 {
        ctx.write_single_register(address, words[0]).await.unwrap()
    } else {
        ctx.write_multiple_registers(address, words).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_walks_the_sunspec_models_to_the_end_marker() {
    let harness = start(writable_config(), 2, Backend::Confirm).await;
    let mut ctx = connect(harness.address).await;
    assert_eq!(read(&mut ctx, 40_000, 2).await.unwrap(), MARKER.to_vec());
    let mut at = 40_002u16;
    let mut models = Vec::new();
    loop {
        let header = read(&mut ctx, at, 2).await.unwrap();
        if header[0] == 0xFFFF {
            assert_eq!(header[1], 0);
            break;
        }
        models.push((header[0], header[1], at));
        at += 2 + header[1];
    }
    let ids: Vec<u16> = models.iter().map(|m| m.0).collect();
    assert_eq!(ids, vec![1, 802, 803, 804, 804, 805, 805]);
    let (_, length, start) = models[5];
    assert_eq!(length, 42 + 16 * 4);
    let cells = read(&mut ctx, start + 44, 64).await.unwrap();
    let voltages: Vec<u16> = cells.chunks(4).map(|c| c[0]).collect();
    assert_eq!(
        voltages[..4],
        [3201, 3201, 3202, 3201],
        "A03's first cells, 1 mV"
    );
    assert_eq!(
        read(&mut ctx, at, 3).await,
        Err(ExceptionCode::IllegalDataAddress),
        "past the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_write_reaches_the_bms_and_reads_back_confirmed() {
    let harness = start(writable_config(), 2, Backend::Confirm).await;
    let mut ctx = connect(harness.address).await;
    let ovp = address_of(1, Identifier::CellOverVoltageProtection);
    assert_eq!(read(&mut ctx, ovp, 1).await.unwrap(), vec![3650]);
    write(&mut ctx, ovp, &[3600]).await.unwrap();
    assert_eq!(read(&mut ctx, ovp, 1).await.unwrap(), vec![3600]);
    // The next reading of the rack wins over the confirmed value (this fake BMS kept 3650).
    harness.site.send_replace(Arc::new(snapshot_at(2, 2_000)));
    assert_eq!(read(&mut ctx, ovp, 1).await.unwrap(), vec![3650]);
    let written = harness.written.lock().unwrap().clone();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, 1, "rack 2's backend");
    assert_eq!(written[0].1.id(), Identifier::CellOverVoltageProtection);
    assert_eq!(written[0].1.bytes(), &[0x0E, 0x10]);
    let capacity = address_of(0, Identifier::NominalCapacity);
    write(&mut ctx, capacity, &[0, 200]).await.unwrap();
    assert_eq!(read(&mut ctx, capacity, 2).await.unwrap(), vec![0, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_and_addresses_are_refused_and_nothing_is_sent() {
    let harness = start(writable_config(), 1, Backend::Confirm).await;
    let mut ctx = connect(harness.address).await;
    let ovp = address_of(0, Identifier::CellOverVoltageProtection);
    assert_eq!(
        write(&mut ctx, ovp, &[4501]).await,
        Err(ExceptionCode::IllegalDataValue)
    );
    let manufacturer = address_of(0, Identifier::ManufacturerId);
    assert_eq!(
        write(&mut ctx, manufacturer, &[0x4142; 4]).await,
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        write(&mut ctx, manufacturer + 1, &[0x4142]).await,
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        write(&mut ctx, 40_000, &[1]).await,
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(read(&mut ctx, ovp, 1).await.unwrap(), vec![3650]);
    assert!(harness.written.lock().unwrap().is_empty());
    let exceptions = metric(&harness.metrics, "bmslink_gateway_modbus_exceptions_total{function=\"write_single_register\",exception=\"illegal_data_address\"}");
    assert_eq!(exceptions, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bms_that_refuses_or_is_silent_is_a_server_device_failure() {
    for backend in [Backend::Refuse, Backend::Silent] {
        let harness = start(writable_config(), 1, backend).await;
        let mut ctx = connect(harness.address).await;
        let ovp = address_of(0, Identifier::CellOverVoltageProtection);
        assert_eq!(
            write(&mut ctx, ovp, &[3600]).await,
            Err(ExceptionCode::ServerDeviceFailure),
            "{backend:?}"
        );
        assert_eq!(
            read(&mut ctx, ovp, 1).await.unwrap(),
            vec![3650],
            "{backend:?}: unchanged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_writes_need_the_unlock_code() {
    let mut harness = start(writable_config(), 1, Backend::Confirm).await;
    let mut ctx = connect(harness.address).await;
    let switch = address_of(0, Identifier::ChargeMosfetSwitch);
    assert_eq!(
        write(&mut ctx, switch, &[0]).await,
        Err(ExceptionCode::IllegalFunction),
        "locked"
    );
    assert_eq!(
        write(&mut ctx, UNLOCK_CODE, &ascii_registers("guess-what", 16)).await,
        Err(ExceptionCode::IllegalDataValue),
        "wrong code"
    );
    assert_eq!(read(&mut ctx, UNLOCK_REMAINING, 1).await.unwrap(), vec![0]);
    write(&mut ctx, UNLOCK_CODE, &ascii_registers(CODE, 16))
        .await
        .unwrap();
    let left = read(&mut ctx, UNLOCK_REMAINING, 1).await.unwrap()[0];
    assert!((55..=60).contains(&left), "{left} s left");
    assert_eq!(
        read(&mut ctx, UNLOCK_CODE, 16).await.unwrap(),
        vec![0; 16],
        "the code is not readable"
    );
    write(&mut ctx, switch, &[0]).await.unwrap();
    assert_eq!(read(&mut ctx, switch, 1).await.unwrap(), vec![0]);
    let mut other = connect(harness.address).await;
    write(&mut other, FORCE_CHARGE, &[1]).await.unwrap();
    assert_eq!(
        harness.commands.recv().await,
        Some(EmsCommand::ForceCharge(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunspec_controls_go_to_the_site() {
    let mut harness = start(writable_config(), 1, Backend::Confirm).await;
    let mut ctx = connect(harness.address).await;
    write(&mut ctx, Control::ControllerHeartbeat.address(), &[42])
        .await
        .unwrap();
    assert!(harness.heartbeat.borrow_and_update().is_some());
    assert_eq!(
        read(&mut ctx, Control::ControllerHeartbeat.address(), 1)
            .await
            .unwrap(),
        vec![42]
    );
    write(&mut ctx, Control::SetInverterState.address(), &[3])
        .await
        .unwrap();
    assert_eq!(
        harness.commands.recv().await,
        Some(EmsCommand::SetInverterState(3))
    );
    assert_eq!(
        write(&mut ctx, Control::SetOperation.address(), &[2]).await,
        Err(ExceptionCode::IllegalFunction)
    );
    write(&mut ctx, UNLOCK_CODE, &ascii_registers(CODE, 16))
        .await
        .unwrap();
    write(&mut ctx, Control::SetOperation.address(), &[2])
        .await
        .unwrap();
    assert_eq!(
        harness.commands.recv().await,
        Some(EmsCommand::SetOperation { connect: false })
    );
    write(&mut ctx, Control::AlarmReset.address(), &[1])
        .await
        .unwrap();
    assert_eq!(harness.commands.recv().await, Some(EmsCommand::AlarmReset));
    assert_eq!(
        write(&mut ctx, Control::SetOperation.address(), &[9]).await,
        Err(ExceptionCode::IllegalDataValue)
    );
    assert!(
        harness.commands.try_recv().is_err(),
        "nothing else was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_when_disabled_or_from_outside_write_allow() {
    let disabled = start(
        ems_config("allow = [\"127.0.0.0/8\"]\n"),
        1,
        Backend::Confirm,
    )
    .await;
    let mut ctx = connect(disabled.address).await;
    let ovp = address_of(0, Identifier::CellOverVoltageProtection);
    assert_eq!(
        write(&mut ctx, ovp, &[3600]).await,
        Err(ExceptionCode::IllegalFunction)
    );
    assert_eq!(
        write(&mut ctx, Control::ControllerHeartbeat.address(), &[1]).await,
        Err(ExceptionCode::IllegalFunction)
    );
    assert!(disabled.heartbeat.borrow().is_none());
    let enabled = start(writable_config(), 1, Backend::Confirm).await;
    let mut outsider = connect_from("127.0.0.2", enabled.address, 1).await;
    assert_eq!(
        read(&mut outsider, ovp, 1).await.unwrap(),
        vec![3650],
        "may read"
    );
    assert_eq!(
        write(&mut outsider, ovp, &[3600]).await,
        Err(ExceptionCode::IllegalFunction)
    );
    assert_eq!(
        write(&mut outsider, UNLOCK_CODE, &ascii_registers(CODE, 16)).await,
        Err(ExceptionCode::IllegalFunction)
    );
    assert!(enabled.written.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_allow_are_closed_and_counted() {
    let harness = start(
        ems_config("allow = [\"127.0.0.2/32\"]\n"),
        1,
        Backend::Confirm,
    )
    .await;
    let mut stranger = connect(harness.address).await;
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        stranger.read_holding_registers(40_000, 2),
    )
    .await;
    assert!(
        matches!(result, Ok(Err(_))),
        "the connection is closed: {result:?}"
    );
    let mut friend = connect_from("127.0.0.2", harness.address, 1).await;
    assert_eq!(read(&mut friend, 40_000, 2).await.unwrap(), MARKER.to_vec());
    assert_eq!(
        metric(
            &harness.metrics,
            "bmslink_gateway_modbus_refused_connections_total"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_unit_ids_and_functions_get_exceptions_and_everything_is_counted() {
    let harness = start(writable_config(), 1, Backend::Confirm).await;
    let mut wrong_unit = connect_from("127.0.0.1", harness.address, 7).await;
    assert_eq!(
        read(&mut wrong_unit, 40_000, 2).await,
        Err(ExceptionCode::GatewayPathUnavailable)
    );
    let mut ctx = connect(harness.address).await;
    assert_eq!(
        ctx.read_input_registers(40_000, 2).await.unwrap(),
        Err(ExceptionCode::IllegalFunction)
    );
    assert_eq!(
        read(&mut ctx, 40_000, 126).await,
        Err(ExceptionCode::IllegalDataValue)
    );
    let password = address_of(0, Identifier::Password);
    assert_eq!(
        read(&mut ctx, password, 5).await.unwrap(),
        vec![0; 5],
        "the password is never shown"
    );
    let metrics = &harness.metrics;
    assert_eq!(
        metric(
            metrics,
            "bmslink_gateway_modbus_requests_total{function=\"read_holding_registers\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            metrics,
            "bmslink_gateway_modbus_requests_total{function=\"read_input_registers\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(metrics, "bmslink_gateway_modbus_exceptions_total{function=\"read_holding_registers\",exception=\"gateway_path_unavailable\"}"),
        1.0
    );
}
