//! The phases of a call: what a timeout cut short, in words, and when each phase began,
//! for the picture of a batch. This module owns both; the client and the transport
//! move a call from one phase to the next.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One phase of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Phase {
    /// Waiting for a slot under the batch's concurrency limit.
    Queued = 0,
    /// Resolving, connecting and the TLS handshake (or taking an idle connection).
    Connecting = 1,
    /// The request is sent (or being sent); no reply head yet.
    Waiting = 2,
    /// The head has arrived; the body is being read.
    ReadingBody = 3,
    /// Waiting before a retry.
    Backoff = 4,
    /// A hedged copy is out beside the first; the first reply of either ends it.
    Hedged = 5,
}

impl Phase {
    /// Every phase, in the order a call goes through them.
    pub const ALL: [Phase; 6] = [
        Phase::Queued,
        Phase::Connecting,
        Phase::Waiting,
        Phase::ReadingBody,
        Phase::Backoff,
        Phase::Hedged,
    ];

    /// A short name: `queued`, `connecting`, `waiting`, `reading_body`, `backoff`,
    /// `hedged`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::Phase;
    ///
    /// assert_eq!(Phase::ReadingBody.as_str(), "reading_body");
    /// let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    /// assert_eq!(names, ["queued", "connecting", "waiting", "reading_body", "backoff", "hedged"]);
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Connecting => "connecting",
            Phase::Waiting => "waiting",
            Phase::ReadingBody => "reading_body",
            Phase::Backoff => "backoff",
            Phase::Hedged => "hedged",
        }
    }

    /// What the phase is, for a legend: `waiting for a slot`, `connecting`, `waiting
    /// for the head`, `reading the body`, `backoff before a retry`, `hedged (two copies
    /// out)`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(fanout::Phase::Queued.describe(), "waiting for a slot");
    /// ```
    pub const fn describe(self) -> &'static str {
        match self {
            Phase::Queued => "waiting for a slot",
            Phase::Connecting => "connecting",
            Phase::Waiting => "waiting for the head",
            Phase::ReadingBody => "reading the body",
            Phase::Backoff => "backoff before a retry",
            Phase::Hedged => "hedged (two copies out)",
        }
    }

    fn from_u8(n: u8) -> Phase {
        Phase::ALL
            .get(usize::from(n))
            .copied()
            .unwrap_or(Phase::ReadingBody)
    }

    /// The phase in the words of a timeout message.
    fn words(self) -> &'static str {
        match self {
            Phase::Queued | Phase::Connecting => "while connecting",
            Phase::Waiting | Phase::Hedged => "waiting for the response",
            Phase::ReadingBody => "while reading the response body",
            Phase::Backoff => "while waiting to retry",
        }
    }

    /// `timed out after 2 s while reading the response body`.
    pub(crate) fn timed_out(self, limit: Duration) -> String {
        format!("timed out after {} {}", seconds(limit), self.words())
    }

    /// `timed out: the batch deadline of 1.5 s passed waiting for the response`.
    pub(crate) fn cut_by_deadline(self, deadline: Duration) -> String {
        format!(
            "timed out: the batch deadline of {} passed {}",
            seconds(deadline),
            self.words()
        )
    }
}

/// When each phase of a call began, counted from the start of its batch, and when the
/// call ended: what [`Report::timeline_svg`](crate::Report::timeline_svg) draws.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    marks: Vec<(Phase, Duration)>,
    end: Duration,
}

impl Timeline {
    /// Each phase with when it began and ended, in order.
    /// Each phase ends where the next begins, and the last where the call ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, Phase};
    ///
    /// // Nothing listens on port 1: the call ends while connecting.
    /// let outcome = futures::executor::block_on(Client::new().call(&Endpoint::get("down", "http://127.0.0.1:1/")));
    /// let phases: Vec<_> = outcome.timeline.phases().collect();
    /// assert_eq!(phases.len(), 1);
    /// let (phase, _began, ended) = phases[0];
    /// assert_eq!((phase, ended), (Phase::Connecting, outcome.timeline.end()));
    /// ```
    pub fn phases(&self) -> impl Iterator<Item = (Phase, Duration, Duration)> + '_ {
        let ends = self
            .marks
            .iter()
            .skip(1)
            .map(|(_, at)| *at)
            .chain(std::iter::once(self.end));
        self.marks
            .iter()
            .zip(ends)
            .map(|((phase, from), to)| (*phase, *from, to.max(*from)))
    }

    /// When the call began (left its queue), from the start of the batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint, Phase};
    ///
    /// // One call at a time: the second waits in the queue until the first is done.
    /// let client = Client::builder().concurrency(1).build().expect("valid settings");
    /// let endpoints = [
    ///     Endpoint::get("first", "http://127.0.0.1:1/"),
    ///     Endpoint::get("second", "http://127.0.0.1:1/"),
    /// ];
    /// let report = futures::executor::block_on(client.gather(&endpoints));
    /// let (first, second) = (&report.outcomes[0].timeline, &report.outcomes[1].timeline);
    /// assert!(second.start() >= first.end());
    /// assert_eq!(second.phases().next().map(|(phase, _, _)| phase), Some(Phase::Queued));
    /// ```
    pub fn start(&self) -> Duration {
        self.marks
            .iter()
            .find(|(phase, _)| *phase != Phase::Queued)
            .map_or(self.end, |(_, at)| *at)
    }

    /// When the call ended, from the start of the batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use fanout::{Client, Endpoint};
    ///
    /// let report = futures::executor::block_on(Client::new().gather(&[Endpoint::get("down", "http://127.0.0.1:1/")]));
    /// let timeline = &report.outcomes[0].timeline;
    /// assert!(timeline.start() <= timeline.end() && timeline.end() <= report.elapsed);
    /// ```
    pub fn end(&self) -> Duration {
        self.end
    }
}

