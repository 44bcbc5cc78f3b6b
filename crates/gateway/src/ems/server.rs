//! The Modbus TCP server around the pure parts: accepts clients from `ems.allow`, answers reads
//! from the latest site snapshot, and carries out checked writes (site commands, the heartbeat,
//! rack settings through [`RackHandle::write`]). One tokio-modbus task per connection; requests
//! of one connection are handled in order.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bmslink_core::time::Instant;
use bmslink_proto::Identifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_modbus::server::tcp::Server;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, FunctionCode, Request, Response, SlaveRequest};
use tracing::{debug, info, warn};

use super::access::{self, UnlockResult, Unlocks};
use super::map::{self, PointWrite, Region, Target};
use super::settings;
use super::sunspec::{self, Nameplate};
use super::write::{plan, Action};
use crate::clock::Clock;
use crate::config::{EmsConfig, EmsWrites};
use crate::metrics::{Metrics, ModbusExceptionLabels, ModbusLabels};
use crate::rack::RackHandle;
use crate::site::{EmsCommand, SiteSnapshot};

/// Where the server's writes go.
#[derive(Clone, Debug)]
pub struct EmsLinks {
    /// The EMS heartbeat (802 CtrlHb writes), watched by the site's failsafe.
    pub heartbeat: watch::Sender<Option<Instant>>,
    /// Commands for the site (SetOp, SetInvState, AlmRst, force charge).
    pub commands: mpsc::Sender<EmsCommand>,
}

