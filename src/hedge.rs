//! Hedged requests ("The Tail at Scale", Dean and Barroso, 2013): when a reply is late,
//! send a second copy on another connection and take whichever complete reply comes
//! first. The delay is fixed, or follows a high percentile of recent latencies to the
//! origin; a budget stops hedging when everything is slow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::retry::RetryBudget;

/// How many latencies a window holds before it becomes the previous one: the adaptive
/// delay follows the last 1,000 to 2,000 calls to an origin.
const WINDOW: u64 = 1_000;

/// How many latencies an origin needs before its percentile is trusted; until then
/// an adaptive policy sends no hedges.
const MIN_SAMPLES: u64 = 50;

/// The hedges a client may send beyond its share when calls turn slow.
const HEDGES_BANKED: u32 = 10;

/// The most origins whose latencies are kept: past it, one is forgotten to make room,
/// so that a sweep over a million hosts stays in constant memory.
const MAX_ORIGINS: usize = 1024;

/// When to send a hedge.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum HedgeDelay {
    /// After this long without a reply.
    Fixed(Duration),
    /// After this percentile (such as 95.0) of the client's recent latencies to the
    /// endpoint's origin.
    Percentile(f64),
}

/// Hedging: for idempotent endpoints only, a second copy of a request that has had no
/// reply after the delay; the first complete reply wins, and the other copy is dropped
/// with its connection closed. A budget (5% extra requests by default) stops hedging
/// when every call is slow, so an overloaded backend is not sent twice the load.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fanout::{Client, HedgePolicy};
///
/// let fixed = Client::builder().hedge(HedgePolicy::after(Duration::from_millis(50))).build();
/// let adaptive = Client::builder().hedge(HedgePolicy::adaptive()).build();
/// assert!(fixed.is_ok() && adaptive.is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HedgePolicy {
    delay: HedgeDelay,
    /// What an adaptive delay's percentile is multiplied by.
    margin: f64,
    max_hedges: u32,
    ratio: f64,
}

/// The margin of [`HedgePolicy::adaptive`]: twice the 95th percentile. With the bare
/// percentile, 5% of calls are over it by definition and every one of them would be
/// hedged, spending the whole 5% budget on calls that are only a little slow (the
/// bench: 3.2% extra requests and a batch p99 still at the 1 s tail); at twice it,
/// hedges go to the real tail (1% extra, batch p99 down to tens of ms). See
/// BENCHMARKS.md.
pub const ADAPTIVE_MARGIN: f64 = 2.0;

impl HedgePolicy {
    /// A hedge after `delay` without a reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{HedgeDelay, HedgePolicy};
    ///
    /// let policy = HedgePolicy::after(Duration::from_millis(50));
    /// assert_eq!(policy.delay(), HedgeDelay::Fixed(Duration::from_millis(50)));
    /// ```
    pub fn after(delay: Duration) -> Self {
        HedgePolicy {
            delay: HedgeDelay::Fixed(delay),
            margin: 1.0,
            max_hedges: 1,
            ratio: 0.05,
        }
    }

    /// A hedge after twice ([`ADAPTIVE_MARGIN`]) the 95th percentile of recent
    /// latencies to the origin, once 50 calls to it have been seen.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{HedgePolicy, ADAPTIVE_MARGIN};
    ///
    /// let policy = HedgePolicy::adaptive();
    /// assert_eq!(policy, HedgePolicy::at_percentile(95.0).margin(ADAPTIVE_MARGIN));
    /// ```
    pub fn adaptive() -> Self {
        Self::at_percentile(95.0).margin(ADAPTIVE_MARGIN)
    }

    /// A hedge after `percentile` of recent latencies to the origin (times the
    /// [`margin`](Self::margin), 1 unless set).
    /// A percentile outside 0 to 100 is taken as the nearer of the two.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{HedgeDelay, HedgePolicy};
    ///
    /// assert_eq!(HedgePolicy::at_percentile(99.0).delay(), HedgeDelay::Percentile(99.0));
    /// assert_eq!(HedgePolicy::at_percentile(150.0).delay(), HedgeDelay::Percentile(100.0));
    /// ```
    pub fn at_percentile(percentile: f64) -> Self {
        HedgePolicy {
            delay: HedgeDelay::Percentile(percentile.clamp(0.0, 100.0)),
            ..Self::after(Duration::ZERO)
        }
    }

