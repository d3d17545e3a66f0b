//! Retries: which failures are sent again, after how long, and the budget that keeps a
//! dead backend from being hammered by everyone's retries at once.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};
use crate::headers::Headers;
use crate::transport::Replay;

/// The statuses [`RetryPolicy::standard`] retries: too many requests, and the three a
/// proxy or load balancer gives when a backend is briefly away.
pub const TRANSIENT_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// When a failed attempt is sent again, and how long to wait first.
///
/// Sent again without asking, whatever the policy names: a request that never left (no
/// connection could be made: refused, a name that did not resolve, a failed TLS
/// handshake), and, for an [idempotent](crate::Endpoint::idempotent) endpoint, one whose
/// reused keep-alive connection the server had closed before a byte of reply. Sent again
/// only when the policy names them, and only for idempotent endpoints: timeouts, and
/// replies with the statuses it lists. A POST that is not marked idempotent is never
/// sent twice once it may have reached the server.
///
/// The wait before retry `n` (1, 2, …) is drawn uniformly from zero to
/// `min(cap, base × 2ⁿ⁻¹)` ("full jitter"), or is the reply's `Retry-After` (seconds or
/// an HTTP date) when it has one, never more than `cap`. The endpoint's timeout is the
/// budget for all attempts and waits together: a retry does not start when the time
/// left could not hold its wait and one more attempt (the per-attempt timeout if set,
/// else as long as the last attempt took).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fanout::RetryPolicy;
///
/// let policy = RetryPolicy::new(3)
///     .backoff(Duration::from_millis(50), Duration::from_secs(1))
///     .retry_statuses([503])
///     .attempt_timeout(Duration::from_secs(2));
/// assert_eq!(policy.max_attempts(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    cap: Duration,
    timeouts: bool,
    statuses: Vec<u16>,
    attempt_timeout: Option<Duration>,
}

