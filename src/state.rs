//! The application state shared by every request and connection (cheap to clone).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::content::Content;
use crate::devices::DeviceBroker;
use crate::dialog::Engine;
use crate::live::Hub;
use crate::store::Db;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    /// The core-banking port (sandbox or HTTP).
    pub bank: Arc<dyn crate::ports::banking::CoreBanking>,
    /// Queue numbers, appointments and reminders.
    pub branch: Arc<crate::branch::Branch>,
    /// The server actions flows run.
    pub actions: Arc<crate::actions::Registry>,
    /// What the actions work with.
    pub services: Arc<crate::actions::Services>,
    pub content: Arc<Content>,
    /// The sentence-embedding model (`None`: understanding and search are lexical only).
    pub embedder: Option<Arc<dyn crate::embedding::Embedder>>,
    /// The knowledge base (versioned articles, search, answers).
    pub knowledge: Arc<crate::knowledge::Knowledge>,
    /// Tickets, staff online on this node, live handoffs.
    pub tickets: Arc<crate::tickets::Tickets>,
    pub engine: Arc<Engine>,
    /// The understanding step: one verdict per customer input.
    pub understanding: Arc<crate::understanding::Understanding>,
    /// Speech recognition and synthesis (each part optional: text-only without models).
    pub speech: Arc<crate::speech::Speech>,
    pub broker: Arc<DeviceBroker>,
    pub hub: Arc<Hub>,
    pub metrics: Metrics,
    /// Cancelled once when the node shuts down; every connection watches it.
    pub shutdown: CancellationToken,
    /// Cancelled when a shutdown signal arrives, before `shutdown`: `/readyz` answers not
    /// ready while the node still serves (`server.drain_secs`).
    pub draining: CancellationToken,
    /// Every kiosk connection task, so shutdown can wait for in-flight turns.
    pub connections: TaskTracker,
    /// Staff login throttling and password-hashing slots of this node.
    pub login: Arc<crate::access::throttle::LoginGuard>,
    /// The rate limit of `POST /v1/nlu/parse` on this node.
    pub nlu_parse_limit: Arc<crate::access::rate::TokenBucket>,
}
