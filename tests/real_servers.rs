//! Real servers that nobody here wrote, on loopback: the client must speak to them as
//! they are.
//!
//! - Python's `http.server` as shipped, in every run: HTTP/1.0 with bodies ended by
//!   closing the connection (and with a Content-Length), and HTTP/1.1 with keep-alive.
//!   python3 is required: without it these tests fail, they never skip.
//! - nginx, with `cargo test --test real_servers -- --include-ignored` (as CI runs it):
//!   static files, gzip on the fly and precompressed, statuses such as 499 and 520,
//!   redirects, a head of over a hundred fields, keep-alive.
//!
//! Each test starts its own server process on a free loopback port, with its files in
//! a temp dir of its own, and stops it when the test ends, passed or failed.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use async_std::task;
use common::{call, free_port, gzip, PATIENT};
use fanout::{BodyFormat, Client, Endpoint, Method, Outcome, Reply, Report};
use flate2::read::GzDecoder;
use serde_json::{json, Value};

/// How long a server may take to say it is ready.
const STARTUP: Duration = Duration::from_secs(30);

/// How long a server may take to stop when asked before it is killed.
const SHUTDOWN: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------
// Processes, temp dirs and calls.

/// A temp dir of one test's own, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "fanout-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path); // left over by a killed run
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` in the dir, and gives its path.
    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a file in the temp dir");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, stopped when dropped: by `stop` when given (waiting up to
/// [`SHUTDOWN`]), else (or then) killed.
struct Running {
    what: &'static str,
    child: Child,
    /// Held, never written: a server that watches its stdin exits when it closes,
    /// even if this process is killed before it can stop it.
    _stdin: Option<ChildStdin>,
    /// What the server wrote to stderr so far.
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    stop: Option<Command>,
}

impl Running {
    /// Starts `command` with its stdio piped: each line of its stdout (when
    /// `lines_of_stdout`) or else of its stderr is sent to the receiver given back, and
    /// stderr is also kept for messages.
    fn start(
        what: &'static str,
        mut command: Command,
        lines_of_stdout: bool,
    ) -> (Running, Receiver<String>) {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start {what} ({:?}): {e}. These tests need it installed; \
                     they fail rather than skip without it",
                    command.get_program()
                )
            });
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("a piped stdout");
        let stderr_pipe = child.stderr.take().expect("a piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let (stdout_tx, stderr_tx) = if lines_of_stdout {
            (Some(tx), None)
        } else {
            (None, Some(tx))
        };
        forward_lines(stdout, None, stdout_tx);
        let stderr_reader = forward_lines(stderr_pipe, Some(stderr.clone()), stderr_tx);
        let running = Running {
            what,
            child,
            _stdin: stdin,
            stderr,
            stderr_reader: Some(stderr_reader),
            stop: None,
        };
        (running, rx)
    }

    /// How the server exited and what it wrote to stderr, once it has exited.
    fn exit_report(&mut self) -> String {
        let status = self.child.wait().map(|s| s.to_string());
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        format!(
            "{} exited ({status:?}); its stderr:\n{}",
            self.what,
            self.stderr.lock().expect("the stderr log").as_str()
        )
    }

    /// What the server wrote to stderr so far.
    fn stderr(&self) -> String {
        self.stderr.lock().expect("the stderr log").clone()
    }

    fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut stop) = self.stop.take().filter(|_| !self.has_exited()) {
            let asked = stop
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + SHUTDOWN;
            while asked && !self.has_exited() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        if !self.has_exited() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Reads `from` line by line until it ends, keeping each line in `log` and sending it
/// to `lines`, while anyone listens.
fn forward_lines(
    from: impl Read + Send + 'static,
    log: Option<Arc<Mutex<String>>>,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if let Some(log) = &log {
                let mut log = log.lock().expect("the stderr log");
                log.push_str(&line);
                log.push('\n');
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    })
}

/// Checks that `outcome` is a reply with `status` and gives it.
fn replied(outcome: &Outcome, status: u16) -> &Reply {
    let reply = outcome
        .reply()
        .unwrap_or_else(|| panic!("expected a {status} reply, got {outcome:?}"));
    assert_eq!(reply.status, status, "{outcome:?}");
    reply
}

// ---------------------------------------------------------------------------------
// Python's http.server.

/// The server: `BaseHTTPRequestHandler` as shipped, speaking the protocol version
/// given as its argument (`HTTP/1.0` is the class default). `/close` answers with no
/// Content-Length, the body ended by closing the connection (HTTP/1.0 only),
/// `/length` with one; both answer GET and POST with
/// `{"ok": true, "method", "echo": <the posted JSON>, "port": <the client's port>}`.
/// `/conns` says how many connections the other requests came on.
const PYTHON_SERVER: &str = r#"
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROTOCOL = sys.argv[1]
ports = set()
ports_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    if PROTOCOL != "HTTP/1.0":
        protocol_version = PROTOCOL

    def log_message(self, format, *args):
        pass  # no line on stderr per request

    def do_GET(self):
        self.route(None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        posted = self.rfile.read(length)
        self.route(json.loads(posted) if posted else None)

    def route(self, echo):
        if self.path == "/conns":
            with ports_lock:
                self.answer(200, {"conns": len(ports)}, with_length=True)
            return
        if self.path not in ("/close", "/length"):
            self.answer(404, {"ok": False, "path": self.path}, with_length=True)
            return
        port = self.client_address[1]
        with ports_lock:
            ports.add(port)
        body = {"ok": True, "method": self.command, "echo": echo, "port": port}
        self.answer(200, body, with_length=self.path == "/length")

    def answer(self, status, body, with_length):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if with_length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    # The shipped listen backlog of 5 would leave most of a batch's connections to be
    # retried a second later by the kernel; that is the backlog's story, not HTTP's.
    request_queue_size = 128


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A running Python `http.server`.
struct PythonServer {
    process: Running,
    port: u16,
    _dir: TempDir,
}

impl PythonServer {
    /// Starts the server speaking `protocol` (`HTTP/1.0` or `HTTP/1.1`) and waits for
    /// it to print its port.
    fn start(protocol: &str) -> PythonServer {
        let dir = TempDir::new("python");
        let script = dir.write("server.py", PYTHON_SERVER.as_bytes());
        let mut command = Command::new("python3");
        command.arg("-u").arg(&script).arg(protocol);
        let (mut process, stdout) = Running::start("python3", command, true);
        let port = match stdout.recv_timeout(STARTUP) {
            Ok(line) => line
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("the Python server printed {line:?}, not its port")),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the Python server did not start: {}", process.exit_report())
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "the Python server did not print its port within {STARTUP:?}; stderr:\n{}",
                process.stderr()
            ),
        };
        PythonServer {
            process,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many connections the server took requests on (its `/conns` not counted),
    /// asked on a connection of its own.
    fn connections(&self) -> u64 {
        let outcome = call(&Client::new(), &get("conns", &self.url("/conns")));
        let conns = replied(&outcome, 200).body["conns"].as_u64();
        conns.unwrap_or_else(|| panic!("/conns said {outcome:?}"))
    }

    /// Checks that the server is still up, with what it wrote to stderr if not: a
    /// traceback there explains a failed call.
    fn assert_alive(&mut self) {
        assert!(
            !self.process.has_exited(),
            "the Python server died: {}",
            self.process.exit_report()
        );
    }
}

fn get(name: &str, url: &str) -> Endpoint {
    Endpoint::get(name, url).timeout(PATIENT)
}

fn post(name: &str, url: &str, data: Value) -> Endpoint {
    Endpoint::post(name, url).json(data).timeout(PATIENT)
}

/// The port the client called from, as the Python server saw it.
fn client_port(reply: &Reply) -> u64 {
    reply.body["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no port in {:?}", reply.body))
}

#[test]
fn python_http_1_0_get_and_post_replies_ended_by_close_are_read_whole() {
    let mut server = PythonServer::start("HTTP/1.0");
    let client = Client::new();
    let posted = json!({"name": "café", "items": [1, 2.5, null, {"deep": [true]}]});

    let outcome = call(&client, &get("get", &server.url("/close")));
    let reply = replied(&outcome, 200);
    assert_eq!(reply.body["ok"], json!(true));
    assert_eq!(reply.body["method"], json!("GET"));
    assert_eq!(reply.body["echo"], Value::Null);
    assert_eq!(reply.headers.get("content-length"), None, "{reply:?}");
    let server_header = reply.headers.get("server").unwrap_or_default();
    assert!(server_header.contains("BaseHTTP"), "{reply:?}");

    let outcome = call(
        &client,
        &post("post", &server.url("/close"), posted.clone()),
    );
    let reply = replied(&outcome, 200);
    assert_eq!(
        (
            &reply.body["ok"],
            &reply.body["method"],
            &reply.body["echo"]
        ),
        (&json!(true), &json!("POST"), &posted)
    );
    server.assert_alive();
}

#[test]
fn python_http_1_0_replies_with_a_content_length_are_read_and_not_reused() {
    let mut server = PythonServer::start("HTTP/1.0");
    let client = Client::new();
    let mut ports = HashSet::new();
    for i in 0..3 {
        let outcome = call(&client, &post("length", &server.url("/length"), json!(i)));
        let reply = replied(&outcome, 200);
        assert_eq!(reply.body["echo"], json!(i));
        assert!(reply.headers.get("content-length").is_some(), "{reply:?}");
        ports.insert(client_port(reply));
    }
    // HTTP/1.0 without `Connection: keep-alive` closes: each call needs its own.
    assert_eq!(ports.len(), 3);
    assert_eq!(server.connections(), 3);
    server.assert_alive();
}

#[test]
fn a_batch_of_twenty_to_python_http_1_0_all_reply_and_so_does_the_next() {
    let mut server = PythonServer::start("HTTP/1.0");
    let client = Client::new();
    for round in 0..2 {
        let endpoints: Vec<Endpoint> = (0..20)
            .map(|i| {
                let path = if i % 2 == 0 { "/close" } else { "/length" };
                post(&format!("call-{i}"), &server.url(path), json!({"i": i}))
            })
            .collect();
        let report = task::block_on(client.gather(&endpoints));
        assert_eq!(report.outcomes.len(), 20);
        for (i, outcome) in report.outcomes.iter().enumerate() {
            assert_eq!(outcome.name, format!("call-{i}"));
            let reply = replied(outcome, 200);
            assert_eq!(reply.body["echo"], json!({"i": i}), "round {round}");
        }
    }
    assert_eq!(server.connections(), 40);
    server.assert_alive();
}

#[test]
fn python_http_1_1_calls_in_a_row_reuse_one_connection() {
    let mut server = PythonServer::start("HTTP/1.1");
    let client = Client::new();
    let first = call(&client, &get("first", &server.url("/length")));
    let second = call(
        &client,
        &post("second", &server.url("/length"), json!({"again": true})),
    );
    let (first, second) = (replied(&first, 200), replied(&second, 200));
    assert_eq!(second.body["echo"], json!({"again": true}));
    assert!(first
        .headers
        .get("server")
        .is_some_and(|s| s.contains("BaseHTTP")));
    assert_eq!(client_port(first), client_port(second));
    assert_eq!(server.connections(), 1);
    server.assert_alive();
}

#[test]
fn a_second_batch_to_python_http_1_1_reuses_the_first_batchs_connections() {
    let mut server = PythonServer::start("HTTP/1.1");
    let client = Client::new();
    let endpoints: Vec<Endpoint> = (0..10)
        .map(|i| post(&format!("call-{i}"), &server.url("/length"), json!(i)))
        .collect();
    let first = task::block_on(client.gather(&endpoints));
    assert!(first.all_replied(), "{:?}", first.outcomes);
    let after_first = server.connections();
    assert!((1..=10).contains(&after_first), "{after_first}");

    let second = task::block_on(client.gather(&endpoints));
    for (i, outcome) in second.outcomes.iter().enumerate() {
        assert_eq!(replied(outcome, 200).body["echo"], json!(i));
    }
    assert_eq!(server.connections(), after_first);
    server.assert_alive();
}

// ---------------------------------------------------------------------------------
// nginx.

/// How many `add_header` fields `/big-head` adds, beside nginx's own five or so.
const EXTRA_FIELDS: usize = 132;

/// nginx's binary: `/usr/sbin/nginx`, where Debian puts it, or the first on PATH.
fn nginx_binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        return sbin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nginx"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx was not found (not at /usr/sbin/nginx nor on PATH): the nginx \
                 tests need it (apt-get install nginx)"
            )
        })
}

