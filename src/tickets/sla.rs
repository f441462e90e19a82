//! When a ticket next needs the SLA watcher: each open ticket carries `sla_next_at`, the
//! earliest moment one of its stages (first response, resolution) is due a warning (75 %
//! of the stage's time) or an escalation (its deadline). Every event recomputes it in the
//! ticket's own transaction, so the watcher reads only the tickets whose moment has come
//! (an indexed range), never every open ticket.

use super::model::TicketState;

/// What decides a ticket's next SLA moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clocks {
    pub created_at: i64,
    pub first_response_due: Option<i64>,
    pub first_response_at: Option<i64>,
    pub resolution_due: Option<i64>,
    /// `warned_response_at`, `escalated_response_at`, `warned_resolution_at`,
    /// `escalated_resolution_at`.
    pub marks: [Option<i64>; 4],
}

/// When a stage due at `due` is warned: three quarters of its time after creation.
pub fn warn_at(created_at: i64, due: i64) -> i64 {
    let span = (due - created_at).max(1);
    created_at + span * 3 / 4
}

/// The next moment the watcher has something to do for a ticket in `state`; `None` when
/// nothing is left (closed, or every stage escalated or answered).
pub fn next_action(state: TicketState, c: &Clocks) -> Option<i64> {
    if !state.open() {
        return None;
    }
    let stages = [
        (c.first_response_due, c.first_response_at.is_none(), 0usize),
        (c.resolution_due, true, 2usize),
    ];
    stages
        .into_iter()
        .filter_map(|(due, pending, i)| {
            let due = due.filter(|_| pending)?;
            match (c.marks[i], c.marks[i + 1]) {
                (_, Some(_)) => None,
                (Some(_), None) => Some(due),
                (None, None) => Some(warn_at(c.created_at, due)),
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clocks() -> Clocks {
        Clocks {
            created_at: 1_000,
            first_response_due: Some(2_000),
            resolution_due: Some(9_000),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_ticket_is_next_due_its_response_warning() {
        assert_eq!(next_action(TicketState::New, &clocks()), Some(1_750));
    }

    #[test]
    fn a_warned_stage_is_next_due_at_its_deadline_and_an_escalated_one_never() {
        let mut c = clocks();
        c.marks[0] = Some(1_800);
        assert_eq!(next_action(TicketState::Assigned, &c), Some(2_000));
        c.marks[1] = Some(2_100);
        // The resolution warning is what is left.
        assert_eq!(next_action(TicketState::Assigned, &c), Some(7_000));
        c.marks[2] = Some(7_100);
        c.marks[3] = Some(9_100);
        assert_eq!(next_action(TicketState::Assigned, &c), None);
    }

    #[test]
    fn a_response_stops_the_response_clock() {
        let mut c = clocks();
        c.first_response_at = Some(1_200);
        assert_eq!(next_action(TicketState::InProgress, &c), Some(7_000));
    }

    #[test]
    fn a_ticket_no_longer_open_needs_nothing() {
        for state in [
            TicketState::Resolved,
            TicketState::Closed,
            TicketState::Cancelled,
        ] {
            assert_eq!(next_action(state, &clocks()), None);
        }
    }

    #[test]
    fn a_ticket_without_deadlines_needs_nothing() {
        let c = Clocks {
            created_at: 5,
            ..Default::default()
        };
        assert_eq!(next_action(TicketState::New, &c), None);
    }
}
