//! The command side of a connection: claiming a terminal's queued commands, running them on
//! its session, recording their results, and failing those that run out of time.

use bmslink_core::session::{Event, Session};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::Connection;
use crate::listener::command::{self, RunningCommand};
use crate::listener::stats::ListenerStats;
use crate::model::{Command, CommandState};
use crate::store::Store;

impl<S: Store> Connection<S> {
    // --- Commands --------------------------------------------------------------------------

    pub(super) async fn start_commands(&mut self) {
        for index in 0..self.links.len() {
            self.start_next(index).await;
        }
    }

    /// Claims and starts the terminal's oldest queued command, if none is running.
    pub(super) async fn start_next(&mut self, index: usize) {
        if self.links[index].command.is_some() {
            return;
        }
        let terminal = self.links[index].terminal;
        let queued = match self.context.store.queued_commands(terminal).await {
            Ok(queued) => queued,
            Err(e) => {
                warn!(
                    "{}: queued commands not readable: {e}",
                    self.link_who(index)
                );
                return;
            }
        };
        if queued.is_empty() || !self.still_holds(index).await {
            return;
        }
        for command in queued {
            match self.context.store.claim_command(command.id).await {
                Ok(Some(command)) => {
                    if self.start(index, command).await {
                        return;
                    }
                    // It failed at once: try the next.
                }
                // Another process took it.
                Ok(None) => {}
                Err(e) => {
                    warn!(
                        "{}: command {} not claimed: {e}",
                        self.link_who(index),
                        command.id
                    );
                    return;
                }
            }
        }
    }

    /// Whether this connection still holds the link's terminal in the store. A connection that
    /// lost it (the box reconnected, maybe to another process) must not take the terminal's
    /// commands: it asks itself to close instead. When the store cannot say, it proceeds.
    async fn still_holds(&self, index: usize) -> bool {
        let terminal = self.links[index].terminal;
        let record = match self.context.store.terminal(terminal).await {
            Ok(record) => record,
            Err(e) => {
                warn!("{}: terminal not readable: {e}", self.link_who(index));
                return true;
            }
        };
        let ours = self.context.registry.owner_key(self.handle.id);
        match record.and_then(|record| record.owner) {
            Some(holder) if holder != ours => {
                self.handle.request_close(super::lost_to(terminal, holder));
                false
            }
            _ => true,
        }
    }

    /// Starts a claimed command; `false` if it failed at once (an invalid request).
    async fn start(&mut self, index: usize, command: Command) -> bool {
        ListenerStats::bump(&self.context.stats.commands_started);
        let plan = match command::plan(&command.request) {
            Ok(plan) => plan,
            Err(reason) => {
                self.finish(index, command.id, CommandState::Failed { reason })
                    .await;
                return false;
            }
        };
        info!(
            "{}: command {} from {}: {}",
            self.link_who(index),
            command.id,
            command.issued_by,
            command::describe(&plan)
        );
        let session = match self.links[index].session.take() {
            Some(session) => session,
            None => match self.new_session(self.links[index].wire) {
                Ok(session) => session,
                Err(reason) => {
                    self.finish(index, command.id, CommandState::Failed { reason })
                        .await;
                    return false;
                }
            },
        };
        let deadline = Instant::now() + self.context.config.command_timeout;
        let link = &mut self.links[index];
        let session = link.session.insert(session);
        link.command = Some(RunningCommand::start(command.id, plan, session, deadline));
        true
    }

    /// Passes session events to the running commands; records finished commands and starts
    /// the next ones.
    pub(super) async fn settle_commands(&mut self) {
        for index in 0..self.links.len() {
            self.drain_events(index);
            let link = &mut self.links[index];
            let Some(state) = link.command.as_ref().and_then(RunningCommand::outcome) else {
                continue;
            };
            if let Some(command) = link.command.take() {
                self.finish(index, command.id, state).await;
            }
            self.start_next(index).await;
        }
    }

    fn drain_events(&mut self, index: usize) {
        while let Some(event) = self.links[index]
            .session
            .as_mut()
            .and_then(Session::poll_event)
        {
            let link = &mut self.links[index];
            let taken = link.command.as_mut().is_some_and(|c| c.handle(&event));
            if !taken {
                self.session_event(index, event);
            }
        }
    }

    /// Logs and counts a session event no command took.
    pub(super) fn session_event(&mut self, index: usize, event: Event) {
        let stats = &self.context.stats;
        match event {
            Event::Timeout {
                stage,
                attempt,
                waited,
                ..
            } => info!(
                "{}: no reply to the {} within {} ms (attempt {attempt})",
                self.link_who(index),
                stage.name(),
                waited.as_millis()
            ),
            Event::Activating { .. } => info!(
                "{}: silent: sending activate in case the BMS is dormant",
                self.link_who(index)
            ),
            Event::BadReply { error, .. } => {
                ListenerStats::bump(&stats.malformed_reply);
                self.count_malformed(index);
                self.log_error(Some(index), &format_args!("malformed reply: {error}"));
            }
            Event::Unsolicited { frame } => {
                ListenerStats::bump(&stats.unsolicited);
                debug!(
                    "{}: a response that answers nothing outstanding ({} bytes)",
                    self.link_who(index),
                    frame.len()
                );
            }
            other => debug!("{}: {other:?}", self.link_who(index)),
        }
    }

    pub(super) async fn finish(&mut self, index: usize, id: i64, state: CommandState) {
        let who = self.link_who(index);
        match &state {
            CommandState::Failed { reason } => {
                ListenerStats::bump(&self.context.stats.commands_failed);
                warn!("{who}: command {id} failed: {reason}");
            }
            _ => {
                ListenerStats::bump(&self.context.stats.commands_done);
                info!("{who}: command {id} done");
            }
        }
        if let Err(e) = self.context.store.finish_command(id, state).await {
            error!("{who}: the result of command {id} could not be stored: {e}");
        }
    }

    /// Fails a command past its deadline; dropping the session drops its operations (the
    /// next command gets a fresh one).
    pub(super) async fn expire_command(&mut self, index: usize) {
        let Some(command) = self.links[index].command.take() else {
            return;
        };
        self.links[index].session = None;
        let state = command.timed_out(self.context.config.command_timeout);
        self.finish(index, command.id, state).await;
        self.start_next(index).await;
    }
}
