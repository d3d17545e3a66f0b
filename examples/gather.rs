//! The demo and command-line client: gathers named POSTs at once and prints one line per
//! endpoint, in order, then the total time.
//!
//! ```text
//! cargo run --example gather                      # four local stubs sleeping 1-4 s: about 4 s, not 10
//! cargo run --example gather -- --serve           # serve four stubs on ports 30001-30004 (leave it running)
//! cargo run --example gather -- --config FILE     # the endpoints of a JSON or JSON Lines file
//! ```
//! Exit status: 0 when every endpoint got a reply, 1 when any failed, 2 when it could not
//! start (a usage or configuration error, or a port it could not listen on).

use std::io::{BufRead, BufReader, IsTerminal};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fanout::stub::Stub;
use fanout::{
    Batch, Client, Endpoint, FailFast, HedgePolicy, LoadError, Outcome, Report, RetryPolicy,
    Summary,
};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

const HELP: &str = "\
gather: call several HTTP endpoints at once, each under its own timeout

USAGE:
    cargo run --example gather -- [--config FILE|-] [--jsonl] [--stream] [--json [--include-headers]]
                                  [--concurrency N] [--deadline SECONDS] [--fail-fast]
                                  [--retries N] [--hedge-after MS|auto] [--no-redirects]
                                  [--timeline FILE.svg] [--verbose] [--quiet]
    cargo run --example gather -- --serve

With no --config, starts four local stub servers sleeping 1, 2, 3 and 4 s and gathers
tmp_1..tmp_4 from them: the batch takes about 4 s, not 10.

To call servers of your own, or the bundled examples/endpoints.json, first run the stubs
it points at in another shell (`--serve`), then:
    cargo run --example gather -- --config examples/endpoints.json

OPTIONS:
    --config FILE   gather the endpoints of FILE, a JSON object of name -> {protocol,
                    host, port, route, content_type, time_out, data}, or {url, ...}
                    instead of protocol/host/port/route; optional: method (POST),
                    content_type (application/json), time_out (50 s), data, text,
                    headers, expect (json|text|bytes), idempotent.
                    e.g. examples/endpoints.json. `-` reads standard input.
    --jsonl         the input is JSON Lines, one endpoint per line: {\"name\": ..., <the
                    same fields>} (the default for a FILE ending in .jsonl). A bad line
                    becomes that endpoint's invalid_endpoint outcome, naming its line.
    --stream        print each outcome as it lands (with --json: one JSON object per
                    line carrying its input `index`), then a summary line; input is read
                    as the calls need it, so a sweep of any size runs in constant memory
                    (with --concurrency)
    --json          print the report as one line of JSON instead of one line per result
    --include-headers
                    with --json: each reply also carries its headers
    --concurrency N at most N calls in flight at once (default: all of them)
    --deadline S    a deadline for the whole batch, in seconds: calls in flight then end
                    as timeout, calls not started as cancelled
    --fail-fast     the first failure cancels the rest (they end as cancelled)
    --retries N     send a failed call again, up to N more times, with jittered backoff:
                    always when the request never left (refused, DNS, TLS), and for
                    idempotent endpoints (GET, HEAD, PUT, DELETE, OPTIONS, or marked
                    \"idempotent\": true) also timeouts, 429, 502, 503 and 504, and a
                    reused connection the server had closed; all within the call's time_out
    --hedge-after MS|auto
                    for idempotent endpoints: when no reply came after MS milliseconds
                    (auto: twice the 95th percentile of recent calls to that origin), send
                    a second copy on another connection and take the first reply
    --no-redirects  a 3xx is a reply, not followed (default: up to 10 followed)
    --quiet         no progress bar (it is only ever drawn on a terminal's stderr)
    --verbose       log each call's phases to stderr (tracing; RUST_LOG=fanout=debug
                    does the same, and RUST_LOG picks other levels)
    --timeline FILE.svg
                    draw the batch as a picture: one bar per call, its phases in colour
    --serve         only run four stubs on 127.0.0.1:30001-30004 until interrupted
    -h, --help      print this help

Split a sweep too big for one machine into shards, one process each:
    split -n l/4 -d sweep.jsonl shard_ && ls shard_* |
      xargs -P 4 -I{} sh -c 'gather --config {} --jsonl --stream --json --concurrency 500 > {}.out'

EXIT STATUS:
    0  every endpoint got a reply (any HTTP status)
    1  at least one endpoint failed (timeout, connect, protocol, decode, ...)
    2  it could not start: usage or configuration error, or a port it could not listen on";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    jsonl: bool,
    stream: bool,
    json: bool,
    include_headers: bool,
    concurrency: Option<usize>,
    deadline: Option<Duration>,
    fail_fast: bool,
    retries: Option<u32>,
    hedge: Option<HedgePolicy>,
    no_redirects: bool,
    quiet: bool,
    verbose: bool,
    timeline: Option<PathBuf>,
    serve: bool,
}