/// The value of `/big-head`'s field number `i`.
fn filler(i: usize) -> String {
    format!("{i:03}-{}", "abcdefghij".repeat(7))
}

/// The static file `/static.json`.
fn static_json() -> Value {
    json!({"ok": true, "from": "a static file", "list": [1, 2, 3]})
}

/// The large file gzipped on the fly, `/large.json`: about 100 KiB.
fn large_json() -> Value {
    let items: Vec<Value> = (0..1500)
        .map(|i| json!({"id": i, "name": format!("item number {i}"), "tags": ["a", "b", "c"]}))
        .collect();
    json!({"ok": true, "items": items})
}

/// The file stored only gzipped, `/precompressed.json`.
fn precompressed_json() -> Value {
    json!({"ok": true, "from": "a file stored gzipped", "n": 42})
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

/// Whether `path` belongs to root: whether this test, which made it, runs as root.
#[cfg(unix)]
fn owned_by_root(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).expect("the metadata of a file made here");
    metadata.uid() == 0
}

#[cfg(not(unix))]
fn owned_by_root(_: &Path) -> bool {
    false
}

/// nginx's configuration: everything it writes inside `dir`, listening on `port`.
fn nginx_conf(dir: &Path, port: u16, as_root: bool) -> String {
    let dir = dir.display();
    // As root, nginx's workers would run as `nobody`, which may not read a temp dir.
    let user = if as_root { "user root;" } else { "" };
    let big_head: String = (0..EXTRA_FIELDS)
        .map(|i| {
            format!(
                "            add_header X-Filler-{i:03} \"{}\";\n",
                filler(i)
            )
        })
        .collect();
    format!(
        r#"
{user}
worker_processes 1;
error_log stderr notice;
pid "{dir}/nginx.pid";
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path "{dir}/client_body";
    proxy_temp_path "{dir}/proxy";
    fastcgi_temp_path "{dir}/fastcgi";
    uwsgi_temp_path "{dir}/uwsgi";
    scgi_temp_path "{dir}/scgi";
    types {{ application/json json; }}
    default_type application/json;
    server {{
        listen 127.0.0.1:{port};
        root "{dir}/www";
        location = /static.json {{ }}
        location = /ok {{ return 200 '{{"ok":true}}'; }}
        location = /status-499 {{ return 499 '{{"code":499}}'; }}
        location = /status-520 {{ return 520 '{{"code":520}}'; }}
        location = /large.json {{
            gzip on;
            gzip_types application/json;
            gzip_min_length 1;
        }}
        location = /precompressed.json {{ gzip_static always; }}
        location = /moved {{ return 301 /static.json; }}
        location = /moved-relative {{
            absolute_redirect off;
            return 302 /static.json;
        }}
        location = /connection {{
            return 200 '{{"connection":$connection,"requests":$connection_requests}}';
        }}
        location = /big-head {{
{big_head}            return 200 '{{"ok":true}}';
        }}
    }}
}}
"#
    )
}