    /// Multiplies an adaptive delay's percentile by `factor` (at least 1).
    /// A factor below 1, or not finite, is taken as 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::HedgePolicy;
    ///
    /// let p99 = HedgePolicy::at_percentile(99.0);
    /// assert_ne!(p99.clone().margin(1.5), p99);
    /// assert_eq!(p99.clone().margin(0.5), p99); // at least 1
    /// ```
    pub fn margin(mut self, factor: f64) -> Self {
        self.margin = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// At most `n` hedges per call (default 1), each a delay after the last.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, HedgePolicy};
    ///
    /// let policy = HedgePolicy::after(Duration::from_millis(50));
    /// assert_eq!(policy.clone().max_hedges(1), policy); // the default
    /// assert!(Client::builder().hedge(policy.max_hedges(2)).build().is_ok());
    /// ```
    pub fn max_hedges(mut self, n: u32) -> Self {
        self.max_hedges = n;
        self
    }

    /// The share of extra requests hedges may add (default 0.05: 5%).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fanout::{Client, HedgePolicy};
    ///
    /// let policy = HedgePolicy::after(Duration::from_millis(50));
    /// assert_eq!(policy.clone().budget(0.05), policy); // the default
    /// assert!(Client::builder().hedge(policy.budget(0.01)).build().is_ok());
    /// ```
    pub fn budget(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// The delay rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{HedgeDelay, HedgePolicy};
    ///
    /// assert!(matches!(HedgePolicy::adaptive().delay(), HedgeDelay::Percentile(p) if p == 95.0));
    /// ```
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }
}

/// A client's hedging: its policy, the latencies it has seen, and its budget.
#[derive(Debug)]
pub(crate) struct Hedging {
    policy: HedgePolicy,
    latencies: Mutex<HashMap<String, Window>>,
    budget: RetryBudget,
}

impl Hedging {
    pub(crate) fn new(policy: HedgePolicy) -> Self {
        // A floor of 10 lets a quiet client hedge at all, and the ceiling is the same 10:
        // a healthy spell banks no more, so that when every call turns slow, at most 10
        // hedges go out before the budget holds them to its share.
        let budget = RetryBudget::new(policy.ratio, HEDGES_BANKED, HEDGES_BANKED);
        Hedging {
            policy,
            latencies: Mutex::default(),
            budget,
        }
    }

    pub(crate) fn max_hedges(&self) -> u32 {
        self.policy.max_hedges
    }

    /// Whether the delay follows the latencies to an origin.
    pub(crate) fn is_adaptive(&self) -> bool {
        matches!(self.policy.delay, HedgeDelay::Percentile(_))
    }

    /// The delay before a hedge to `origin` (`None` for a fixed delay), if one may be
    /// sent at all.
    pub(crate) fn delay(&self, origin: Option<&str>) -> Option<Duration> {
        match self.policy.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile(p) => {
                let percentile = self.lock().get(origin?)?.percentile(p)?;
                Some(percentile.mul_f64(self.policy.margin))
            }
        }
    }

    /// A call's first copy went out: it earns the budget its share.
    pub(crate) fn first_copy_sent(&self) {
        self.budget.deposit();
    }

    /// Whether the budget allows one more hedge.
    pub(crate) fn allow(&self) -> bool {
        self.budget.withdraw()
    }

    /// A copy to `origin` got its reply after `latency`.
    pub(crate) fn record(&self, origin: &str, latency: Duration) {
        if let HedgeDelay::Percentile(_) = self.policy.delay {
            let mut latencies = self.lock();
            match latencies.get_mut(origin) {
                Some(window) => window.record(latency),
                None => {
                    if latencies.len() >= MAX_ORIGINS {
                        // Which one goes matters little: a forgotten origin only waits
                        // for 50 calls before it is hedged again.
                        if let Some(gone) = latencies.keys().next().cloned() {
                            latencies.remove(&gone);
                        }
                    }
                    let mut window = Window::default();
                    window.record(latency);
                    latencies.insert(origin.to_owned(), window);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        self.latencies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Recent latencies to one origin in constant memory: the current window and the one
/// before it, as HDR histograms of microseconds to 2 significant digits.
#[derive(Debug)]
struct Window {
    current: Histogram<u64>,
    previous: Histogram<u64>,
}

impl Default for Window {
    fn default() -> Self {
        let empty = || Histogram::new(2).unwrap_or_else(|_| unreachable!("2 digits is valid"));
        Window {
            current: empty(),
            previous: empty(),
        }
    }
}

impl Window {
    fn record(&mut self, latency: Duration) {
        if self.current.len() >= WINDOW {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.reset();
        }
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if self.current.record(micros).is_err() {
            self.current.saturating_record(micros);
        }
    }

    /// `p` over both windows, once there are enough latencies to trust it.
    fn percentile(&self, p: f64) -> Option<Duration> {
        let mut both = self.current.clone();
        both.add(&self.previous).ok()?;
        (both.len() >= MIN_SAMPLES).then(|| Duration::from_micros(both.value_at_percentile(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adaptive_delay_waits_for_enough_samples_then_follows_the_percentile() {
        let hedging = Hedging::new(HedgePolicy::adaptive());
        for _ in 0..MIN_SAMPLES - 1 {
            hedging.record("a", Duration::from_millis(10));
        }
        assert_eq!(hedging.delay(Some("a")), None);
        hedging.record("a", Duration::from_millis(10));
        let delay = hedging.delay(Some("a")).unwrap_or_default();
        assert!((18..=22).contains(&delay.as_millis()), "{delay:?}");
        assert_eq!(hedging.delay(Some("b")), None);
    }

    #[test]
    fn the_window_forgets_what_is_two_windows_old() {
        let hedging = Hedging::new(HedgePolicy::at_percentile(50.0));
        for _ in 0..WINDOW {
            hedging.record("a", Duration::from_millis(100));
        }
        for _ in 0..2 * WINDOW {
            hedging.record("a", Duration::from_millis(5));
        }
        let delay = hedging.delay(Some("a")).unwrap_or_default();
        assert!(delay < Duration::from_millis(10), "{delay:?}");
    }

    #[test]
    fn the_budget_stops_hedges_when_every_call_wants_one() {
        let hedging = Hedging::new(HedgePolicy::after(Duration::ZERO));
        let mut hedges = 0;
        for _ in 0..1000 {
            hedging.first_copy_sent();
            if hedging.allow() {
                hedges += 1;
            }
        }
        // 5% of 1,000 plus the 10 it starts with.
        assert!((50..=61).contains(&hedges), "{hedges}");
    }
}
