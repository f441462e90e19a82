//! Login throttling, in memory on this node: failed attempts are counted per account name
//! and per client address; past a limit the key is locked for a while, and each further
//! failure doubles the lock (backoff) up to a ceiling. Attempts are counted when they start
//! (a success gives its count back), so a burst of concurrent attempts is cut off at the
//! limit instead of all reaching the password hash. Names are kept only as keyed hashes
//! ([`LoginGuard::name_tag`]), never as typed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::LoginSettings;

/// Why a login was not even tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The name or the address is locked for `retry_after` more seconds.
    #[error("too many failed logins; try again in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// Every hashing slot stayed busy for the configured wait.
    #[error("too many logins at once; try again in {retry_after} s")]
    Busy { retry_after: u64 },
}

impl Refusal {
    /// The stable error code (`login_throttled`, `login_busy`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Throttled { .. } => "login_throttled",
            Refusal::Busy { .. } => "login_busy",
        }
    }

    /// Seconds until a retry may succeed.
    pub fn retry_after(&self) -> u64 {
        match self {
            Refusal::Throttled { retry_after } | Refusal::Busy { retry_after } => *retry_after,
        }
    }
}

/// What is counted against one key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// A key of the throttle: a client address or a name's tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Name(String),
}

/// An attempt admitted by [`LoginGuard::admit`]; give it to [`LoginGuard::succeeded`] when
/// the password was right.
#[derive(Debug)]
pub struct Attempt {
    ip: IpAddr,
    name_tag: String,
}

impl Attempt {
    /// The keyed hash of the typed name (what logs show instead of the name).
    pub fn name_tag(&self) -> &str {
        &self.name_tag
    }

    /// The client address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

/// Login throttle and password-hashing slots of this node.
pub struct LoginGuard {
    settings: LoginSettings,
    entries: Mutex<HashMap<Key, Entry>>,
    hashing: Arc<Semaphore>,
    tag_key: [u8; 32],
}

impl LoginGuard {
    /// A guard with empty counters; the name-tag key is random per process.
    pub fn new(settings: &LoginSettings) -> LoginGuard {
        let slots = match settings.hash_concurrency {
            0 => std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1),
            n => n,
        };
        let mut tag_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut tag_key);
        LoginGuard {
            settings: settings.clone(),
            entries: Mutex::new(HashMap::new()),
            hashing: Arc::new(Semaphore::new(slots)),
            tag_key,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &LoginSettings {
        &self.settings
    }

    /// A keyed hash of a typed name (16 hex digits): the same name gives the same tag in
    /// this process, so logs can be correlated without showing what was typed.
    pub fn name_tag(&self, name: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.tag_key);
        h.update(name.trim().as_bytes());
        hex::encode(&h.finalize()[..8])
    }

    /// Admits an attempt of `name` from `ip` and counts it, or says how long to wait.
    pub fn admit(&self, ip: IpAddr, name: &str) -> Result<Attempt, Refusal> {
        self.admit_at(ip, name, Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, name: &str, now: Instant) -> Result<Attempt, Refusal> {
        let tag = self.name_tag(name);
        let keys = [
            (Key::Ip(ip), self.settings.max_failures_per_ip),
            (Key::Name(tag.clone()), self.settings.max_failures_per_name),
        ];
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let window = Duration::from_secs(self.settings.window_secs.max(1));
        let wait = keys
            .iter()
            .filter_map(|(k, _)| entries.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        if let Some(wait) = wait {
            return Err(Refusal::Throttled {
                retry_after: ceil_secs(wait),
            });
        }
        if entries.len() + 2 > self.settings.max_tracked.max(2) {
            forget_oldest(
                &mut entries,
                now,
                window,
                self.settings.max_tracked.max(2) - 2,
            );
        }
        for (key, limit) in keys {
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                locked_until: None,
                last: now,
            });
            if now.duration_since(e.last) > window {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
            let limit = limit.max(1);
            if e.failures >= limit {
                let doublings = (e.failures - limit).min(20);
                let lock = self
                    .settings
                    .lock_secs
                    .max(1)
                    .saturating_mul(1 << doublings)
                    .min(self.settings.max_lock_secs.max(1));
                e.locked_until = Some(now + Duration::from_secs(lock));
            }
        }
        Ok(Attempt { ip, name_tag: tag })
    }

    /// The password was right: the name's failures are forgotten and the address gets its
    /// count for this attempt back.
    pub fn succeeded(&self, attempt: &Attempt) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&Key::Name(attempt.name_tag.clone()));
        if let Some(e) = entries.get_mut(&Key::Ip(attempt.ip)) {
            e.failures = e.failures.saturating_sub(1);
            if e.failures < self.settings.max_failures_per_ip.max(1) {
                e.locked_until = None;
            }
        }
    }

    /// Runs `work` (a password hash or check) on the blocking pool once a hashing slot is
    /// free; [`Refusal::Busy`] when none frees up within `hash_wait_ms`.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refusal> {
        let busy = Refusal::Busy { retry_after: 1 };
        let wait = Duration::from_millis(self.settings.hash_wait_ms);
        let permit = tokio::time::timeout(wait, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| busy.clone())?
            .map_err(|_| busy.clone())?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|_| busy)
    }
}

