//! The live side of a handoff, for the session's turn worker: the kiosk shows the ticket
//! as waiting, tells the customer when nobody accepts in time, connects them when a person
//! accepts (lines relayed both ways through the ticket), and hands back to the bot when the
//! person ends. Everything is driven by the ticket's events ([`crate::live::Input::Ticket`]),
//! from any node; a resumed session finds its open handoff again.

use kiosk_protocol::{ErrorCode, HandoffKind, ServerMessage};
use serde_json::json;

use super::Worker;
use crate::dialog::BotReply;
use crate::handoff::HandoffStatus;
use crate::session::store::{NewLine, Speaker};

/// A handoff ticket waiting for, or owned by, a person.
#[derive(Debug, Clone)]
pub struct LiveHandoff {
    pub ticket_id: String,
    pub number: String,
    pub kind: HandoffKind,
    /// Who took it; while set, the bot stays silent and relays.
    pub staff: Option<String>,
    /// When the customer is told nobody has accepted yet (once).
    pub deadline: Option<tokio::time::Instant>,
}

impl Worker {
    /// A handoff ticket was opened: the kiosk shows it as waiting, and the customer is told
    /// if nobody accepts within `tickets.handoff_wait_secs`.
    pub(super) async fn handoff_waiting(&mut self, number: &str, kind: HandoffKind) {
        let ticket = match self.app.tickets.get(number).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "handoff ticket not found after creation");
                return;
            }
        };
        let wait = std::time::Duration::from_secs(self.app.settings.tickets.handoff_wait_secs);
        self.handoff = Some(LiveHandoff {
            ticket_id: ticket.id,
            number: number.to_string(),
            kind,
            staff: None,
            deadline: Some(tokio::time::Instant::now() + wait),
        });
        self.send_handoff(HandoffStatus::Waiting, None).await;
    }

    async fn send_handoff(&self, status: HandoffStatus, call_link: Option<String>) {
        let Some(h) = &self.handoff else { return };
        let _ = self
            .out
            .send(ServerMessage::Handoff {
                kind: h.kind,
                ticket_number: h.number.clone(),
                status: status.as_str().to_string(),
                call_link,
            })
            .await;
    }

    /// A session that resumes (reconnect, restart) finds its open handoff ticket again.
    pub(super) async fn resume_handoff(&mut self) {
        let filter = crate::tickets::model::Filter {
            session: Some(self.session_id.to_string()),
            limit: 5,
            ..Default::default()
        };
        let Ok(list) = self.app.tickets.list(&filter).await else {
            return;
        };
        let open = list.into_iter().find_map(|t| {
            let kind = crate::handoff::kind_of_ticket(&t.kind)?;
            t.state.open().then_some((t, kind))
        });
        if let Some((t, kind)) = open {
            let owned = matches!(
                t.state,
                crate::tickets::model::TicketState::Assigned
                    | crate::tickets::model::TicketState::InProgress
                    | crate::tickets::model::TicketState::PendingCustomer
            );
            self.handoff = Some(LiveHandoff {
                ticket_id: t.id,
                number: t.number,
                kind,
                staff: if owned { t.assignee } else { None },
                deadline: None,
            });
        }
    }

    /// Nobody accepted in time: the customer is told and offered a number or an
    /// appointment; the ticket stays queued (a person may still accept it).
    pub(super) async fn nobody_accepted(&mut self) {
        if let Some(h) = self.handoff.as_mut() {
            h.deadline = None;
        }
        let reply = self.app.engine.response("handoff_nobody_free");
        self.bot_line(&reply).await;
    }

    /// Stores a bot line of its own (not from the engine) and sends it.
    async fn bot_line(&self, reply: &BotReply) {
        let turn_id = uuid::Uuid::new_v4().to_string();
        let lines = [NewLine {
            speaker: Speaker::Bot,
            kind: "text",
            text: &reply.text,
            turn_id: Some(&turn_id),
        }];
        self.store(&lines, None, None).await;
        self.say(&turn_id, reply).await;
    }

    /// While a person owns the session, what the customer says goes to them.
    pub(super) async fn relay_to_staff(&mut self, text: &str, kind: &str) -> Option<String> {
        let text = crate::text::cut_utterance(text);
        let lines = [NewLine {
            speaker: Speaker::Customer,
            kind,
            text: &text,
            turn_id: None,
        }];
        self.store(&lines, None, None).await;
        let Some(h) = &self.handoff else { return None };
        let masked = crate::access::mask_pii(&text);
        let line =
            crate::tickets::model::NewEvent::note("relay_customer", "customer", &masked, json!({}));
        let note = self.app.tickets.note(&h.ticket_id, line).await;
        if let Err(e) = note {
            tracing::error!(error = %e, "customer line not relayed");
            self.error(
                ErrorCode::Internal,
                "刚才的话没能转给工作人员，请再说一次。",
            )
            .await;
        }
        None
    }

    /// An event of this session's handoff ticket (from any node).
    pub(super) async fn ticket_event(&mut self, e: crate::tickets::SessionEvent) -> Option<String> {
        use crate::tickets::model::TicketState;
        let h = self.handoff.clone()?;
        if e.ticket.id != h.ticket_id {
            return None;
        }
        let to = e.event.to.as_deref().and_then(TicketState::parse);
        match (e.event.kind.as_str(), to) {
            ("state", Some(TicketState::Assigned)) | ("reassigned", _) if h.staff.is_none() => {
                let staff = e.ticket.assignee.clone().unwrap_or_default();
                if let Some(h) = self.handoff.as_mut() {
                    h.staff = Some(staff);
                    h.deadline = None;
                }
                let remote = h.kind == HandoffKind::RemoteExpert;
                let link = remote.then(|| {
                    self.app
                        .settings
                        .tickets
                        .call_link_template
                        .replace("{ticket}", &h.number)
                });
                self.send_handoff(HandoffStatus::Connected, link).await;
                let said = if remote {
                    "handoff_connected_remote"
                } else {
                    "handoff_connected_teller"
                };
                self.bot_line(&self.app.engine.response(said)).await;
            }
            ("relay_staff", _) => {
                let text = e.event.comment.clone();
                let lines = [NewLine {
                    speaker: Speaker::Staff,
                    kind: "text",
                    text: &text,
                    turn_id: None,
                }];
                self.store(&lines, None, None).await;
                let _ = self.out.send(ServerMessage::AgentSay { text }).await;
            }
            ("released", _)
            | (
                "state",
                Some(TicketState::Resolved | TicketState::Closed | TicketState::Cancelled),
            ) => {
                self.send_handoff(HandoffStatus::Ended, None).await;
                self.handoff = None;
                self.bot_line(&self.app.engine.response("handoff_ended"))
                    .await;
            }
            _ => {}
        }
        None
    }

    /// The customer closed the session: whoever has (or will take) the handoff should know
    /// nobody is there.
    pub(super) async fn customer_left(&self, reason: Option<&str>) {
        let Some(h) = &self.handoff else { return };
        let left = crate::tickets::model::NewEvent::note(
            "customer_left",
            "kiosk",
            "客户已结束自助机会话",
            json!({"reason": reason}),
        );
        let left = self.app.tickets.note(&h.ticket_id, left).await;
        if let Err(e) = left {
            tracing::error!(error = %e, "customer_left not recorded on the ticket");
        }
    }
}