/// The phase a call is in, shared between the client (which reads it when a timeout
/// fires) and the transport (which moves it along; it comes with each request's
/// `Outgoing`), with the marks of its timeline.
#[derive(Debug)]
pub(crate) struct Progress {
    phase: AtomicU8,
    /// The start of the batch, from which marks are counted.
    origin: Instant,
    marks: Mutex<Vec<(Phase, Duration)>>,
    /// Set while hedged copies run: their own phases would interleave, so the picture
    /// shows the call as hedged until it ends.
    hedged: AtomicBool,
}

impl Progress {
    /// A call of a batch that started at `origin`, and whose calls wait for a slot
    /// (`queued`); the call starts now.
    pub(crate) fn since(origin: Instant, queued: bool) -> Self {
        let mut marks = Vec::with_capacity(6);
        let now = origin.elapsed();
        if queued && !now.is_zero() {
            marks.push((Phase::Queued, Duration::ZERO));
        }
        marks.push((Phase::Connecting, now));
        Progress {
            phase: AtomicU8::new(Phase::Connecting as u8),
            origin,
            marks: Mutex::new(marks),
            hedged: AtomicBool::new(false),
        }
    }

    fn mark(&self, phase: Phase) {
        let at = self.origin.elapsed();
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        if marks.last().map(|(p, _)| *p) != Some(phase) {
            marks.push((phase, at));
        }
    }

    /// The call moves on to `phase`; while hedged copies run, their own phases are
    /// not the call's, which stays `Hedged`.
    pub(crate) fn enter(&self, phase: Phase) {
        if !self.hedged.load(Ordering::Relaxed) {
            self.phase.store(phase as u8, Ordering::Relaxed);
            self.mark(phase);
        }
    }

    /// A hedged copy went out.
    pub(crate) fn hedge_sent(&self) {
        self.enter(Phase::Hedged);
        self.hedged.store(true, Ordering::Relaxed);
    }

    /// A new attempt starts, or its wait does: the hedged copies, if any, are gone.
    pub(crate) fn next_attempt(&self, phase: Phase) {
        self.hedged.store(false, Ordering::Relaxed);
        self.enter(phase);
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// The timeline, ending now; the call is over, so its marks are taken, not copied.
    pub(crate) fn timeline(&self) -> Timeline {
        let marks = std::mem::take(&mut *self.marks.lock().unwrap_or_else(|p| p.into_inner()));
        Timeline {
            marks,
            end: self.origin.elapsed(),
        }
    }
}

/// `2 s`, `0.25 s`: a duration as a person writes it.
pub(crate) fn seconds(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_without_trailing_zeros() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn progress_moves_through_the_phases_and_marks_them() {
        let progress = Progress::since(Instant::now(), false);
        assert_eq!(progress.phase(), Phase::Connecting);
        progress.enter(Phase::Waiting);
        progress.enter(Phase::ReadingBody);
        assert_eq!(
            progress.phase().timed_out(Duration::from_secs(2)),
            "timed out after 2 s while reading the response body"
        );
        let phases: Vec<Phase> = progress.timeline().phases().map(|(p, _, _)| p).collect();
        assert_eq!(
            phases,
            [Phase::Connecting, Phase::Waiting, Phase::ReadingBody]
        );
    }

    #[test]
    fn a_call_that_waited_for_its_slot_starts_queued_and_phases_tile_its_time() {
        let origin = Instant::now() - Duration::from_millis(30);
        let progress = Progress::since(origin, true);
        progress.hedge_sent();
        progress.enter(Phase::ReadingBody); // a copy's phase: hidden while hedged
        let timeline = progress.timeline();
        let phases: Vec<_> = timeline.phases().collect();
        assert_eq!(phases[0].0, Phase::Queued);
        assert_eq!(phases.last().map(|p| p.0), Some(Phase::Hedged));
        assert!(timeline.start() >= Duration::from_millis(30));
        for pair in phases.windows(2) {
            assert_eq!(pair[0].2, pair[1].1, "phases meet end to start");
        }
        assert_eq!(phases.last().map(|p| p.2), Some(timeline.end()));
    }
}