/// Whole seconds, rounded up, at least 1.
fn ceil_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

/// Drops expired entries, then the least recently seen ones, until at most `keep` remain.
fn forget_oldest(entries: &mut HashMap<Key, Entry>, now: Instant, window: Duration, keep: usize) {
    entries.retain(|_, e| {
        e.locked_until.is_some_and(|u| u > now) || now.duration_since(e.last) <= window
    });
    if entries.len() <= keep {
        return;
    }
    let mut by_age: Vec<(Instant, Key)> =
        entries.iter().map(|(k, e)| (e.last, k.clone())).collect();
    by_age.sort_by_key(|(last, _)| *last);
    let excess = entries.len() - keep;
    for (_, key) in by_age.into_iter().take(excess) {
        entries.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LoginSettings {
        LoginSettings {
            hash_concurrency: 1,
            hash_wait_ms: 1000,
            max_failures_per_name: 3,
            max_failures_per_ip: 5,
            lock_secs: 10,
            max_lock_secs: 25,
            window_secs: 60,
            max_tracked: 100,
            trust_forwarded_for: false,
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn a_name_is_locked_after_its_limit_and_the_lock_doubles_up_to_the_ceiling() {
        let g = LoginGuard::new(&settings());
        let t0 = Instant::now();
        for _ in 0..3 {
            g.admit_at(IP, "zhang", t0).unwrap();
        }
        let refused = g.admit_at(IP, "zhang", t0).unwrap_err();
        assert_eq!(refused, Refusal::Throttled { retry_after: 10 });
        assert_eq!(refused.code(), "login_throttled");
        // Another name from another address is not affected.
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        g.admit_at(other, "li", t0).unwrap();
        // After the lock, one more failure locks for twice as long, then the ceiling.
        let t1 = t0 + Duration::from_secs(11);
        g.admit_at(other, "zhang", t1).unwrap();
        assert_eq!(
            g.admit_at(other, "zhang", t1).unwrap_err().retry_after(),
            20
        );
        let t2 = t1 + Duration::from_secs(21);
        g.admit_at(other, "zhang", t2).unwrap();
        assert_eq!(
            g.admit_at(other, "zhang", t2).unwrap_err().retry_after(),
            25
        );
    }

    #[test]
    fn an_address_is_locked_across_names_and_a_success_gives_its_count_back() {
        let g = LoginGuard::new(&settings());
        let t0 = Instant::now();
        let ok = g.admit_at(IP, "wang", t0).unwrap();
        g.succeeded(&ok);
        for i in 0..5 {
            let a = g.admit_at(IP, &format!("user{i}"), t0);
            assert!(a.is_ok(), "attempt {i}");
        }
        assert!(matches!(
            g.admit_at(IP, "someone", t0),
            Err(Refusal::Throttled { .. })
        ));
        // Failures are forgotten after a quiet window.
        let later = t0 + Duration::from_secs(61);
        assert!(g.admit_at(IP, "someone", later).is_ok());
    }

    #[test]
    fn a_success_clears_the_name_and_tags_hide_the_name() {
        let g = LoginGuard::new(&settings());
        let t0 = Instant::now();
        g.admit_at(IP, "zhao", t0).unwrap();
        let a = g.admit_at(IP, "zhao", t0).unwrap();
        g.succeeded(&a);
        for _ in 0..3 {
            g.admit_at(IP, "zhao", t0).unwrap();
        }
        let tag = g.name_tag("13812345678");
        assert_eq!(tag.len(), 16);
        assert!(!tag.contains("1381"), "{tag}");
        assert_eq!(tag, g.name_tag("13812345678"));
        assert_ne!(tag, LoginGuard::new(&settings()).name_tag("13812345678"));
    }

    #[test]
    fn tracked_keys_are_bounded() {
        let mut s = settings();
        s.max_tracked = 10;
        s.max_failures_per_ip = 1000;
        let g = LoginGuard::new(&s);
        let t0 = Instant::now();
        for i in 0..50 {
            g.admit_at(IP, &format!("n{i}"), t0 + Duration::from_millis(i))
                .unwrap();
        }
        assert!(g.entries.lock().unwrap().len() <= 10);
    }

    #[tokio::test]
    async fn hashing_runs_off_the_executor_and_waits_for_a_slot() {
        let mut s = settings();
        s.hash_wait_ms = 50;
        let g = Arc::new(LoginGuard::new(&s));
        // The test runtime has one thread: a ticker only ticks while the hash runs if the
        // hash is not on that thread.
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        g.hash(|| std::thread::sleep(Duration::from_millis(200)))
            .await
            .unwrap();
        ticker.abort();
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) >= 5);
        let slow = {
            let g = g.clone();
            tokio::spawn(async move {
                g.hash(|| std::thread::sleep(Duration::from_millis(300)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            g.hash(|| ()).await.unwrap_err(),
            Refusal::Busy { retry_after: 1 }
        );
        slow.await.unwrap().unwrap();
    }
}