/// Parses the command line with `lexopt`: a dozen flags, some with values, is past what
/// a hand-written match keeps clear, and lexopt adds no dependencies of its own.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut parsed = Args::default();
    let usage = |e: lexopt::Error| format!("{e} (see --help)");
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("json") => parsed.json = true,
            Long("jsonl") => parsed.jsonl = true,
            Long("stream") => parsed.stream = true,
            Long("include-headers") => parsed.include_headers = true,
            Long("fail-fast") => parsed.fail_fast = true,
            Long("no-redirects") => parsed.no_redirects = true,
            Long("quiet") => parsed.quiet = true,
            Long("verbose") => parsed.verbose = true,
            Long("timeline") => {
                let file = parser.value().map_err(|_| "--timeline needs a FILE")?;
                parsed.timeline = Some(PathBuf::from(file));
            }
            Long("serve") => parsed.serve = true,
            Long("config") => {
                let file = parser.value().map_err(|_| "--config needs a FILE")?;
                parsed.config = Some(PathBuf::from(file));
            }
            Long("concurrency") => {
                let n = value_text(&mut parser, "--concurrency")?;
                parsed.concurrency = match n.parse::<usize>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return Err(format!(
                            "--concurrency needs a number of at least 1, not `{n}`"
                        ))
                    }
                };
            }
            Long("deadline") => {
                let s = value_text(&mut parser, "--deadline")?;
                let deadline = s
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok());
                parsed.deadline = match deadline {
                    Some(d) if !d.is_zero() => Some(d),
                    _ => return Err(format!("--deadline needs seconds above 0, not `{s}`")),
                };
            }
            Long("retries") => {
                let n = value_text(&mut parser, "--retries")?;
                parsed.retries = Some(
                    n.parse::<u32>()
                        .map_err(|_| format!("--retries needs a whole number, not `{n}`"))?,
                );
            }
            Long("hedge-after") => {
                let ms = value_text(&mut parser, "--hedge-after")?;
                parsed.hedge = Some(match ms.as_str() {
                    "auto" => HedgePolicy::adaptive(),
                    _ => match ms
                        .parse::<f64>()
                        .ok()
                        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
                    {
                        Some(delay) => HedgePolicy::after(delay),
                        None => {
                            return Err(format!(
                                "--hedge-after needs milliseconds or `auto`, not `{ms}`"
                            ))
                        }
                    },
                });
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let any_other = parsed.config.is_some()
        || parsed.json
        || parsed.jsonl
        || parsed.stream
        || parsed.include_headers
        || parsed.concurrency.is_some()
        || parsed.deadline.is_some()
        || parsed.fail_fast
        || parsed.retries.is_some()
        || parsed.hedge.is_some()
        || parsed.timeline.is_some()
        || parsed.no_redirects;
    if parsed.serve && any_other {
        return Err("--serve takes no other option".to_owned());
    }
    if parsed.include_headers && !parsed.json {
        return Err("--include-headers goes with --json".to_owned());
    }
    if parsed.timeline.is_some() && parsed.stream {
        return Err("--timeline needs the whole batch: it does not go with --stream".to_owned());
    }
    if parsed.jsonl && parsed.config.is_none() {
        return Err("--jsonl goes with --config".to_owned());
    }
    Ok(Some(parsed))
}

