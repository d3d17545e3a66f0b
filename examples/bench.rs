//! The benchmark: batches of POSTs to the stub, and what they cost.
//!
//! Three modes, each a POST of `{"sleep_time": S/1000}` per call (the stub sleeps that
//! many seconds before it answers):
//! - **batch** (the default): ONE `gather` of N calls with at most C in flight (C = 0:
//!   all at once). It reports the gather's wall time, the throughput N / that time, the
//!   p50 and p99 of the calls' own `elapsed` and the process's peak RSS (`VmHWM`, so
//!   with the in-process stub it counts client and server together). The N endpoints
//!   are built before the clock starts, as a service builds its endpoints once and
//!   gathers them again and again (and as wrk builds its one request once); building
//!   them is reported on its own (`build_s`).
//! - **stream** (`--stream`): the same N calls pulled one by one from a lazy source
//!   through `gather_stream`, so the endpoints never exist all at once: peak RSS shows
//!   whether memory stays flat in N. Each endpoint is built when the stream asks for
//!   it, so the wall time includes building them (`build_s` is null).
//! - **tail** (`--batches B --batch-size K`): B batches of K calls one after another,
//!   with a latency tail (`--tail-p`, `--tail-ms`: that share of calls sleeps that long),
//!   optionally hedged (`--hedge-after MS|auto`, `--max-hedges H`), after one warm-up
//!   batch that is not counted; it reports the p50/p99/max of the *batch* latency and
//!   the extra requests sent.
//!
//! ```text
//! cargo run --release --example bench -- --requests 5000 --sleep-ms 1000
//! cargo run --release --example bench -- --requests 20000 --concurrency 100 --sleep-ms 0 \
//!     --url http://127.0.0.1:30001/api       # against `cargo run --release --example gather -- --serve`
//! cargo run --release --example bench -- --stream --requests 1000000 --concurrency 1000 --url …
//! cargo run --release --example bench -- --tail-p 0.01 --tail-ms 1000 --sleep-ms 5 \
//!     --batches 200 --batch-size 100 --hedge-after auto
//! ```
//!
//! Without `--url` it starts its own stub in this process. Human lines come first; the
//! last line is one JSON object: `{"requests","ok","build_s","elapsed_s","req_per_s",
//! "p50_ms","p99_ms","peak_rss_kib"}` for batch and stream, `{"batches","batch_size",
//! "batch_p50_ms","batch_p99_ms","batch_max_ms","requests_sent","extra_requests_pct"}`
//! for tail. Exit status: 0 when all calls got a 200, 1 when any did not, 2 for a usage
//! error. 5,000 calls in flight with the in-process stub need about 10,000 file
//! descriptors: check `ulimit -n`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fanout::stub::{Stub, MAX_SLEEP_SECS};
use fanout::{Client, Endpoint, HedgePolicy, Outcome, Summary};
use futures::StreamExt;
use serde_json::{json, Value};

/// The `--help` text.
const HELP: &str = "\
bench: batches of POSTs {\"sleep_time\": S/1000} to the stub; prints wall time, req/s,
latency percentiles and peak RSS, the last line as one JSON object

USAGE:
    cargo run --release --example bench -- [--requests N] [--concurrency C] [--sleep-ms S]
                                           [--url URL] [--stream]
    cargo run --release --example bench -- --batches B --batch-size K [--sleep-ms S]
                                           [--tail-p P --tail-ms T] [--url URL]
                                           [--hedge-after MS|auto] [--max-hedges H]

OPTIONS:
    --requests N      calls in the batch, at least 1 (default 1000)
    --concurrency C   at most C calls in flight; 0 = all at once (default 0)
    --sleep-ms S      how long the server sleeps before each reply, in ms (default 0)
    --url URL         the server to POST to, e.g. http://127.0.0.1:30001/api from
                      `cargo run --release --example gather -- --serve`; without it,
                      a stub is started in this process
    --stream          pull the N endpoints lazily through gather_stream
    --batches B       tail mode: B batches one after another (default 0: batch mode)
    --batch-size K    tail mode: K calls per batch, all at once (default 100)
    --tail-p P        tail mode: the share of calls that sleep --tail-ms instead (default 0)
    --tail-ms T       tail mode: the tail's sleep, in ms (default 1000)
    --hedge-after MS|auto
                      tail mode: hedge after MS ms, or after twice the 95th percentile
                      of recent latencies (auto)
    --max-hedges H    tail mode: at most H hedges per call, each a delay after the
                      last (default 1)
    -h, --help        print this help

EXIT STATUS:
    0  every call got a 200    1  some did not    2  usage error";

/// How long each call may take beyond the server's sleep before it counts as a timeout.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(60);

/// What the command line asked for.
#[derive(Debug)]
struct Args {
    requests: usize,
    concurrency: usize,
    sleep_ms: u64,
    url: Option<String>,
    stream: bool,
    batches: usize,
    batch_size: usize,
    tail_p: f64,
    tail_ms: u64,
    hedge: Option<HedgePolicy>,
    max_hedges: u32,
}