/// Serves the EMS on `listener` until accepting fails for good. Binding is the caller's, so
/// tests can use port 0.
pub async fn run_ems_server(
    listener: TcpListener,
    config: EmsConfig,
    site: watch::Receiver<Arc<SiteSnapshot>>,
    racks: Vec<RackHandle>,
    links: EmsLinks,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> io::Result<()> {
    let nameplate = Nameplate {
        serial: serial_of(&racks),
        unit_id: config.unit_id,
        remote_control: config.writes.enabled(),
    };
    let shared = Arc::new(Shared {
        config,
        site,
        racks,
        links,
        clock,
        metrics,
        nameplate,
        state: Mutex::new(State::default()),
    });
    let server = Server::new(listener);
    let on_connected = |stream: TcpStream, client: SocketAddr| {
        let accepted = Shared::accept(&shared, stream, client);
        async move { Ok(accepted) }
    };
    loop {
        match server
            .serve(&on_connected, |error| {
                debug!("EMS connection closed: {error}")
            })
            .await
        {
            Ok(()) => return Ok(()),
            Err(error) if transient(&error) => {
                warn!("EMS server: accepting failed ({error}); open connections were closed, retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Accept errors that pass (a client gone before accept, out of file descriptors).
fn transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(23 | 24))
}

/// Model 1's serial number: the rack names, printable ASCII, up to 32 characters.
fn serial_of(racks: &[RackHandle]) -> String {
    let names: Vec<&str> = racks.iter().map(|r| r.name.as_str()).collect();
    names
        .join("+")
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(32)
        .collect()
}

/// A rack setting confirmed by the BMS, shown until the rack's next reading (one received
/// after the reading that was the latest when the write was confirmed).
#[derive(Clone, Debug)]
struct Confirmed {
    bytes: Vec<u8>,
    /// When the latest reading at confirmation time was received (`None`: there was none).
    after: Option<Instant>,
}

/// The SunSpec image of one snapshot and heartbeat value.
#[derive(Debug)]
struct CachedImage {
    snapshot: Arc<SiteSnapshot>,
    heartbeat: u16,
    image: Arc<Vec<u16>>,
}

#[derive(Debug, Default)]
struct State {
    unlocks: Unlocks,
    confirmed: HashMap<(usize, Identifier), Confirmed>,
    controller_heartbeat: u16,
    wrong_codes: u64,
    cache: Option<CachedImage>,
}

#[derive(Debug)]
struct Shared {
    config: EmsConfig,
    site: watch::Receiver<Arc<SiteSnapshot>>,
    racks: Vec<RackHandle>,
    links: EmsLinks,
    clock: Clock,
    metrics: Arc<Metrics>,
    nameplate: Nameplate,
    state: Mutex<State>,
}

/// One client connection.
struct Connection {
    shared: Arc<Shared>,
    client: SocketAddr,
}

type Reply = Result<Option<Response>, ExceptionCode>;

impl Service for Connection {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn call(&self, request: SlaveRequest<'static>) -> Self::Future {
        let (shared, client) = (Arc::clone(&self.shared), self.client);
        Box::pin(async move { shared.handle(client, request).await })
    }
}

impl Shared {
    /// Lets a client in (`Some`) or closes its connection (`None`).
    fn accept(
        shared: &Arc<Shared>,
        stream: TcpStream,
        client: SocketAddr,
    ) -> Option<(Connection, TcpStream)> {
        if !access::may_connect(&shared.config, client.ip()) {
            shared.metrics.modbus_refused.inc();
            warn!("EMS connection refused: {client} is not in ems.allow");
            return None;
        }
        info!("EMS client connected: {client}");
        let connection = Connection {
            shared: Arc::clone(shared),
            client,
        };
        Some((connection, stream))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn handle(&self, client: SocketAddr, request: SlaveRequest<'static>) -> Reply {
        let function = function_name(request.request.function_code());
        self.metrics
            .modbus_requests
            .get_or_create(&ModbusLabels {
                function: function.to_string(),
            })
            .inc();
        let result = self.dispatch(client, request).await;
        if let Err(exception) = result {
            self.metrics
                .modbus_exceptions
                .get_or_create(&ModbusExceptionLabels {
                    function: function.to_string(),
                    exception: exception_name(exception).to_string(),
                })
                .inc();
        }
        result.map(Some)
    }

    async fn dispatch(
        &self,
        client: SocketAddr,
        request: SlaveRequest<'static>,
    ) -> Result<Response, ExceptionCode> {
        if request.slave != self.config.unit_id {
            debug!(
                "EMS request from {client} for unit {} (this server is unit {}): gateway path unavailable",
                request.slave, self.config.unit_id
            );
            return Err(ExceptionCode::GatewayPathUnavailable);
        }
        match request.request {
            Request::ReadHoldingRegisters(address, count) => self
                .read(client.ip(), address, count)
                .map(Response::ReadHoldingRegisters),
            Request::WriteSingleRegister(address, word) => {
                self.write(client, address, &[word]).await?;
                Ok(Response::WriteSingleRegister(address, word))
            }
            Request::WriteMultipleRegisters(address, words) => {
                self.write(client, address, &words).await?;
                let count = u16::try_from(words.len()).unwrap_or(u16::MAX);
                Ok(Response::WriteMultipleRegisters(address, count))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }

    // --- Reads ----------------------------------------------------------------------------------

    fn read(&self, client: IpAddr, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        let snapshot = Arc::clone(&self.site.borrow());
        let image = self.image(&snapshot);
        let region = map::read_region(address, count, image.len(), self.racks.len())?;
        let take = |registers: &[u16], offset: usize| {
            registers
                .get(offset..offset + usize::from(count))
                .map(<[u16]>::to_vec)
                .ok_or(ExceptionCode::IllegalDataAddress)
        };
        match region {
            Region::SunSpec(offset) => take(&image, offset),
            Region::Site(offset) => take(&self.site_block(client, &snapshot), offset),
            Region::Rack(rack, offset) => take(&self.rack_block(rack, &snapshot), offset),
        }
    }

    /// The SunSpec image, rebuilt only when the snapshot or the heartbeat changed.
    fn image(&self, snapshot: &Arc<SiteSnapshot>) -> Arc<Vec<u16>> {
        let mut state = self.state();
        let heartbeat = state.controller_heartbeat;
        if let Some(cached) = state
            .cache
            .as_ref()
            .filter(|c| Arc::ptr_eq(&c.snapshot, snapshot) && c.heartbeat == heartbeat)
        {
            return Arc::clone(&cached.image);
        }
        let image = Arc::new(sunspec::sunspec_image(snapshot, &self.nameplate, heartbeat));
        state.cache = Some(CachedImage {
            snapshot: Arc::clone(snapshot),
            heartbeat,
            image: Arc::clone(&image),
        });
        image
    }

    fn site_block(&self, client: IpAddr, snapshot: &SiteSnapshot) -> Vec<u16> {
        let remaining = self.state().unlocks.remaining(client, self.clock.now());
        let mut block = vec![
            u16::from(snapshot.ems.force_charge),
            u16::try_from(remaining.as_secs()).unwrap_or(u16::MAX),
        ];
        block.resize(usize::from(map::SITE_LEN), 0);
        block
    }

    fn rack_block(&self, rack: usize, snapshot: &SiteSnapshot) -> Vec<u16> {
        let reading = snapshot.racks.get(rack).and_then(|r| r.reading.as_deref());
        let state = self.state();
        settings::block_registers(|id| {
            confirmed(&state, rack, id, reading.map(|r| r.received_at))
                .or_else(|| reading.and_then(|r| r.field(id)))
        })
    }

    /// When `rack`'s latest reading was received.
    fn reading_time(&self, rack: usize) -> Option<Instant> {
        let snapshot = self.site.borrow();
        snapshot
            .racks
            .get(rack)?
            .reading
            .as_ref()
            .map(|r| r.received_at)
    }

    /// Current bytes of a rack's setting (confirmed write, else the reading), for the log.
    fn current_bytes(&self, rack: usize, id: Identifier) -> Option<Vec<u8>> {
        let snapshot = Arc::clone(&self.site.borrow());
        let reading = snapshot.racks.get(rack).and_then(|r| r.reading.as_deref());
        let state = self.state();
        confirmed(&state, rack, id, reading.map(|r| r.received_at))
            .or_else(|| reading.and_then(|r| r.field(id)))
            .map(<[u8]>::to_vec)
    }

    // --- Writes ---------------------------------------------------------------------------------

    async fn write(
        &self,
        client: SocketAddr,
        address: u16,
        words: &[u16],
    ) -> Result<(), ExceptionCode> {
        let points = map::split_write(address, words, self.racks.len()).inspect_err(|_| {
            warn!(
                "write refused: {client} register {address} ({} registers): not the start of a writable point, or a partial write of one",
                words.len()
            )
        })?;
        self.check_permissions(client, &points)?;
        let mut actions = Vec::with_capacity(points.len());
        for point in &points {
            let action = plan(point).map_err(|bad| {
                warn!(
                    "write refused: {client} register {} ({}) value {:04X?}: {}",
                    point.address,
                    self.point_name(&point.target),
                    point.words,
                    bad.reason
                );
                bad.exception
            })?;
            actions.push(action);
        }
        for (point, action) in points.iter().zip(actions) {
            self.execute(client, point, action).await?;
        }
        Ok(())
    }

    fn check_permissions(
        &self,
        client: SocketAddr,
        points: &[PointWrite],
    ) -> Result<(), ExceptionCode> {
        let unlocked = self
            .state()
            .unlocks
            .is_unlocked(client.ip(), self.clock.now());
        for point in points {
            let privileged = point.target.privileged();
            if let Err(refusal) =
                access::may_write(&self.config.writes, client.ip(), privileged, unlocked)
            {
                warn!(
                    "write refused: {client} may not write ({refusal}) register {} ({})",
                    point.address,
                    self.point_name(&point.target)
                );
                return Err(ExceptionCode::IllegalFunction);
            }
        }
        Ok(())
    }

    async fn execute(
        &self,
        client: SocketAddr,
        point: &PointWrite,
        action: Action,
    ) -> Result<(), ExceptionCode> {
        match action {
            Action::Heartbeat(word) => {
                let old = std::mem::replace(&mut self.state().controller_heartbeat, word);
                self.links.heartbeat.send_replace(Some(self.clock.now()));
                debug!(
                    "write: {client} register {} (CtrlHb): {old} -> {word}: ok",
                    point.address
                );
                Ok(())
            }
            Action::Command(command) => self.send_command(client, point, command),
            Action::Unlock(code) => self.unlock(client, &code),
            Action::Setting { rack, value } => self.write_setting(client, point, rack, value).await,
        }
    }

    fn send_command(
        &self,
        client: SocketAddr,
        point: &PointWrite,
        command: EmsCommand,
    ) -> Result<(), ExceptionCode> {
        let ems = self.site.borrow().ems;
        let old = match command {
            EmsCommand::SetOperation { .. } => format!("connected={}", ems.connected),
            EmsCommand::SetInverterState(_) => format!("SetInvState={}", ems.inverter_state),
            EmsCommand::AlarmReset => format!("latched warnings {:?}", ems.latched_warnings),
            EmsCommand::ForceCharge(_) => format!("force_charge={}", ems.force_charge),
        };
        let name = self.point_name(&point.target);
        match self.links.commands.try_send(command) {
            Ok(()) => {
                info!(
                    "write: {client} register {} ({name}): {old} -> {command:?}: sent to the site",
                    point.address
                );
                Ok(())
            }
            Err(error) => {
                warn!("write failed: {client} register {} ({name}): {old} -> {command:?}: the site did not take it ({error})", point.address);
                Err(ExceptionCode::ServerDeviceFailure)
            }
        }
    }

    fn unlock(&self, client: SocketAddr, code: &str) -> Result<(), ExceptionCode> {
        let EmsWrites::Enabled { unlock_code, .. } = &self.config.writes else {
            return Err(ExceptionCode::IllegalFunction);
        };
        let mut state = self.state();
        match state
            .unlocks
            .attempt(client.ip(), self.clock.now(), unlock_code, code)
        {
            UnlockResult::Unlocked { .. } => {
                info!(
                    "unlock: {client} unlocked privileged writes for {} s (register {})",
                    access::UNLOCK_FOR.as_secs(),
                    map::UNLOCK_CODE
                );
                Ok(())
            }
            UnlockResult::WrongCode { in_a_row } => {
                state.wrong_codes += 1;
                warn!(
                    "unlock refused: {client} wrote a wrong unlock code to register {} ({in_a_row} in a row, {} since start)",
                    map::UNLOCK_CODE,
                    state.wrong_codes
                );
                Err(ExceptionCode::IllegalDataValue)
            }
            UnlockResult::LockedOut { until } => {
                let left = until.saturating_duration_since(self.clock.now()).as_secs();
                warn!(
                    "unlock refused: {client} is locked out for {left} s more after {} wrong codes",
                    access::MAX_WRONG_CODES
                );
                Err(ExceptionCode::IllegalFunction)
            }
        }
    }

    async fn write_setting(
        &self,
        client: SocketAddr,
        point: &PointWrite,
        rack: usize,
        value: bmslink_proto::WriteValue,
    ) -> Result<(), ExceptionCode> {
        let id = value.id();
        let name = self.point_name(&point.target);
        let old = settings::describe(id, self.current_bytes(rack, id).as_deref());
        let new = settings::describe(id, Some(value.bytes()));
        let Some(handle) = self.racks.iter().find(|h| h.rack == rack) else {
            warn!(
                "write failed: {client} register {} ({name}): no link task for this rack",
                point.address
            );
            return Err(ExceptionCode::ServerDeviceFailure);
        };
        match handle.write(value).await {
            Ok(outcome) => {
                let bytes = outcome.read_back.unwrap_or_else(|| value.bytes().to_vec());
                let after = self.reading_time(rack);
                self.state()
                    .confirmed
                    .insert((rack, id), Confirmed { bytes, after });
                info!(
                    "write: {client} register {} ({name}): {old} -> {new}: confirmed by the BMS",
                    point.address
                );
                Ok(())
            }
            Err(error) => {
                warn!(
                    "write failed: {client} register {} ({name}): {old} -> {new}: {error}",
                    point.address
                );
                Err(ExceptionCode::ServerDeviceFailure)
            }
        }
    }

    /// "rack-1 cell_over_voltage_protection (0x90)", "802 SetOp", ...
    fn point_name(&self, target: &Target) -> String {
        match target {
            Target::Control(control) => format!("802 {}", control.name()),
            Target::ForceCharge => "force charge".to_string(),
            Target::Unlock => "unlock code".to_string(),
            Target::Setting { rack, point } => {
                let rack = self.racks.get(*rack).map_or("?", |h| h.name.as_str());
                format!("{rack} {} ({:#04X})", point.info.name, point.id() as u8)
            }
        }
    }
}

/// A confirmed write of `rack`'s `id`, while no newer reading of the rack has arrived.
fn confirmed(
    state: &State,
    rack: usize,
    id: Identifier,
    reading_at: Option<Instant>,
) -> Option<&[u8]> {
    state
        .confirmed
        .get(&(rack, id))
        .filter(|c| reading_at <= c.after)
        .map(|c| c.bytes.as_slice())
}

/// The metrics' name of a function.
pub fn function_name(code: FunctionCode) -> &'static str {
    match code {
        FunctionCode::ReadCoils => "read_coils",
        FunctionCode::ReadDiscreteInputs => "read_discrete_inputs",
        FunctionCode::ReadHoldingRegisters => "read_holding_registers",
        FunctionCode::ReadInputRegisters => "read_input_registers",
        FunctionCode::WriteSingleCoil => "write_single_coil",
        FunctionCode::WriteSingleRegister => "write_single_register",
        FunctionCode::WriteMultipleCoils => "write_multiple_coils",
        FunctionCode::WriteMultipleRegisters => "write_multiple_registers",
        FunctionCode::MaskWriteRegister => "mask_write_register",
        FunctionCode::ReadWriteMultipleRegisters => "read_write_multiple_registers",
        FunctionCode::ReportServerId => "report_server_id",
        FunctionCode::EncapsulatedInterfaceTransport => "encapsulated_interface_transport",
        _ => "other",
    }
}

/// The metrics' name of an exception.
pub fn exception_name(code: ExceptionCode) -> &'static str {
    match code {
        ExceptionCode::IllegalFunction => "illegal_function",
        ExceptionCode::IllegalDataAddress => "illegal_data_address",
        ExceptionCode::IllegalDataValue => "illegal_data_value",
        ExceptionCode::ServerDeviceFailure => "server_device_failure",
        ExceptionCode::ServerDeviceBusy => "server_device_busy",
        ExceptionCode::GatewayPathUnavailable => "gateway_path_unavailable",
        _ => "other",
    }
}
