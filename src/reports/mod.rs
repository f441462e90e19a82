//! Reports for branch managers and operators (issue #19): hourly rollups of sessions,
//! journeys (with their funnels), handoffs, queue numbers, appointments and ticket SLAs,
//! kept by a job on every node ([`rollup`]), and the figures the reports API shows over a
//! window of days ([`query`]). Rollups are counted from the raw tables — sessions,
//! transcript lines, `journey_events` (what the dialog engine noted:
//! [`crate::dialog::engine::journal`]), handoffs, queue numbers, appointments and tickets
//! — so they can be rebuilt from them (`concierge reports rebuild --from DATE`) as long as
//! retention has kept them.

pub mod bench;
pub mod query;
pub mod rollup;
pub mod unanswered;
