//! The demo and command-line client: gathers named POSTs at once and prints one line per
//! endpoint, in order, then the total time.
//!
//! ```text
//! cargo run --example gather                      # four local stubs sleeping 1-4 s: about 4 s, not 10
//! cargo run --example gather -- --config FILE     # the endpoints of a JSON file
//! cargo run --example gather -- --serve           # only serve four stubs on ports 30001-30004
//! ```
//! Exit status: 0 when every endpoint got a reply, 1 when any failed, 2 when it could not
//! start (a usage or configuration error, or a port it could not listen on).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use fanout::stub::Stub;
use fanout::{Client, Endpoint};
use serde_json::json;

const HELP: &str = "\
gather: call several HTTP endpoints at once, each under its own timeout

USAGE:
    cargo run --example gather -- [--config FILE] [--json [--include-headers]]
                                  [--concurrency N] [--no-redirects]
    cargo run --example gather -- --serve

With no --config, starts four local stub servers sleeping 1, 2, 3 and 4 s and gathers
tmp_1..tmp_4 from them: the batch takes about 4 s, not 10.

OPTIONS:
    --config FILE   gather the endpoints of FILE, a JSON object of name -> {protocol,
                    host, port, route, content_type, time_out, data}, or {url, ...}
                    instead of protocol/host/port/route; optional: method (POST),
                    content_type (application/json), time_out (50 s), data, headers.
                    e.g. examples/endpoints.json
    --json          print the report as one line of JSON instead of one line per result
    --include-headers
                    with --json: each reply also carries its headers
    --concurrency N at most N calls in flight at once (default: all of them)
    --no-redirects  a 3xx is a reply, not followed (default: up to 10 followed)
    --serve         only run four stubs on 127.0.0.1:30001-30004 until interrupted
    -h, --help      print this help

EXIT STATUS:
    0  every endpoint got a reply (any HTTP status)
    1  at least one endpoint failed (timeout, connect, protocol, decode, ...)
    2  it could not start: usage or configuration error, or a port it could not listen on";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    json: bool,
    include_headers: bool,
    concurrency: Option<usize>,
    no_redirects: bool,
    serve: bool,
}

/// Parses the command line with `lexopt`: a handful of flags, some with values, is past
/// what a hand-written match keeps clear, and lexopt adds no dependencies of its own.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut parsed = Args::default();
    let usage = |e: lexopt::Error| format!("{e} (see --help)");
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("json") => parsed.json = true,
            Long("include-headers") => parsed.include_headers = true,
            Long("no-redirects") => parsed.no_redirects = true,
            Long("serve") => parsed.serve = true,
            Long("config") => {
                let file = parser.value().map_err(|_| "--config needs a FILE")?;
                parsed.config = Some(PathBuf::from(file));
            }
            Long("concurrency") => {
                let n = parser.value().map_err(|_| "--concurrency needs a number")?;
                parsed.concurrency = match n.to_string_lossy().parse::<usize>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return Err(format!(
                            "--concurrency needs a number of at least 1, not `{}`",
                            n.to_string_lossy()
                        ))
                    }
                };
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let any_other = parsed.config.is_some()
        || parsed.json
        || parsed.include_headers
        || parsed.concurrency.is_some()
        || parsed.no_redirects;
    if parsed.serve && any_other {
        return Err("--serve takes no other option".to_owned());
    }
    if parsed.include_headers && !parsed.json {
        return Err("--include-headers goes with --json".to_owned());
    }
    Ok(Some(parsed))
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
    // Nothing set here can be refused: the concurrency was checked when parsed.
    builder.build().unwrap_or_default()
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

    // Stubs live until the end of main; with --config none are started.
    let (endpoints, _stubs) = match &args.config {
        Some(path) => match fanout::load_endpoints(path) {
            Ok(endpoints) => (endpoints, Vec::new()),
            Err(err) => return cannot_start(&err.to_string()),
        },
        None => match demo() {
            Ok(demo) => demo,
            Err(err) => {
                return cannot_start(&format!("cannot start the demo's stub servers ({err})"))
            }
        },
    };

    let report = async_std::task::block_on(client(&args).gather(&endpoints));
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
    if report.all_replied() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