/// A running nginx.
struct Nginx {
    process: Running,
    port: u16,
    _dir: TempDir,
}

impl Nginx {
    /// Starts nginx on a free loopback port and waits until it has started its
    /// worker, its socket listening; tries another port if the one picked was taken
    /// in the meantime.
    fn start() -> Nginx {
        let binary = nginx_binary();
        let dir = TempDir::new("nginx");
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).expect("create the web root");
        let as_root = owned_by_root(dir.path());
        let files: [(&str, Vec<u8>); 3] = [
            ("www/static.json", static_json().to_string().into_bytes()),
            ("www/large.json", large_json().to_string().into_bytes()),
            (
                "www/precompressed.json.gz",
                gzip(precompressed_json().to_string().as_bytes()),
            ),
        ];
        for (name, contents) in files {
            dir.write(name, &contents);
        }
        let conf = dir.path().join("nginx.conf");
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(&conf, nginx_conf(dir.path(), port, as_root)).expect("write nginx.conf");
            let nginx = |args: [&str; 2]| {
                let mut command = Command::new(&binary);
                command.arg("-e").arg("stderr").arg("-p").arg(dir.path());
                command.arg("-c").arg(&conf).args(args);
                command
            };
            let (mut process, stderr) =
                Running::start("nginx", nginx(["-g", "daemon off;"]), false);
            let stop = nginx(["-s", "stop"]);
            process.stop = Some(stop);
            let deadline = Instant::now() + STARTUP;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match stderr.recv_timeout(left) {
                    Ok(line) if line.contains("start worker process") => {
                        return Nginx {
                            process,
                            port,
                            _dir: dir,
                        };
                    }
                    // nginx retries a busy port for a while before it gives up.
                    Ok(_) => continue,
                    Err(RecvTimeoutError::Disconnected) => {
                        last_failure = process.exit_report();
                        if last_failure.contains("Address already in use") {
                            break; // another port
                        }
                        panic!("nginx did not start: {last_failure}");
                    }
                    Err(RecvTimeoutError::Timeout) => panic!(
                        "nginx did not start its worker within {STARTUP:?}; stderr:\n{}",
                        process.stderr()
                    ),
                }
            }
        }
        panic!("nginx found no free port in 5 tries: {last_failure}")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Checks that nginx answered `outcome` with `status` and its `Server` header, and
    /// gives the reply; nginx's log is shown when not.
    fn replied<'a>(&self, outcome: &'a Outcome, status: u16) -> &'a Reply {
        let Some(reply) = outcome.reply().filter(|r| r.status == status) else {
            panic!(
                "expected a {status} reply, got {outcome:?}; nginx's log:\n{}",
                self.process.stderr()
            );
        };
        let server = reply.headers.get("server").unwrap_or_default();
        assert!(server.starts_with("nginx"), "{reply:?}");
        reply
    }

    /// Gathers a GET of each `(name, path)` in one batch, on a client of its own.
    fn gather(&self, gets: &[(&str, &str)]) -> Report {
        let endpoints: Vec<Endpoint> = gets
            .iter()
            .map(|(name, path)| get(name, &self.url(path)))
            .collect();
        task::block_on(Client::new().gather(&endpoints))
    }

    /// Checks that `endpoint`, which nginx answers gzipped, comes back decoded as
    /// `expected`, without the Content-Encoding and Content-Length that described the
    /// body as sent.
    fn assert_decoded(&self, endpoint: Endpoint, expected: Value) {
        let outcome = call(&Client::new(), &endpoint);
        let reply = self.replied(&outcome, 200);
        assert_eq!(reply.body, expected);
        assert_eq!(reply.headers.get("content-encoding"), None, "{reply:?}");
        assert_eq!(reply.headers.get("content-length"), None, "{reply:?}");
    }

    /// Calls `endpoint` on a client with decompression off, checks that nginx sent its
    /// body gzipped, and gives the body as sent.
    fn gzipped_as_sent(&self, endpoint: Endpoint) -> Vec<u8> {
        let raw = Client::builder()
            .decompress(false)
            .build()
            .expect("a client");
        let outcome = call(&raw, &endpoint.expect(BodyFormat::Bytes));
        let reply = self.replied(&outcome, 200);
        assert_eq!(
            reply.headers.get("content-encoding").as_deref(),
            Some("gzip")
        );
        reply.bytes().to_vec()
    }
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn nginx_static_files_and_returned_json_are_read() {
    let nginx = Nginx::start();
    let client = Client::new();
    let outcome = call(&client, &get("static", &nginx.url("/static.json")));
    let reply = nginx.replied(&outcome, 200);
    assert_eq!(reply.body, static_json());
    assert_eq!(
        reply.headers.get("content-type").as_deref(),
        Some("application/json")
    );
    let outcome = call(&client, &get("returned", &nginx.url("/ok")));
    assert_eq!(nginx.replied(&outcome, 200).body, json!({"ok": true}));
    let outcome = call(&client, &get("missing", &nginx.url("/missing.json")));
    let err = outcome.error().expect("nginx's 404 page is HTML, not JSON");
    assert_eq!(err.status(), Some(404), "{err}");
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn nginx_statuses_499_and_520_are_replies_with_their_json() {
    // nginx sends these with no reason phrase: `HTTP/1.1 499 ` (444 alone would close
    // the connection without a reply).
    let nginx = Nginx::start();
    let report = nginx.gather(&[("499", "/status-499"), ("520", "/status-520")]);
    assert_eq!(
        nginx.replied(&report.outcomes[0], 499).body,
        json!({"code": 499})
    );
    assert_eq!(
        nginx.replied(&report.outcomes[1], 520).body,
        json!({"code": 520})
    );
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn nginx_gzip_on_the_fly_is_decoded_and_its_content_encoding_removed() {
    let nginx = Nginx::start();
    nginx.assert_decoded(get("gzip", &nginx.url("/large.json")), large_json());

    // The same request with decompression off and gzip asked for by hand shows that
    // nginx did compress it (chunked, as its length is not known ahead).
    let endpoint = get("gzip-raw", &nginx.url("/large.json")).header("Accept-Encoding", "gzip");
    let sent = nginx.gzipped_as_sent(endpoint);
    let large = large_json().to_string();
    assert!(sent.len() < large.len() / 2, "{}", sent.len());
    assert_eq!(gunzip(&sent), large.as_bytes());
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn nginx_gzip_static_always_is_decoded_and_kept_as_sent_when_decompression_is_off() {
    let nginx = Nginx::start();
    let endpoint = get("gzip_static", &nginx.url("/precompressed.json"));
    nginx.assert_decoded(endpoint, precompressed_json());

    // `always`: the .gz is sent even to a client that asked for no coding.
    let endpoint = get("gzip_static-raw", &nginx.url("/precompressed.json"));
    let sent = gunzip(&nginx.gzipped_as_sent(endpoint));
    assert_eq!(
        serde_json::from_slice::<Value>(&sent).ok(),
        Some(precompressed_json())
    );
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn nginx_redirects_absolute_and_relative_are_followed_to_the_json() {
    let nginx = Nginx::start();
    let report = nginx.gather(&[("301", "/moved"), ("302-relative", "/moved-relative")]);
    for outcome in &report.outcomes {
        let reply = nginx.replied(outcome, 200);
        assert_eq!(reply.body, static_json(), "{}", outcome.name);
        assert_eq!(reply.url.as_str(), nginx.url("/static.json"));
    }
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn a_head_of_over_a_hundred_and_thirty_fields_from_nginx_is_read() {
    let nginx = Nginx::start();
    let outcome = call(&Client::new(), &get("big-head", &nginx.url("/big-head")));
    let reply = nginx.replied(&outcome, 200);
    assert_eq!(reply.body, json!({"ok": true}));
    assert!(reply.headers.len() >= 135, "{}", reply.headers.len());
    let head_bytes: usize = reply
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    assert!(head_bytes >= 10 * 1024, "{head_bytes}");
    for i in [0, EXTRA_FIELDS / 2, EXTRA_FIELDS - 1] {
        let name = format!("x-filler-{i:03}");
        assert_eq!(reply.headers.get(&name), Some(filler(i).into()), "{name}");
    }
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn a_batch_of_fifty_to_nginx_all_reply() {
    let nginx = Nginx::start();
    let paths = ["/ok", "/static.json", "/large.json", "/precompressed.json"];
    let endpoints: Vec<Endpoint> = (0..50)
        .map(|i| get(&format!("call-{i}"), &nginx.url(paths[i % paths.len()])))
        .collect();
    let client = Client::new();
    for _ in 0..2 {
        let report = task::block_on(client.gather(&endpoints));
        for (i, outcome) in report.outcomes.iter().enumerate() {
            assert_eq!(outcome.name, format!("call-{i}"));
            let body = &nginx.replied(outcome, 200).body;
            assert_eq!(body["ok"], json!(true), "{}", outcome.name);
        }
    }
}

#[test]
#[ignore = "needs nginx: cargo test -- --include-ignored"]
fn a_head_a_post_and_a_get_to_nginx_keep_one_connection_in_step() {
    let nginx = Nginx::start();
    let client = Client::new();
    let url = nginx.url("/connection");

    let head = Endpoint::new("head", Method::Head, &url).timeout(PATIENT);
    let outcome = call(&client, &head);
    let reply = nginx.replied(&outcome, 200);
    assert_eq!((&reply.body, reply.bytes()), (&Value::Null, &b""[..]));
    assert!(reply.headers.get("content-length").is_some(), "{reply:?}");

    // nginx reads and drops the body: the next request is read where it ends.
    let posted = json!({"filler": "x".repeat(20_000)});
    let outcome = call(&client, &post("post", &url, posted));
    let second = nginx.replied(&outcome, 200).body.clone();
    let outcome = call(&client, &get("get", &url));
    let third = nginx.replied(&outcome, 200).body.clone();

    assert_eq!(second["requests"], json!(2), "{second}");
    assert_eq!(third["requests"], json!(3), "{third}");
    assert_eq!(second["connection"], third["connection"]);
}
