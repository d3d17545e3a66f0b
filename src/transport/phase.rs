//! How far a call got, so that a timeout can say what it cut short. This module owns
//! both the phases and their words; the transport moves a call from one to the next.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// One phase of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Resolving, connecting and the TLS handshake.
    Connecting = 0,
    /// The request is sent (or being sent); no reply head yet.
    Waiting = 1,
    /// The head has arrived; the body is being read.
    ReadingBody = 2,
}

impl Phase {
    /// The phase in the words of a timeout message.
    fn words(self) -> &'static str {
        match self {
            Phase::Connecting => "while connecting",
            Phase::Waiting => "waiting for the response",
            Phase::ReadingBody => "while reading the response body",
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

/// The phase a call is in, shared between the client (which reads it when the timeout
/// fires) and the transport (which moves it along). The client puts one in the
/// request's extensions.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU8);

impl Progress {
    pub(crate) fn enter(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            0 => Phase::Connecting,
            1 => Phase::Waiting,
            _ => Phase::ReadingBody,
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
    fn progress_moves_through_the_phases() {
        let progress = Progress::default();
        assert_eq!(progress.phase(), Phase::Connecting);
        progress.enter(Phase::ReadingBody);
        assert_eq!(
            progress.phase().timed_out(Duration::from_secs(2)),
            "timed out after 2 s while reading the response body"
        );
    }
}
