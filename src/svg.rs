//! A picture of a batch: one horizontal bar per call on one time axis, in input order,
//! its phases in colour, failures marked with their kind, the batch's total as a line.
//! Plain SVG text: no dependency, and any browser shows it.

use std::fmt::Write;
use std::time::Duration;

use crate::phase::Phase;
use crate::report::Report;

/// The most bars [`Report::timeline_svg`] draws: past it, one call in every `n` is drawn,
/// and the picture says so, so that 10,000 calls still make a readable picture of a few
/// hundred KiB.
pub const TIMELINE_MAX_BARS: usize = 400;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 90.0;
const TOP: f64 = 58.0;
const ROW: f64 = 18.0;
const BAR: f64 = 12.0;

/// The colour of a phase: greys and blues for a call's own course, warm colours for
/// what the client added (connecting, backoff), violet for hedging.
fn colour(phase: Phase) -> &'static str {
    match phase {
        Phase::Queued => "#d9d9d9",
        Phase::Connecting => "#f4a261",
        Phase::Waiting => "#8ecae6",
        Phase::ReadingBody => "#1d6fa5",
        Phase::Backoff => "#e9c46a",
        Phase::Hedged => "#9b5de5",
    }
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1.5 s`, `120 ms`: a tick label.
fn label(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        crate::phase::seconds(d)
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A tick interval giving about eight ticks over `total`: 1, 2 or 5 times a power of 10.
fn tick_step(total: Duration) -> Duration {
    let rough = total.as_secs_f64() / 8.0;
    if rough <= 0.0 {
        return Duration::from_millis(1);
    }
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    Duration::from_secs_f64(step.max(1e-3))
}

/// The report as an SVG document; see [`Report::timeline_svg`].
pub(crate) fn render(report: &Report) -> String {
    let n = report.outcomes.len();
    let every = n.div_ceil(TIMELINE_MAX_BARS).max(1);
    let shown: Vec<usize> = (0..n).step_by(every).collect();
    let total = report
        .outcomes
        .iter()
        .map(|o| o.timeline.end())
        .fold(report.elapsed, Duration::max)
        .max(Duration::from_millis(1));
    let scale = (WIDTH - LEFT - RIGHT) / total.as_secs_f64();
    let x = |d: Duration| LEFT + d.as_secs_f64() * scale;
    let height = TOP + ROW * shown.len() as f64 + 60.0;

    let mut svg = String::with_capacity(400 + shown.len() * 500);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    svg.push_str(r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let failed = report.outcomes.iter().filter(|o| o.result.is_err()).count();
    let mut title = format!(
        "{n} calls, {failed} failed, total {}",
        crate::phase::seconds(report.elapsed)
    );
    if every > 1 {
        let _ = write!(title, " (one call in {every} shown)");
    }
    let _ = write!(
        svg,
        r#"<text class="title" x="{LEFT}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(&title)
    );

    // Legend, under the title.
    let mut lx = LEFT;
    for phase in Phase::ALL {
        let (colour, words) = (colour(phase), phase.describe());
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="28" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="37">{words}</text>"#,
            lx + 13.0
        );
        lx += 20.0 + words.len() as f64 * 5.6;
    }
    let _ = write!(
        svg,
        r##"<rect x="{lx:.1}" y="28" width="10" height="10" fill="none" stroke="#d62828" stroke-width="2"/><text x="{:.1}" y="37">failed</text>"##,
        lx + 13.0
    );

    // Time axis: ticks and grid lines.
    let step = tick_step(total);
    let bottom = TOP + ROW * shown.len() as f64;
    let mut tick = Duration::ZERO;
    while tick <= total {
        let tx = x(tick);
        let _ = write!(
            svg,
            r##"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{bottom}" stroke="#eeeeee"/><text x="{tx:.1}" y="{}" text-anchor="middle" fill="#555555">{}</text>"##,
            TOP - 4.0,
            bottom + 14.0,
            label(tick)
        );
        tick += step;
    }

    for (row, &index) in shown.iter().enumerate() {
        let outcome = &report.outcomes[index];
        let y = TOP + ROW * row as f64;
        let kind = outcome.error().map(|e| e.kind().as_str());
        let _ = write!(
            svg,
            r#"<g class="call" data-index="{index}" data-name="{}" data-elapsed-ms="{:.3}"{}>"#,
            escape(&outcome.name),
            outcome.elapsed.as_secs_f64() * 1000.0,
            kind.map(|k| format!(r#" data-kind="{k}""#))
                .unwrap_or_default()
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + BAR - 2.0,
            escape(&outcome.name)
        );
        for (phase, from, to) in outcome.timeline.phases() {
            let colour = colour(phase);
            let _ = write!(
                svg,
                r#"<rect class="phase" data-phase="{}" x="{:.2}" y="{y}" width="{:.2}" height="{BAR}" fill="{colour}"/>"#,
                phase.as_str(),
                x(from),
                (to - from).as_secs_f64() * scale
            );
        }
        if let Some(kind) = kind {
            let (start, end) = (outcome.timeline.start(), outcome.timeline.end());
            let _ = write!(
                svg,
                r##"<rect x="{:.2}" y="{y}" width="{:.2}" height="{BAR}" fill="none" stroke="#d62828" stroke-width="2"/><text x="{:.2}" y="{}" fill="#d62828">{kind}</text>"##,
                x(start),
                (end - start).as_secs_f64() * scale,
                x(end) + 4.0,
                y + BAR - 2.0
            );
        }
        svg.push_str("</g>");
    }

    // The batch's total, as a line across every bar.
    let total_x = x(report.elapsed);
    let _ = write!(
        svg,
        r##"<line class="total" x1="{total_x:.2}" y1="{}" x2="{total_x:.2}" y2="{bottom}" stroke="#222222" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{total_x:.2}" y="{}" text-anchor="middle" font-weight="bold">total {}</text>"##,
        TOP - 14.0,
        bottom + 30.0,
        crate::phase::seconds(report.elapsed)
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_about_eight_to_the_axis() {
        assert_eq!(
            tick_step(Duration::from_secs(4)),
            Duration::from_millis(500)
        );
        assert_eq!(
            tick_step(Duration::from_millis(90)),
            Duration::from_millis(20)
        );
        assert_eq!(tick_step(Duration::from_secs(100)), Duration::from_secs(20));
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(escape(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