/// The value of a flag as text, or words naming the flag that needs one.
fn value_text(parser: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    let value = parser
        .value()
        .map_err(|_| format!("{flag} needs a value"))?;
    Ok(value.to_string_lossy().into_owned())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => return cannot_start(&problem),
    };
    if args.serve {
        return serve();
    }
    log_to_stderr(args.verbose);
    let client = client(&args);
    let mut batch = client.batch();
    if let Some(deadline) = args.deadline {
        batch = batch.deadline(deadline);
    }
    if args.fail_fast {
        batch = batch.fail_fast(FailFast::OnError);
    }

    // Stubs live until the end of main; with --config none are started.
    let mut _stubs = Vec::new();
    let input = match &args.config {
        None => match demo() {
            Ok((endpoints, stubs)) => {
                _stubs = stubs;
                Input::All(endpoints)
            }
            Err(err) => {
                return cannot_start(&format!("cannot start the demo's stub servers ({err})"))
            }
        },
        Some(path) => match Input::open(path, &args) {
            Ok(input) => input,
            Err(problem) => return cannot_start(&problem),
        },
    };
    if let Input::All(endpoints) = &input {
        if endpoints.is_empty() {
            eprintln!("gather: no endpoints");
            return ExitCode::SUCCESS;
        }
    }
    let progress = progress_bar(&args, input.len());
    let all_replied = if args.stream {
        async_std::task::block_on(print_as_they_land(batch, input, &args, &progress))
    } else {
        let report = async_std::task::block_on(gather_in_order(batch, input, &progress));
        progress.finish_and_clear();
        print_report(&report, &args);
        if let Some(path) = &args.timeline {
            if let Err(err) = std::fs::write(path, report.timeline_svg()) {
                eprintln!("gather: cannot write {} ({err})", path.display());
            }
        }
        report.all_replied()
    };
    if all_replied {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints the library's tracing events on stderr: `fanout=debug` with `--verbose`,
/// else what `RUST_LOG` says, else nothing.
fn log_to_stderr(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if verbose {
        EnvFilter::new("fanout=debug")
    } else {
        match EnvFilter::try_from_default_env() {
            Ok(filter) => filter,
            Err(_) => return,
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The client the command line asks for.
fn client(args: &Args) -> Client {
    let mut builder = Client::builder();
    if let Some(n) = args.concurrency {
        builder = builder.concurrency(n);
    }
    if args.no_redirects {
        builder = builder.redirects(0);
    }
    if let Some(retries) = args.retries {
        builder = builder.retry(RetryPolicy::standard(retries));
    }
    if let Some(hedge) = &args.hedge {
        builder = builder.hedge(hedge.clone());
    }
    // Nothing set here can be refused: the concurrency was checked when parsed.
    builder.build().unwrap_or_default()
}

/// Where the endpoints come from: all of them at once, or JSON Lines read as needed.
enum Input {
    All(Vec<Endpoint>),
    Lines(mpsc::Receiver<Endpoint>),
}

impl Input {
    /// The endpoints of `path` (`-`: standard input) as the flags say to read them.
    fn open(path: &std::path::Path, args: &Args) -> Result<Input, String> {
        let stdin = path.as_os_str() == "-";
        let source_name = if stdin {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let jsonl = args.jsonl || path.extension().is_some_and(|e| e == "jsonl");
        if !jsonl {
            return if stdin {
                let text = std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("{source_name}: cannot read ({e})"))?;
                fanout::parse_endpoints(&text, &source_name)
            } else {
                fanout::load_endpoints(path)
            }
            .map(Input::All)
            .map_err(|e| e.to_string());
        }
        let mut reader: Box<dyn BufRead + Send> = if stdin {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("{source_name}: cannot read the file ({e})"))?;
            Box::new(BufReader::new(file))
        };
        // A first line that is not a JSON object at all means the input is not JSON
        // Lines (a JSON document, say): stop, as a bad JSON file does. A first line
        // that is an object with a bad field is only a bad line, like any other.
        let mut first = String::new();
        let mut read_so_far = String::new();
        while first.trim().is_empty() {
            first.clear();
            match reader.read_line(&mut first) {
                Ok(0) => break,
                Ok(_) => read_so_far.push_str(&first),
                Err(e) => return Err(format!("{source_name}: cannot read ({e})")),
            }
        }
        let is_object =
            serde_json::from_str::<serde_json::Value>(&first).is_ok_and(|v| v.is_object());
        if !first.trim().is_empty() && !is_object {
            let line = read_so_far.lines().count();
            return Err(format!(
                "{source_name}: line {line}: not a JSON object, so not JSON Lines \
                 (one endpoint object per line)"
            ));
        }
        let reader = std::io::Read::chain(std::io::Cursor::new(read_so_far.into_bytes()), reader);
        let lines = fanout::load_endpoints_jsonl(reader, &source_name);
        if !args.stream {
            return Ok(Input::All(lines.map(endpoint_or_invalid).collect()));
        }
        // Read on a thread of its own, a bounded queue ahead of the calls: reading never
        // blocks the calls, and never gets far ahead of them.
        let (mut sender, receiver) = mpsc::channel(1024);
        std::thread::spawn(move || {
            for endpoint in lines.map(endpoint_or_invalid) {
                if futures::executor::block_on(sender.send(endpoint)).is_err() {
                    return;
                }
            }
        });
        Ok(Input::Lines(receiver))
    }

    /// How many endpoints, when known before the run.
    fn len(&self) -> Option<u64> {
        match self {
            Input::All(endpoints) => Some(endpoints.len() as u64),
            Input::Lines(_) => None,
        }
    }

    /// The outcomes as they land, with their input index.
    fn run<'c>(
        self,
        batch: Batch<'c>,
    ) -> std::pin::Pin<Box<dyn Stream<Item = (usize, Outcome)> + 'c>> {
        match self {
            Input::All(endpoints) => Box::pin(batch.stream(endpoints)),
            Input::Lines(receiver) => Box::pin(batch.stream_from(receiver)),
        }
    }
}

/// A line's endpoint, or, for a bad line, an endpoint that gathers to an
/// `invalid_endpoint` outcome saying what was wrong and where.
fn endpoint_or_invalid(line: Result<Endpoint, LoadError>) -> Endpoint {
    line.unwrap_or_else(|err| {
        let name = match (err.endpoint(), err.line()) {
            (Some(name), _) => name.to_owned(),
            (None, Some(line)) => format!("line {line}"),
            (None, None) => "?".to_owned(),
        };
        Endpoint::invalid(name, err.to_string())
    })
}

/// Runs the batch and puts the outcomes back in input order.
async fn gather_in_order(batch: Batch<'_>, input: Input, progress: &ProgressBar) -> Report {
    let started = Instant::now();
    let mut slots: Vec<Option<Outcome>> = Vec::new();
    let mut failed = 0;
    let mut landed = input.run(batch);
    while let Some((index, outcome)) = landed.next().await {
        tick(progress, &mut failed, &outcome);
        if slots.len() <= index {
            slots.resize_with(index + 1, || None);
        }
        slots[index] = Some(outcome);
    }
    Report::new(slots.into_iter().flatten().collect(), started.elapsed())
}

/// Prints each outcome as it lands, then a summary line; whether all replied.
async fn print_as_they_land(
    batch: Batch<'_>,
    input: Input,
    args: &Args,
    progress: &ProgressBar,
) -> bool {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut failed = 0;
    let mut landed = input.run(batch);
    while let Some((index, outcome)) = landed.next().await {
        tick(progress, &mut failed, &outcome);
        summary.add(&outcome);
        let line = if args.json {
            let mut json = if args.include_headers {
                outcome.to_json_with_headers()
            } else {
                outcome.to_json()
            };
            json["index"] = index.into();
            json.to_string()
        } else {
            outcome.to_string()
        };
        progress.suspend(|| println!("{line}"));
    }
    progress.finish_and_clear();
    if summary.total() == 0 {
        eprintln!("gather: no endpoints");
    }
    let elapsed = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({"summary": summary.to_json(), "elapsed_s": elapsed})
        );
    } else {
        println!("summary: {summary}; total: {elapsed:.3} s");
    }
    summary.failed() == 0
}