impl RetryPolicy {
    /// At most `max_attempts` attempts in all (1: no retries), retrying only what is
    /// safe without asking, after 100 ms to 2 s of jittered backoff.
    /// 0 is taken as 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, RetryPolicy};
    ///
    /// assert_eq!(RetryPolicy::new(0).max_attempts(), 1);
    ///
    /// // A refused connection never reached the server: it is always safe to try again.
    /// let policy = RetryPolicy::new(3).backoff(Duration::from_millis(1), Duration::from_millis(5));
    /// let client = Client::builder().retry(policy).build().expect("valid settings");
    /// let endpoint = Endpoint::post("down", "http://127.0.0.1:1/");
    /// let outcome = futures::executor::block_on(client.call(&endpoint));
    /// assert_eq!(outcome.attempts, 3);
    /// assert!(outcome.error().is_some_and(|e| e.message().starts_with("after 3 attempts: ")));
    /// ```
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            timeouts: false,
            statuses: Vec::new(),
            attempt_timeout: None,
        }
    }

    /// `retries` retries of what is safe, and, for idempotent endpoints, of timeouts and
    /// the [transient statuses](TRANSIENT_STATUSES): what the example's `--retries N`
    /// means.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{RetryPolicy, TRANSIENT_STATUSES};
    ///
    /// let standard = RetryPolicy::standard(2);
    /// assert_eq!(standard.max_attempts(), 3);
    /// assert_eq!(standard, RetryPolicy::new(3).retry_timeouts(true).retry_statuses(TRANSIENT_STATUSES));
    /// ```
    pub fn standard(retries: u32) -> Self {
        Self::new(retries.saturating_add(1))
            .retry_timeouts(true)
            .retry_statuses(TRANSIENT_STATUSES)
    }

    /// The backoff's base (the longest first wait) and cap (the longest of any wait,
    /// `Retry-After` included).
    /// A cap below the base is taken as the base.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::RetryPolicy;
    ///
    /// let (second, zero) = (Duration::from_secs(1), Duration::ZERO);
    /// assert_eq!(RetryPolicy::new(3).backoff(second, zero), RetryPolicy::new(3).backoff(second, second));
    /// ```
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.base = base;
        self.cap = cap.max(base);
        self
    }

    /// Whether a timed-out attempt of an idempotent endpoint is sent again.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::RetryPolicy;
    ///
    /// assert_ne!(RetryPolicy::new(3).retry_timeouts(true), RetryPolicy::new(3)); // off by default
    /// ```
    pub fn retry_timeouts(mut self, on: bool) -> Self {
        self.timeouts = on;
        self
    }

    /// Replies with these statuses, for idempotent endpoints, are sent again.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(3).retry_statuses([503, 429]);
    /// assert_ne!(policy, RetryPolicy::new(3)); // none by default
    /// ```
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// A limit on each attempt, inside the endpoint's timeout for them all.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, RetryPolicy};
    ///
    /// // A server that takes the connection (the kernel does) but never answers.
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let endpoint = Endpoint::get("slow", format!("http://{}/", silent.local_addr()?));
    /// let policy = RetryPolicy::new(2)
    ///     .retry_timeouts(true)
    ///     .attempt_timeout(Duration::from_millis(100))
    ///     .backoff(Duration::from_millis(1), Duration::from_millis(5));
    /// let client = Client::builder().retry(policy).build().expect("valid settings");
    /// let outcome = futures::executor::block_on(client.call(&endpoint));
    /// assert_eq!(outcome.attempts, 2);
    /// assert!(outcome.error().is_some_and(|e| e.is_timeout()));
    /// # Ok(()) }
    /// ```
    pub fn attempt_timeout(mut self, limit: Duration) -> Self {
        self.attempt_timeout = Some(limit);
        self
    }

    /// How many attempts at most, the first included.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(fanout::RetryPolicy::standard(2).max_attempts(), 3);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn attempt_limit(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// Whether `failed` may be sent again, by this policy and the endpoint's idempotency.
    pub(crate) fn retries_error(&self, failed: &Error, idempotent: bool) -> bool {
        match failed.replay() {
            Replay::NotSent => true,
            Replay::StaleConnection => idempotent,
            Replay::Unknown => idempotent && self.timeouts && failed.kind() == ErrorKind::Timeout,
        }
    }

    /// Whether a reply with `status` is sent again.
    pub(crate) fn retries_status(&self, status: u16, idempotent: bool) -> bool {
        idempotent && self.statuses.contains(&status)
    }

    /// The wait before retry number `retry` (1 for the first), given the reply's
    /// `Retry-After` if it had one.
    pub(crate) fn wait(&self, retry: u32, retry_after: Option<Duration>, rng: &Jitter) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.cap);
        }
        let doubling = 2u32.saturating_pow(retry.saturating_sub(1));
        let ceiling = self.base.saturating_mul(doubling).min(self.cap);
        rng.up_to(ceiling)
    }
}

/// `Retry-After` as a wait: delay-seconds (fractions accepted, as some servers send
/// them) or an HTTP date, which counts from now.
pub(crate) fn retry_after(headers: &Headers) -> Option<Duration> {
    let value = headers.get("retry-after")?;
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        // A value too large for a Duration (`1e30`) is as good as none: the cap applies.
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The random source of backoff jitter; seeded for tests that check the waits.
#[derive(Debug)]
pub(crate) struct Jitter(Mutex<fastrand::Rng>);

impl Jitter {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Jitter(Mutex::new(
            seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        ))
    }

    /// A duration drawn uniformly from zero to `ceiling`.
    fn up_to(&self, ceiling: Duration) -> Duration {
        let mut rng = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ceiling.mul_f64(rng.f64())
    }
}

/// A share of extra requests that retries (or hedges) may add, across all the calls of
/// a client: each first attempt deposits `ratio` of a token, each extra request takes
/// one. It starts with `floor` tokens, so a quiet client can still retry, and holds at
/// most `ceiling`, so a long healthy spell does not save up a flood for when a backend
/// dies. This is the retry budget of Finagle and Envoy, and gRPC's retry throttling.
///
/// # Examples
///
/// ```
/// let budget = fanout::RetryBudget::new(0.1, 10, 100); // 10% extra, 10 to 100 banked
/// assert_eq!(budget.ratio(), 0.1);
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    /// In thousandths of a token, so that ten deposits of 0.1 make exactly one.
    deposit: u64,
    ceiling: u64,
    tokens: Mutex<u64>,
}

/// Thousandths of a token in one token.
const TOKEN: u64 = 1000;

