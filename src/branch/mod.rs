//! The branch's own services, apart from the conversation that uses them: the branch file
//! ([`rules`]: calendar, appointment capacity, queue lines), business time
//! ([`calendar`]), queue numbers ([`queue`]) and appointments ([`appointments`]), with the
//! reminder job. [`Branch`] is the service journeys (through [`crate::actions`]) and the
//! staff API use; the SQL lives in `queue` and `appointments`.

pub mod appointments;
pub mod calendar;
pub mod queue;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};
use tokio_util::sync::CancellationToken;

use crate::config::BranchSettings;
use crate::domain::clock::Clock;
use crate::domain::pii::Phone;
use crate::domain::vault;
use crate::store::{now_ms, Db};
use rules::BranchRules;

/// A queue number just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The number as printed: line letter and three digits (`A001`).
    pub ticket: String,
    /// Numbers of the same line still waiting before it.
    pub waiting: i64,
    /// The estimated wait.
    pub wait_minutes: i64,
    /// The counter that serves the line.
    pub counter: String,
}

/// Why an appointment was not booked (the code is what a flow branches on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Date, time, service or phone missing or malformed.
    BadRequest,
    /// The time has passed.
    InPast,
    /// Not an open weekday.
    ClosedDay,
    /// A holiday of the calendar.
    Holiday,
    /// Before opening or from closing time on.
    OutsideHours,
    /// The slot has no capacity left for the service.
    SlotFull,
}

impl Refused {
    /// The stable code a flow's `error` slot gets.
    pub fn code(self) -> &'static str {
        match self {
            Refused::BadRequest => "bad_request",
            Refused::InPast => "in_past",
            Refused::ClosedDay | Refused::Holiday => "closed_day",
            Refused::OutsideHours => "outside_hours",
            Refused::SlotFull => "slot_full",
        }
    }

    /// What went wrong, for the transcript and logs (not spoken).
    pub fn note(self) -> &'static str {
        match self {
            Refused::BadRequest => "date, time, service or phone missing",
            Refused::InPast => "that time has passed",
            Refused::ClosedDay => "the branch is closed that day",
            Refused::Holiday => "the branch is closed on that holiday",
            Refused::OutsideHours => "outside opening hours",
            Refused::SlotFull => "no capacity left in this slot",
        }
    }
}

/// An appointment request from a journey.
pub struct BookRequest<'a> {
    pub branch: &'a str,
    pub service: &'a str,
    /// `YYYY-MM-DD`.
    pub date: &'a str,
    /// `HH:MM`.
    pub time: &'a str,
    pub phone: Phone,
    pub session_id: &'a str,
}

/// The branch service: queue numbers, appointments and their reminders.
pub struct Branch {
    db: Db,
    pub rules: BranchRules,
    settings: BranchSettings,
    clock: Arc<dyn Clock>,
    /// Webhooks the reminders go to (through the outbox).
    webhooks: Vec<String>,
}

impl Branch {
    pub fn new(
        db: Db,
        rules: BranchRules,
        settings: BranchSettings,
        clock: Arc<dyn Clock>,
        webhooks: Vec<String>,
    ) -> Branch {
        Branch {
            db,
            rules,
            settings,
            clock,
            webhooks,
        }
    }

    /// Issues a queue number for `service` on its line, with the people ahead and the
    /// estimated wait; `None` when the queue is too busy to allocate one.
    pub async fn take_number(
        &self,
        branch: &str,
        service: &str,
        session_id: &str,
    ) -> Result<Option<Issued>, sqlx::Error> {
        let line = self.rules.line_of(service);
        let Some(number) = queue::issue(&self.db, branch, &line.line, service, session_id).await?
        else {
            return Ok(None);
        };
        // People ahead: numbers of this line not yet called; the pace: how fast tellers
        // called numbers in the last hour.
        let waiting = queue::waiting(&self.db, branch, &line.line, Some(number)).await?;
        let pace = self.pace(branch, &line.line).await?;
        Ok(Some(Issued {
            ticket: format!("{}{number:03}", line.line),
            waiting,
            wait_minutes: (waiting as f64 * pace).round() as i64,
            counter: line.counter.clone(),
        }))
    }

    /// Minutes per customer in a line: measured over the last hour, else the configured
    /// average.
    pub async fn pace(&self, branch: &str, line: &str) -> Result<f64, sqlx::Error> {
        let fallback = f64::from(self.settings.average_service_minutes);
        queue::service_minutes(&self.db, branch, line, fallback).await
    }

