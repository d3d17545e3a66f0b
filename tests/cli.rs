//! The `gather` example run as a process, as a user runs it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{closed_port_url, stub, RawServer};
use serde_json::{json, Value};

/// The example binary that `cargo test` builds beside the tests.
fn gather_binary() -> PathBuf {
    let deps = std::env::current_exe().expect("the test binary's path");
    let profile_dir = deps
        .parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>");
    let binary = profile_dir
        .join("examples")
        .join(format!("gather{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`",
        binary.display()
    );
    binary
}

fn run(args: &[&str]) -> Output {
    Command::new(gather_binary())
        .args(args)
        .output()
        .expect("run the gather example")
}

/// Writes `contents` to a temp file of this run named after `name`, and gives its path
/// as the text a command line takes.
fn temp_file(name: &str, contents: &str) -> String {
    let path = std::env::temp_dir().join(format!("fanout-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write a temp file");
    path.into_os_string()
        .into_string()
        .expect("utf-8 temp path")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The one JSON document the example printed to stdout.
fn json_report(output: &Output) -> Value {
    serde_json::from_str(&stdout(output)).expect("one JSON document")
}

#[test]
fn config_mode_prints_one_line_per_endpoint_in_order_then_the_total() {
    let server = stub();
    let config = temp_file(
        "good.json",
        &json!({
            "slow": {"url": server.url(), "data": {"sleep_time": 0.2}},
            "fast": {"url": server.url(), "data": {"sleep_time": 0}},
        })
        .to_string(),
    );
    let output = run(&["--config", &config]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0],
        r#"response: ("slow", 200, {"data":{"sleep_time":0.2},"status":"success"})"#
    );
    assert_eq!(
        lines[1],
        r#"response: ("fast", 200, {"data":{"sleep_time":0},"status":"success"})"#
    );
    assert!(
        lines[2].starts_with("total: 0.") && lines[2].ends_with(" s"),
        "{}",
        lines[2]
    );
}

#[test]
fn json_mode_prints_the_report_as_one_json_line_and_exit_1_on_any_failure() {
    let server = stub();
    let config = temp_file(
        "mixed.json",
        &json!({
            "up": {"url": server.url(), "data": {"sleep_time": 0}},
            "down": {"url": closed_port_url()},
        })
        .to_string(),
    );
    let output = run(&["--config", &config, "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 1, "{out}");
    let report = json_report(&output);
    assert!(
        report["elapsed_s"].as_f64().is_some_and(|s| s > 0.0),
        "{report}"
    );
    let results = report["results"].as_array().expect("a results array");
    assert_eq!(results[0]["name"], "up");
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[0]["body"]["status"], "success");
    assert!(results[0]["elapsed_s"].is_f64());
    assert_eq!(results[1]["name"], "down");
    assert_eq!(results[1]["error"]["kind"], "connect");
    let message = results[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("down: connection refused by 127.0.0.1:"),
        "{message}"
    );
}

#[test]
fn a_bad_config_file_exits_2_with_one_line_naming_the_problem() {
    let cases = [
        ("not-json.json", "{ nope", "not valid JSON"),
        (
            "not-object.json",
            "[1, 2]",
            "expected an object of endpoints by name",
        ),
        (
            "missing.json",
            r#"{"e": {"protocol": "http", "host": "h", "port": 1}}"#,
            "e: field `route`: missing",
        ),
        (
            "typed.json",
            r#"{"e": {"url": "http://h/", "time_out": "soon"}}"#,
            r#"e: field `time_out`: expected seconds as a number, found string "soon""#,
        ),
        (
            "negative.json",
            r#"{"e": {"url": "http://h/", "time_out": -2}}"#,
            "e: field `time_out`: expected a finite, non-negative",
        ),
        (
            "nan.json",
            r#"{"e": {"url": "http://h/", "time_out": NaN}}"#,
            "not valid JSON",
        ),
        (
            "unknown.json",
            r#"{"e": {"url": "http://h/", "routes": "/"}}"#,
            "e: field `routes`: unknown field (expected one of ",
        ),
    ];
    for (name, contents, expected) in cases {
        let path = temp_file(name, contents);
        let output = run(&["--config", &path]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line expected: {err}");
        assert!(
            err.contains(&path) && err.contains(expected),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(stdout(&output).is_empty(), "{name}");
    }
}

#[test]
fn a_missing_config_file_exits_2() {
    let output = run(&["--config", "/nonexistent/endpoints.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("/nonexistent/endpoints.json: cannot read the file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--bogus"][..],
        &["--config"][..],
        &["--serve", "--json"][..],
        &["--include-headers"][..],
        &["--concurrency", "0"][..],
        &["--concurrency", "many"][..],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&output).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn help_describes_every_mode() {
    let output = run(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for flag in [
        "--config",
        "--json",
        "--include-headers",
        "--concurrency",
        "--no-redirects",
        "--serve",
        "EXIT STATUS",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn serve_mode_answers_on_the_original_ports_until_killed() {
    let mut child = Command::new(gather_binary())
        .arg("--serve")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start gather --serve");
    // The stubs are up once their ports accept; allow a slow machine ten seconds.
    let up = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        (30001..=30004).all(|port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    });
    let endpoint = fanout::Endpoint::post("served", "http://127.0.0.1:30004/api")
        .json(json!({"sleep_time": 0}));
    let outcome = async_std::task::block_on(fanout::Client::new().call(&endpoint));
    let still_serving = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "gather --serve did not listen on ports 30001-30004");
    assert!(
        still_serving,
        "gather --serve exited (are ports 30001-30004 taken by another process?)"
    );
    assert_eq!(
        outcome.reply().map(|r| r.body.clone()),
        Some(json!({"data": {"sleep_time": 0}, "status": "success"}))
    );
}

#[test]
fn redirects_are_followed_unless_told_not_and_headers_come_with_include_headers() {
    let target = stub();
    let location = target.url();
    let reply = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\nx-hop: 1\r\ncontent-length: 0\r\n\r\n"
    );
    let redirecting = RawServer::answering(reply.into_bytes().leak());
    let path = &temp_file(
        "redirect.json",
        &json!({"moved": {"url": redirecting.url("/api"), "data": {"sleep_time": 0}}}).to_string(),
    );

    let followed = run(&["--config", path, "--json"]);
    assert_eq!(followed.status.code(), Some(0), "{}", stderr(&followed));
    let report = json_report(&followed);
    let result = &report["results"][0];
    assert_eq!(
        (result["status"].clone(), result["url"].clone()),
        (json!(200), json!(target.url()))
    );
    assert!(result.get("headers").is_none(), "{result}");

    let kept = run(&[
        "--config",
        path,
        "--json",
        "--include-headers",
        "--no-redirects",
    ]);
    assert_eq!(kept.status.code(), Some(0), "{}", stderr(&kept));
    let report = json_report(&kept);
    let result = &report["results"][0];
    assert_eq!(result["status"], 307);
    assert_eq!(result["headers"]["location"], json!(target.url()));
    assert_eq!(result["headers"]["x-hop"], "1");
}

/// Runs the example with `stdin` as its standard input.
fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(gather_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the gather example");
    let mut input = child.stdin.take().expect("a stdin pipe");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("the example's output")
}

#[test]
fn stream_json_prints_one_object_per_outcome_as_it_lands_then_a_summary() {
    let server = stub();
    let url = server.url();
    let lines = [
        json!({"name": "slow", "url": url, "data": {"sleep_time": 0.4}}),
        json!({"name": "fast", "url": url, "data": {"sleep_time": 0}}),
    ];
    let stdin: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let output = run_with_stdin(&["--config", "-", "--jsonl", "--stream", "--json"], &stdin);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    let parsed: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect();
    assert_eq!(parsed.len(), 3, "{out}");
    assert_eq!(
        (parsed[0]["name"].clone(), parsed[0]["index"].clone()),
        (json!("fast"), json!(1))
    );
    assert_eq!(
        (parsed[1]["name"].clone(), parsed[1]["index"].clone()),
        (json!("slow"), json!(0))
    );
    assert_eq!(parsed[2]["summary"]["total"], 2);
    assert_eq!(parsed[2]["summary"]["replied"], 2);
    // Standard error is not a terminal here: no progress bar, nothing at all.
    assert_eq!(stderr(&output), "");
}

#[test]
fn a_bad_json_line_becomes_its_endpoints_invalid_outcome_naming_the_line() {
    let server = stub();
    let url = server.url();
    let file = temp_file(
        "sweep.jsonl",
        &format!(
            "{}\n{{\"name\": \"typo\", \"url\": \"{url}\", \"time_out\": \"soon\"}}\nnot json\n\n{}\n",
            json!({"name": "first", "url": url, "data": {"sleep_time": 0}}),
            json!({"name": "last", "url": url, "data": {"sleep_time": 0}}),
        ),
    );
    let output = run(&["--config", &file, "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = json_report(&output);
    let results = report["results"].as_array().expect("results");
    let names: Vec<&str> = results.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["first", "typo", "line 3", "last"]);
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[3]["status"], 200);
    for (i, line) in [(1, "line 2"), (2, "line 3")] {
        assert_eq!(results[i]["error"]["kind"], "invalid_endpoint");
        let message = results[i]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(line), "{message}");
    }
    assert_eq!(report["summary"]["errors"]["invalid_endpoint"], 2);
}

#[test]
fn a_json_document_given_as_json_lines_exits_2() {
    let file = temp_file(
        "not-lines.jsonl",
        "{\n  \"a\": {\"url\": \"http://127.0.0.1:9/\"}\n}\n",
    );
    let output = run(&["--config", &file]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(stderr(&output).contains("line 1"), "{}", stderr(&output));
}

#[test]
fn deadline_and_fail_fast_flags_stop_the_batch_with_one_outcome_each() {
    let server = stub();
    let url = server.url();
    let path = &temp_file(
        "controls.json",
        &json!({
            "quick": {"url": url, "data": {"sleep_time": 0}},
            "slow": {"url": url, "data": {"sleep_time": 5}},
            "down": {"url": closed_port_url()},
        })
        .to_string(),
    );
    let started = std::time::Instant::now();
    let output = run(&["--config", path, "--json", "--deadline", "0.5"]);
    let report = json_report(&output);
    assert_eq!(report["results"][1]["error"]["kind"], "timeout");
    let output = run(&["--config", path, "--json", "--fail-fast"]);
    let report = json_report(&output);
    assert_eq!(report["results"][1]["error"]["kind"], "cancelled");
    assert_eq!(report["results"][2]["error"]["kind"], "connect");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_empty_config_says_so_and_succeeds() {
    let output = run_with_stdin(&["--config", "-"], "{}");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stderr(&output).trim(), "gather: no endpoints");
    assert_eq!(stdout(&output), "");
}

#[test]
fn a_bad_field_on_the_first_json_line_is_that_lines_outcome_not_the_end() {
    let server = stub();
    let file = temp_file(
        "first-bad.jsonl",
        &format!(
            "\n{{\"name\": \"early\", \"url\": \"{}\", \"time_out\": \"soon\"}}\n{}\n",
            server.url(),
            json!({"name": "next", "url": server.url(), "data": {"sleep_time": 0}}),
        ),
    );
    let output = run(&["--config", &file, "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = json_report(&output);
    assert_eq!(report["results"][0]["error"]["kind"], "invalid_endpoint");
    let message = report["results"][0]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("line 2") && message.contains("time_out"),
        "{message}"
    );
    assert_eq!(report["results"][1]["status"], 200);
}