impl RetryBudget {
    /// A budget of `ratio` extra requests per request (0.1: 10%), starting with
    /// `floor` tokens and holding at most `ceiling`.
    /// A ratio that is negative or not finite is taken as 0, a ceiling below the floor
    /// as the floor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, Endpoint, RetryBudget, RetryPolicy};
    ///
    /// assert_eq!(RetryBudget::new(f64::NAN, 0, 0).ratio(), 0.0);
    ///
    /// // An empty budget that earns nothing: no call may retry.
    /// let client = Client::builder()
    ///     .retry(RetryPolicy::new(3).backoff(Duration::from_millis(1), Duration::from_millis(5)))
    ///     .retry_budget(RetryBudget::new(0.0, 0, 0))
    ///     .build()
    ///     .expect("valid settings");
    /// let outcome = futures::executor::block_on(client.call(&Endpoint::post("down", "http://127.0.0.1:1/")));
    /// assert_eq!(outcome.attempts, 1);
    /// ```
    pub fn new(ratio: f64, floor: u32, ceiling: u32) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        };
        RetryBudget {
            ratio,
            // At most one token per request: a ratio over 1 is not a budget.
            deposit: (ratio.min(1.0) * TOKEN as f64).round() as u64,
            ceiling: u64::from(ceiling.max(floor)) * TOKEN,
            tokens: Mutex::new(u64::from(floor) * TOKEN),
        }
    }

    /// The share of extra requests it allows.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(fanout::RetryBudget::default().ratio(), 0.1);
    /// ```
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, u64> {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A first attempt was made.
    pub(crate) fn deposit(&self) {
        let mut tokens = self.tokens();
        *tokens = (*tokens + self.deposit).min(self.ceiling);
    }

    /// Takes a token for one extra request; `false` when the budget is spent.
    pub(crate) fn withdraw(&self) -> bool {
        let mut tokens = self.tokens();
        if *tokens >= TOKEN {
            *tokens -= TOKEN;
            true
        } else {
            false
        }
    }
}

impl Clone for RetryBudget {
    /// A budget with the same settings and what this one holds now.
    fn clone(&self) -> Self {
        RetryBudget {
            ratio: self.ratio,
            deposit: self.deposit,
            ceiling: self.ceiling,
            tokens: Mutex::new(*self.tokens()),
        }
    }
}

impl Default for RetryBudget {
    /// 10% extra requests, starting with 10 and banking at most 100.
    fn default() -> Self {
        RetryBudget::new(0.1, 10, 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_their_doubling_ceiling_and_the_cap() {
        let policy =
            RetryPolicy::new(10).backoff(Duration::from_millis(100), Duration::from_millis(500));
        let rng = Jitter::new(Some(7));
        for retry in 1..=8u32 {
            let ceiling =
                (Duration::from_millis(100) * 2u32.pow(retry - 1)).min(Duration::from_millis(500));
            for _ in 0..50 {
                assert!(policy.wait(retry, None, &rng) <= ceiling);
            }
        }
        let asked = Some(Duration::from_secs(30));
        assert_eq!(policy.wait(1, asked, &rng), Duration::from_millis(500));
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let policy = RetryPolicy::new(5);
        let (a, b) = (Jitter::new(Some(1)), Jitter::new(Some(1)));
        let waits = |rng: &Jitter| {
            (1..5)
                .map(|n| policy.wait(n, None, rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(waits(&a), waits(&b));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let headers = Headers::from_pairs([("Retry-After", "0.25")]);
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let soon = SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(soon);
        let wait = retry_after(&Headers::from_pairs([("retry-after", date)]));
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(100)),
            "{wait:?}"
        );
        assert_eq!(
            retry_after(&Headers::from_pairs([("retry-after", "soon")])),
            None
        );
    }

    #[test]
    fn the_budget_allows_its_share_and_no_more() {
        let budget = RetryBudget::new(0.1, 2, 5);
        assert!(budget.withdraw() && budget.withdraw());
        assert!(!budget.withdraw());
        for _ in 0..10 {
            budget.deposit();
        }
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
        for _ in 0..1000 {
            budget.deposit();
        }
        let granted = (0..10).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 5, "the ceiling bounds what is banked");
    }
}
