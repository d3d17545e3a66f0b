//! The benchmark: one `Client::gather` of N POSTs, and what it cost.
//!
//! Each of the N calls is a POST of `{"sleep_time": S/1000}` (the stub sleeps that many
//! seconds before it answers), and all N go into ONE `gather` on a client with at most C
//! calls in flight (C = 0 or absent: all at once). It measures the batch's wall time
//! (the report's `elapsed`), the throughput N / wall time, the p50 and p99 of the calls'
//! own `elapsed` (nearest rank, over every outcome) and the process's peak RSS
//! (`VmHWM` from /proc/self/status, so with the in-process stub it counts client and
//! server together).
//!
//! ```text
//! cargo run --release --example bench -- --requests 5000 --sleep-ms 1000
//! cargo run --release --example bench -- --requests 1000 --concurrency 100 --sleep-ms 0 \
//!     --url http://127.0.0.1:30001/api       # against `cargo run --release --example gather -- --serve`
//! ```
//!
//! Without `--url` it starts its own stub in this process. Human lines come first; the
//! last line is one JSON object:
//! `{"requests":N,"ok":K,"elapsed_s":…,"req_per_s":…,"p50_ms":…,"p99_ms":…,"peak_rss_kib":…}`.
//! Exit status: 0 when all N calls got a 200, 1 when any did not, 2 for a usage error.
//! 5,000 calls in flight with the in-process stub need about 10,000 file descriptors:
//! check `ulimit -n`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use fanout::stub::{Stub, MAX_SLEEP_SECS};
use fanout::{Client, Endpoint, Outcome};
use serde_json::json;

/// The `--help` text.
const HELP: &str = "\
bench: one gather of N POSTs {\"sleep_time\": S/1000}; prints the wall time, req/s,
p50/p99 latency and peak RSS, the last line as one JSON object

USAGE:
    cargo run --release --example bench -- [--requests N] [--concurrency C] [--sleep-ms S] [--url URL]

OPTIONS:
    --requests N      calls in the batch, at least 1 (default 1000)
    --concurrency C   at most C calls in flight; 0 = all at once (default 0)
    --sleep-ms S      how long the server sleeps before each reply, in ms (default 0)
    --url URL         the server to POST to, e.g. http://127.0.0.1:30001/api from
                      `cargo run --release --example gather -- --serve`; without it,
                      a stub is started in this process
    -h, --help        print this help

EXIT STATUS:
    0  every call got a 200    1  some did not    2  usage error";

/// How long each call may take beyond the server's sleep before it counts as a timeout.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(60);

/// What the command line asked for.
#[derive(Debug)]
struct Args {
    /// N: how many calls the batch holds.
    requests: usize,
    /// C: the most calls in flight at once; 0 is all of them.
    concurrency: usize,
    /// S: the server's sleep before each reply, in ms.
    sleep_ms: u64,
    /// The server to call; `None` starts a stub in this process.
    url: Option<String>,
}

/// Reads the flags; `Ok(None)` means `--help`. Four flags: a hand-written match does.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        requests: 1000,
        concurrency: 0,
        sleep_ms: 0,
        url: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--requests" => parsed.requests = number(&flag, &value()?)?,
            "--concurrency" => parsed.concurrency = number(&flag, &value()?)?,
            "--sleep-ms" => parsed.sleep_ms = number(&flag, &value()?)?,
            "--url" => parsed.url = Some(value()?),
            other => return Err(format!("unknown argument `{other}` (see --help)")),
        }
    }
    if parsed.requests == 0 {
        return Err("--requests must be at least 1".to_owned());
    }
    if parsed.sleep_ms as f64 / 1000.0 > MAX_SLEEP_SECS {
        return Err(format!(
            "--sleep-ms must be at most {} (the stub's limit)",
            MAX_SLEEP_SECS * 1000.0
        ));
    }
    Ok(Some(parsed))
}

/// `text` as a non-negative integer, or words saying which flag it was wrong for.
fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} needs a whole number >= 0, not `{text}`"))
}

/// Parses the flags, runs the one gather, prints the summary; see the exit statuses above.
fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("bench: {problem}");
            return ExitCode::from(2);
        }
    };

    // The stub lives until the end of main; with --url none is started.
    let (url, _stub) = match args.url {
        Some(url) => (url, None),
        None => match Stub::start_local() {
            Ok(stub) => (stub.url(), Some(stub)),
            Err(err) => {
                eprintln!("bench: cannot start the in-process stub ({err})");
                return ExitCode::from(2);
            }
        },
    };
    let client = match args.concurrency {
        0 => Client::builder().build(),
        c => Client::builder().concurrency(c).build(),
    };
    let client = match client {
        Ok(client) => client,
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::from(2);
        }
    };

    let sleep = Duration::from_millis(args.sleep_ms);
    let endpoints: Vec<Endpoint> = (0..args.requests)
        .map(|i| {
            Endpoint::post(format!("call_{i}"), &url)
                .json(json!({ "sleep_time": sleep.as_secs_f64() }))
                .timeout(sleep + TIMEOUT_MARGIN)
        })
        .collect();
    if let Some(problem) = endpoints.first().and_then(Endpoint::problem) {
        eprintln!("bench: --url: {problem}");
        return ExitCode::from(2);
    }

    let in_flight = match args.concurrency {
        0 => "all at once".to_owned(),
        c => format!("at most {c} at once"),
    };
    println!(
        "gathering {} POSTs to {url}, sleep {} ms, {in_flight}",
        args.requests, args.sleep_ms
    );
    let report = async_std::task::block_on(client.gather(&endpoints));

    let ok = report
        .outcomes
        .iter()
        .filter(|o| o.reply().is_some_and(|r| r.status == 200))
        .count();
    let failures = failure_summary(&report.outcomes);
    let mut latencies: Vec<Duration> = report.outcomes.iter().map(|o| o.elapsed).collect();
    latencies.sort_unstable();
    let elapsed_s = report.elapsed.as_secs_f64();
    let summary = json!({
        "requests": args.requests,
        "ok": ok,
        "elapsed_s": round(elapsed_s, 6),
        "req_per_s": round(args.requests as f64 / elapsed_s, 1),
        "p50_ms": round(percentile_ms(&latencies, 50.0), 3),
        "p99_ms": round(percentile_ms(&latencies, 99.0), 3),
        "peak_rss_kib": peak_rss_kib(),
    });

    for (what, (count, example)) in &failures {
        println!("{count} x {what}, e.g. {example}");
    }
    println!(
        "{ok}/{} ok in {elapsed_s:.3} s: {} req/s, p50 {} ms, p99 {} ms, peak RSS {} kiB",
        args.requests,
        summary["req_per_s"],
        summary["p50_ms"],
        summary["p99_ms"],
        summary["peak_rss_kib"]
    );
    println!("{summary}");
    if ok == args.requests {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The calls that did not get a 200, by error kind or status: how many, and one message.
fn failure_summary(outcomes: &[Outcome]) -> BTreeMap<String, (usize, String)> {
    let mut failures = BTreeMap::new();
    for outcome in outcomes {
        let (what, example) = match &outcome.result {
            Ok(reply) if reply.status == 200 => continue,
            Ok(reply) => (format!("status {}", reply.status), reply.body.to_string()),
            Err(err) => (err.kind().to_string(), err.to_string()),
        };
        failures.entry(what).or_insert((0, example)).0 += 1;
    }
    failures
}

/// The `p`th percentile of sorted latencies in ms, by nearest rank.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `x` rounded to `digits` decimals, so the JSON line stays readable.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// The process's peak resident set size in kiB (`VmHWM`), where /proc says it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