/// Reads the flags; `Ok(None)` means `--help`. With a dozen flags, lexopt keeps it plain.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parsed = Args {
        requests: 1000,
        concurrency: 0,
        sleep_ms: 0,
        url: None,
        stream: false,
        batches: 0,
        batch_size: 100,
        tail_p: 0.0,
        tail_ms: 1000,
        hedge: None,
        max_hedges: 1,
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let flag = match &arg {
            Long(name) => format!("--{name}"),
            Short(c) => format!("-{c}"),
            Value(v) => return Err(format!("unexpected argument `{}`", v.to_string_lossy())),
        };
        let mut value = || -> Result<String, String> {
            let v = parser
                .value()
                .map_err(|_| format!("{flag} needs a value"))?;
            Ok(v.to_string_lossy().into_owned())
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--requests" => parsed.requests = number(&flag, &value()?)?,
            "--concurrency" => parsed.concurrency = number(&flag, &value()?)?,
            "--sleep-ms" => parsed.sleep_ms = number(&flag, &value()?)?,
            "--url" => parsed.url = Some(value()?),
            "--stream" => parsed.stream = true,
            "--batches" => parsed.batches = number(&flag, &value()?)?,
            "--batch-size" => parsed.batch_size = number(&flag, &value()?)?,
            "--tail-ms" => parsed.tail_ms = number(&flag, &value()?)?,
            "--max-hedges" => parsed.max_hedges = number(&flag, &value()?)?,
            "--tail-p" => {
                let text = value()?;
                parsed.tail_p = text
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or(format!("--tail-p needs a share from 0 to 1, not `{text}`"))?;
            }
            "--hedge-after" => {
                let text = value()?;
                parsed.hedge = Some(match text.as_str() {
                    "auto" => HedgePolicy::adaptive(),
                    ms => HedgePolicy::after(Duration::from_millis(number(&flag, ms)?)),
                });
            }
            _ => return Err(format!("unknown argument `{flag}` (see --help)")),
        }
    }
    if parsed.requests == 0 || parsed.batch_size == 0 {
        return Err("--requests and --batch-size must be at least 1".to_owned());
    }
    if parsed.sleep_ms.max(parsed.tail_ms) as f64 / 1000.0 > MAX_SLEEP_SECS {
        return Err(format!(
            "--sleep-ms and --tail-ms must be at most {} (the stub's limit)",
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

/// Parses the flags, runs the mode asked for, prints what it cost.
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
    let (url, _stub) = match &args.url {
        Some(url) => (url.clone(), None),
        None => match Stub::start_local() {
            Ok(stub) => (stub.url(), Some(stub)),
            Err(err) => {
                eprintln!("bench: cannot start the in-process stub ({err})");
                return ExitCode::from(2);
            }
        },
    };
    if let Some(problem) = Endpoint::post("probe", &url).problem() {
        eprintln!("bench: --url: {problem}");
        return ExitCode::from(2);
    }
    let mut builder = Client::builder();
    if args.concurrency > 0 {
        builder = builder.concurrency(args.concurrency);
    }
    if let Some(hedge) = &args.hedge {
        builder = builder.hedge(hedge.clone().max_hedges(args.max_hedges));
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::from(2);
        }
    };

    let all_ok = if args.batches > 0 {
        tail(&client, &url, &args)
    } else {
        throughput(&client, &url, &args)
    };
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The `i`th call of a batch.
fn call(i: usize, url: &str, body: &Value, sleep: Duration) -> Endpoint {
    Endpoint::post(format!("call_{i}"), url)
        .json(body.clone())
        .timeout(sleep + TIMEOUT_MARGIN)
}

/// Batch and stream modes: N calls, their wall time, throughput, latency and memory.
fn throughput(client: &Client, url: &str, args: &Args) -> bool {
    let sleep = Duration::from_millis(args.sleep_ms);
    let body = json!({ "sleep_time": sleep.as_secs_f64() });
    let in_flight = match args.concurrency {
        0 => "all at once".to_owned(),
        c => format!("at most {c} at once"),
    };
    let mode = if args.stream {
        "streaming"
    } else {
        "gathering"
    };
    println!(
        "{mode} {} POSTs to {url}, sleep {} ms, {in_flight}",
        args.requests, args.sleep_ms
    );
    let mut build_s = None;
    let mut summary = Summary::default();
    let mut ok = 0;
    let mut failures = BTreeMap::new();
    let mut count = |outcome: &Outcome| {
        summary.add(outcome);
        match &outcome.result {
            Ok(reply) if reply.status == 200 => ok += 1,
            Ok(reply) => note(
                &mut failures,
                format!("status {}", reply.status),
                &reply.body,
            ),
            Err(err) => note(
                &mut failures,
                err.kind().to_string(),
                &err.to_string().into(),
            ),
        }
    };
    let elapsed_s = if args.stream {
        // Endpoints are made as the stream asks for them: never more than C exist (when
        // C > 0), and their making is in the time, as is each outcome's tally.
        let started = Instant::now();
        let source = (0..args.requests).map(|i| call(i, url, &body, sleep));
        let mut landed = client.gather_stream(source);
        async_std::task::block_on(async {
            while let Some((_, outcome)) = landed.next().await {
                count(&outcome);
            }
        });
        started.elapsed().as_secs_f64()
    } else {
        let building = Instant::now();
        let endpoints: Vec<Endpoint> = (0..args.requests)
            .map(|i| call(i, url, &body, sleep))
            .collect();
        build_s = Some(round(building.elapsed().as_secs_f64(), 6));
        let started = Instant::now();
        let report = async_std::task::block_on(client.gather(&endpoints));
        let elapsed_s = started.elapsed().as_secs_f64();
        report.outcomes.iter().for_each(&mut count);
        elapsed_s
    };
    let result = json!({
        "requests": args.requests,
        "ok": ok,
        "build_s": build_s,
        "elapsed_s": round(elapsed_s, 6),
        "req_per_s": round(args.requests as f64 / elapsed_s, 1),
        "p50_ms": round(ms(summary.latency(50.0)), 3),
        "p99_ms": round(ms(summary.latency(99.0)), 3),
        "peak_rss_kib": peak_rss_kib(),
    });
    for (what, (count, example)) in &failures {
        println!("{count} x {what}, e.g. {example}");
    }
    println!(
        "{ok}/{} ok in {elapsed_s:.3} s: {} req/s, p50 {} ms, p99 {} ms, peak RSS {} kiB",
        args.requests,
        result["req_per_s"],
        result["p50_ms"],
        result["p99_ms"],
        result["peak_rss_kib"]
    );
    println!("{result}");
    ok == args.requests
}

/// Tail mode: batches one after another, each as slow as its slowest call; the
/// percentiles of whole batches, and how many requests hedging added.
fn tail(client: &Client, url: &str, args: &Args) -> bool {
    let body = json!({
        "sleep_time": args.sleep_ms as f64 / 1000.0,
        "tail": {"p": args.tail_p, "sleep_time": args.tail_ms as f64 / 1000.0},
    });
    // Hedging is for idempotent calls; these POSTs are (the stub only sleeps).
    let sleep = Duration::from_millis(args.sleep_ms.max(args.tail_ms));
    let endpoints: Vec<Endpoint> = (0..args.batch_size)
        .map(|i| call(i, url, &body, sleep).idempotent(true))
        .collect();
    println!(
        "{} batches of {} POSTs to {url}, sleep {} ms, {}% of calls {} ms, hedging {:?}",
        args.batches,
        args.batch_size,
        args.sleep_ms,
        args.tail_p * 100.0,
        args.tail_ms,
        args.hedge.as_ref().map(HedgePolicy::delay)
    );
    let mut extra = 0;
    // One batch first, not counted: a long-lived client has seen its backends before,
    // and an adaptive delay needs 50 latencies of an origin before it hedges at all.
    async_std::task::block_on(client.gather(&endpoints));
    let mut batch_times = Vec::with_capacity(args.batches);
    let mut ok = 0;
    for _ in 0..args.batches {
        let report = async_std::task::block_on(client.gather(&endpoints));
        batch_times.push(report.elapsed);
        extra += report.summary().hedges_sent() as usize;
        ok += report
            .outcomes
            .iter()
            .filter(|o| o.reply().is_some_and(|r| r.status == 200))
            .count();
    }
    batch_times.sort_unstable();
    let calls = args.batches * args.batch_size;
    let result = json!({
        "batches": args.batches,
        "batch_size": args.batch_size,
        "batch_p50_ms": round(ms(nearest_rank(&batch_times, 50.0)), 3),
        "batch_p99_ms": round(ms(nearest_rank(&batch_times, 99.0)), 3),
        "batch_max_ms": round(ms(nearest_rank(&batch_times, 100.0)), 3),
        "requests_sent": calls + extra,
        "extra_requests_pct": round(extra as f64 * 100.0 / calls as f64, 2),
    });
    println!(
        "{ok}/{calls} ok; batch p50 {} ms, p99 {} ms, max {} ms; {extra} hedges ({}% extra)",
        result["batch_p50_ms"],
        result["batch_p99_ms"],
        result["batch_max_ms"],
        result["extra_requests_pct"]
    );
    println!("{result}");
    ok == calls
}

/// Counts one failure under `what`, keeping the first example.
fn note(failures: &mut BTreeMap<String, (usize, String)>, what: String, example: &Value) {
    failures.entry(what).or_insert((0, example.to_string())).0 += 1;
}

/// The `p`th percentile of sorted durations, by nearest rank.
fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