fn print_report(report: &Report, args: &Args) {
    if args.include_headers {
        println!("{}", report.to_json_with_headers());
    } else if args.json {
        println!("{}", report.to_json());
    } else {
        for outcome in &report.outcomes {
            println!("{outcome}");
        }
        println!("total: {:.3} s", report.elapsed.as_secs_f64());
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal and --quiet is not
/// given: done/total (or done and rate when the total is unknown), errors, elapsed.
fn progress_bar(args: &Args, total: Option<u64>) -> ProgressBar {
    if args.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{elapsed_precise} [{bar:30}] {pos}/{len} calls, {msg}",
        ),
        None => (
            ProgressBar::no_length(),
            "{elapsed_precise} {pos} calls ({per_sec}), {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    bar.set_message("0 failed");
    bar
}

/// Counts one landed outcome on the bar; `failed` counts the failures so far.
fn tick(progress: &ProgressBar, failed: &mut u64, outcome: &Outcome) {
    if outcome.result.is_err() {
        *failed += 1;
        progress.set_message(format!("{failed} failed"));
    }
    progress.inc(1);
}

/// The original client's demo: tmp_1..tmp_4 sleeping 1-4 s, on stubs of their own.
fn demo() -> std::io::Result<(Vec<Endpoint>, Vec<Stub>)> {
    let mut endpoints = Vec::new();
    let mut stubs = Vec::new();
    for n in 1..=4 {
        let stub = Stub::start_local()?;
        endpoints
            .push(Endpoint::post(format!("tmp_{n}"), stub.url()).json(json!({"sleep_time": n})));
        stubs.push(stub);
    }
    Ok((endpoints, stubs))
}

/// Four stubs on the original servers' ports, for the original Python client.
fn serve() -> ExitCode {
    let mut stubs = Vec::new();
    for port in 30001..=30004 {
        match Stub::start(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
            Ok(stub) => {
                println!("serving POST {}", stub.url());
                stubs.push(stub);
            }
            Err(err) => return cannot_start(&format!("cannot listen on 127.0.0.1:{port} ({err})")),
        }
    }
    println!("press Ctrl-C to stop");
    async_std::task::block_on(futures::future::pending::<()>());
    ExitCode::SUCCESS
}

/// Says on one line why it could not start, and exits with status 2.
fn cannot_start(problem: &str) -> ExitCode {
    eprintln!("gather: {problem}");
    ExitCode::from(2)
}