    /// Books an appointment inside the calendar and the slot's capacity; the confirmation
    /// code, or why not.
    pub async fn book(&self, r: &BookRequest<'_>) -> Result<Result<String, Refused>, sqlx::Error> {
        let (Ok(day), Ok(at)) = (
            NaiveDate::parse_from_str(r.date, "%Y-%m-%d"),
            NaiveTime::parse_from_str(r.time, "%H:%M"),
        ) else {
            return Ok(Err(Refused::BadRequest));
        };
        if r.phone.expose().is_empty() || r.service.is_empty() {
            return Ok(Err(Refused::BadRequest));
        }
        if let Err(why) = self.bookable(day, at) {
            return Ok(Err(why));
        }
        let slot = format!(
            "{:02}:{:02}",
            at.hour(),
            if at.minute() < 30 { 0 } else { 30 }
        );
        let ring = vault::of_pool(&self.db.pool);
        let booking = appointments::NewBooking {
            branch: r.branch,
            service: r.service,
            day: r.date,
            slot: &slot,
            phone_hash: &ring.lookup_hash(r.phone.expose()),
            phone_masked: &r.phone.masked(),
            phone_sealed: &ring.seal(r.phone.expose()),
            session_id: r.session_id,
        };
        let capacity = self.rules.capacity_of(r.service);
        Ok(appointments::book(&self.db, &booking, capacity)
            .await?
            .ok_or(Refused::SlotFull))
    }

    /// Whether an appointment may start at `day` `at`: in the future, on an open day, in
    /// open hours.
    fn bookable(&self, day: NaiveDate, at: NaiveTime) -> Result<(), Refused> {
        let c = &self.rules.calendar;
        if day.and_time(at) <= self.clock.now().naive_local() {
            return Err(Refused::InPast);
        }
        if !c.weekdays.contains(&day.weekday().number_from_monday()) {
            return Err(Refused::ClosedDay);
        }
        if c.holidays.contains(&day) {
            return Err(Refused::Holiday);
        }
        if at < c.opens || at >= c.closes {
            return Err(Refused::OutsideHours);
        }
        Ok(())
    }

    /// The phone's booked appointments from today on.
    pub async fn upcoming(
        &self,
        phone: &Phone,
    ) -> Result<Vec<appointments::Upcoming>, sqlx::Error> {
        let today = self.clock.now().date_naive().to_string();
        appointments::upcoming(&self.db, &self.phone_hash(phone), &today).await
    }

    /// Cancels a booked appointment by its confirmation code and the phone it was booked
    /// with: both are needed (false when either is missing or they do not match).
    pub async fn cancel(&self, code: &str, phone: &Phone) -> Result<bool, sqlx::Error> {
        if phone.expose().is_empty() {
            return Ok(false);
        }
        appointments::cancel(&self.db, &code.to_uppercase(), &self.phone_hash(phone)).await
    }

    /// The keyed lookup hash of a phone (HMAC-SHA256 with the database's lookup secret).
    fn phone_hash(&self, phone: &Phone) -> String {
        vault::of_pool(&self.db.pool).lookup_hash(phone.expose())
    }

    /// The line today: numbers waiting (in order) and the last ones called.
    pub async fn board(&self, branch: &str, line: &str) -> Result<serde_json::Value, sqlx::Error> {
        queue::board(&self.db, branch, line).await
    }

    /// Calls the lowest waiting number of `line` to `counter` for `staff`.
    pub async fn call_next(
        &self,
        branch: &str,
        line: &str,
        counter: &str,
        staff: &str,
    ) -> Result<Option<queue::Called>, sqlx::Error> {
        queue::call_next(&self.db, branch, line, counter, staff).await
    }

    /// The appointments of a branch on a day (`YYYY-MM-DD`), by slot.
    pub async fn appointments_on(
        &self,
        branch: &str,
        day: &str,
    ) -> Result<Vec<appointments::Appointment>, sqlx::Error> {
        appointments::list(&self.db, branch, day).await
    }

    /// Sends the reminders due now (once in all, whichever node gets there first).
    pub async fn remind_due(&self) -> Result<usize, sqlx::Error> {
        self.remind_within(self.rules.appointments.remind_hours_before)
            .await
    }

    /// Sends the reminders of appointments in the next `hours` to the receivers marked
    /// `reminders` (the SMS gateway), once each.
    pub async fn remind_within(&self, hours: u32) -> Result<usize, sqlx::Error> {
        appointments::remind(&self.db, now_ms(), hours, &self.webhooks).await
    }

    /// Sends due reminders every `reminder_check_secs` until `stop`.
    pub fn follow(self: &Arc<Self>, stop: CancellationToken) {
        let me = Arc::clone(self);
        let every = Duration::from_secs(me.settings.reminder_check_secs.max(1));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = me.remind_due().await {
                    tracing::warn!(error = %e, "appointment reminders failed");
                }
            }
        });
    }
}
