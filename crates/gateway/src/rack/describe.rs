//! Words for the session's states and reasons, shared by the gateway's logs and the bench tools.

use bmslink_core::session::{LinkReason, LinkState};

/// "online", "offline", ...
pub fn link_state_name(state: LinkState) -> &'static str {
    match state {
        LinkState::Unknown => "unknown",
        LinkState::Online => "online",
        LinkState::Degraded => "degraded",
        LinkState::Offline => "offline",
    }
}

/// Why a link changed state, in words.
pub fn link_reason_text(reason: &LinkReason) -> String {
    match reason {
        LinkReason::ReplyReceived => "reply received".into(),
        LinkReason::ReplyTimeout { stage, waited } => {
            format!(
                "no reply to the {} within {} ms",
                stage.name(),
                waited.as_millis()
            )
        }
        LinkReason::FrameError(error) => error.to_string(),
        LinkReason::BadReply(error) => format!("malformed reply: {error}"),
        LinkReason::OperationsFailed { in_a_row } => {
            format!("{in_a_row} operations failed in a row")
        }
    }
}
