//! Loading endpoints: the shipped file, every field, JSON Lines, and a clear error for
//! each kind of bad input.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fanout::{
    load_endpoints, load_endpoints_jsonl, parse_endpoint_line, parse_endpoints, BodyFormat,
    Endpoint, LoadError, Method,
};
use serde_json::{json, Value};

fn load_error(json: &str) -> LoadError {
    parse_endpoints(json, "test.json").expect_err("this input must not load")
}

#[test]
fn the_shipped_file_loads_the_original_four_endpoints_in_order() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/endpoints.json");
    let endpoints = load_endpoints(path).expect("the shipped file loads");
    let names: Vec<_> = endpoints.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["tmp_1", "tmp_2", "tmp_3", "tmp_4"]);
    for (n, endpoint) in (1..).zip(&endpoints) {
        assert_eq!(endpoint.method(), Method::Post);
        assert_eq!(
            endpoint.url().map(|u| u.as_str()),
            Some(format!("http://localhost:3000{n}/api").as_str())
        );
        assert_eq!(endpoint.media_type(), "application/json");
        assert_eq!(endpoint.time_limit(), Duration::from_secs(50));
        assert_eq!(endpoint.data(), Some(&json!({"sleep_time": n})));
        assert_eq!(endpoint.problem(), None);
    }
}

#[test]
fn order_is_the_written_order_not_alphabetical() {
    let endpoints = parse_endpoints(
        r#"{"zeta": {"url": "http://127.0.0.1:1/"}, "alpha": {"url": "http://127.0.0.1:2/"}}"#,
        "t",
    )
    .expect("loads");
    let names: Vec<_> = endpoints.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
}

#[test]
fn optional_fields_are_read() {
    let endpoints = parse_endpoints(
        r#"{"e": {"url": "https://example.com/x", "method": "put", "time_out": 0.25,
                  "headers": {"authorization": "Bearer t"}, "content_type": "text/plain"}}"#,
        "t",
    )
    .expect("loads");
    let e = &endpoints[0];
    assert_eq!(e.method(), Method::Put);
    assert_eq!(e.time_limit(), Duration::from_millis(250));
    assert_eq!(
        e.headers(),
        [("authorization".to_owned(), "Bearer t".to_owned())]
    );
    assert_eq!(e.media_type(), "text/plain");
    assert_eq!(e.data(), None);
}

#[test]
fn a_numeric_port_works_like_a_string_port() {
    let endpoints = parse_endpoints(
        r#"{"e": {"protocol": "http", "host": "127.0.0.1", "port": 8080, "route": "/api"}}"#,
        "t",
    )
    .expect("loads");
    assert_eq!(
        endpoints[0].url().map(|u| u.as_str()),
        Some("http://127.0.0.1:8080/api")
    );
}

#[test]
fn text_that_is_not_json_names_the_file_and_the_place() {
    let err = load_error("{ not json");
    assert!(
        err.to_string()
            .starts_with("test.json: not valid JSON (key must be a string at line 1 column 3"),
        "{err}"
    );
    assert_eq!(err.endpoint(), None);
}

#[test]
fn a_top_level_that_is_not_an_object_is_refused() {
    let err = load_error(r#"[{"url": "http://x/"}]"#);
    assert_eq!(
        err.to_string(),
        "test.json: expected an object of endpoints by name, found an array"
    );
}

#[test]
fn an_endpoint_that_is_not_an_object_is_refused() {
    let err = load_error(r#"{"e": "http://x/"}"#);
    assert_eq!(
        err.to_string(),
        r#"test.json: e: expected an object of fields, found string "http://x/""#
    );
    assert_eq!(err.endpoint(), Some("e"));
    let err = load_error(r#"{"e": null}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: expected an object of fields, found null"
    );
}

#[test]
fn a_missing_field_is_named() {
    let err = load_error(r#"{"tmp_1": {"protocol": "http", "host": "h", "route": "/api"}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: tmp_1: field `port`: missing (or give `url` instead)"
    );
    assert_eq!((err.endpoint(), err.field()), (Some("tmp_1"), Some("port")));
}

#[test]
fn a_wrongly_typed_field_is_named_with_what_was_found() {
    let err = load_error(r#"{"tmp_3": {"url": "http://x/", "time_out": "soon"}}"#);
    assert_eq!(
        err.to_string(),
        r#"test.json: tmp_3: field `time_out`: expected seconds as a number, found string "soon""#
    );
    let err = load_error(r#"{"e": {"protocol": 7, "host": "h", "port": 1, "route": "/"}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `protocol`: expected a string, found integer `7`"
    );
    let err = load_error(r#"{"e": {"url": "http://x/", "headers": {"a": 1}}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `headers`: expected a string for header `a`, found integer `1`"
    );
    let err = load_error(r#"{"e": {"url": "http://x/", "headers": ["a"]}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `headers`: expected an object of header names to strings, found an array"
    );
    let err = load_error(r#"{"e": {"url": "http://x/", "method": ["GET"]}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `method`: expected a string, found an array"
    );
}

#[test]
fn what_was_found_is_written_as_json_writes_it() {
    for (value, found) in [
        ("1.5e300", "floating point `1.5e300`"),
        ("null", "null"),
        ("{}", "an object"),
        ("true", "boolean `true`"),
    ] {
        let err = load_error(&format!(
            r#"{{"e": {{"url": "http://x/", "headers": {{"a": {value}}}}}}}"#
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "test.json: e: field `headers`: expected a string for header `a`, found {found}"
            )
        );
    }
    let err = load_error(r#"{"e": {"url": 1.5e300}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `url`: expected a string, found floating point `1.5e300`"
    );
}

#[test]
fn a_negative_timeout_is_refused() {
    let err = load_error(r#"{"e": {"url": "http://x/", "time_out": -1}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `time_out`: expected a finite, non-negative number of seconds, found -1"
    );
}

#[test]
fn a_timeout_too_large_for_a_duration_is_refused() {
    let err = load_error(r#"{"e": {"url": "http://x/", "time_out": 1e300}}"#);
    assert_eq!(err.field(), Some("time_out"));
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let err = load_error(r#"{"e": {"url": "http://x/", "time_outt": 5}}"#);
    assert!(
        err.to_string()
            .starts_with("test.json: e: field `time_outt`: unknown field (expected one of "),
        "{err}"
    );
    assert_eq!(err.field(), Some("time_outt"));
}

#[test]
fn url_and_its_parts_together_are_refused() {
    let err = load_error(r#"{"e": {"url": "http://x/", "host": "y"}}"#);
    assert_eq!(err.field(), Some("host"));
}

#[test]
fn a_file_that_does_not_exist_is_named() {
    let err = load_endpoints("/nonexistent/endpoints.json").expect_err("no such file");
    assert!(
        err.to_string().starts_with(
            "/nonexistent/endpoints.json: cannot read the file (No such file or directory"
        ),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused() {
    let path = std::env::temp_dir().join(format!("fanout-not-utf8-{}.json", std::process::id()));
    std::fs::write(&path, [0xff, 0xfe, b'{', b'}']).expect("write a temp file");
    let err = load_endpoints(&path).expect_err("not text");
    let _ = std::fs::remove_file(&path);
    assert!(err.to_string().contains("cannot read the file"), "{err}");
}

#[test]
fn a_well_typed_endpoint_with_a_bad_url_loads_but_is_invalid() {
    let endpoints = parse_endpoints(
        r#"{
            "proto": {"protocol": "gopher", "host": "h", "port": 1, "route": "/"},
            "range": {"protocol": "http", "host": "h", "port": 70000, "route": "/"},
            "big": {"protocol": "http", "host": "h", "port": "99999999999999999999", "route": "/"},
            "method": {"url": "http://h/", "method": "FETCH"},
            "ok": {"url": "http://h/"}
        }"#,
        "t",
    )
    .expect("well-typed entries load");
    let problems: Vec<_> = endpoints
        .iter()
        .map(|e| e.problem().unwrap_or(""))
        .collect();
    assert!(
        problems[0].contains("unsupported protocol `gopher`"),
        "{}",
        problems[0]
    );
    assert_eq!(problems[1], "port 70000 is out of range (0-65535)");
    assert_eq!(
        problems[2],
        "port 99999999999999999999 is out of range (0-65535)"
    );
    assert_eq!(problems[3], "unknown HTTP method `FETCH`");
    assert_eq!(problems[4], "");
}

#[test]
fn a_name_written_twice_is_two_endpoints_in_written_order() {
    let endpoints = parse_endpoints(
        r#"{"twin": {"url": "http://127.0.0.1:1/"}, "solo": {"url": "http://127.0.0.1:2/"},
            "twin": {"url": "http://127.0.0.1:3/"}}"#,
        "t",
    )
    .expect("loads");
    let loaded: Vec<_> = endpoints
        .iter()
        .map(|e| (e.name(), e.url().and_then(|u| u.port())))
        .collect();
    assert_eq!(
        loaded,
        [("twin", Some(1)), ("solo", Some(2)), ("twin", Some(3))]
    );
}

#[test]
fn a_field_written_twice_is_refused() {
    let err = load_error(r#"{"e": {"url": "http://x/", "time_out": 1, "time_out": 2}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `time_out`: given twice"
    );
}

#[test]
fn each_url_part_is_checked_on_its_own() {
    let endpoints = parse_endpoints(
        r#"{
            "slash": {"protocol": "http", "host": "a/b", "port": 80, "route": "/api"},
            "route": {"protocol": "http", "host": "h", "port": 80, "route": "api"},
            "v6": {"protocol": "http", "host": "::1", "port": 8080, "route": "/api"}
        }"#,
        "t",
    )
    .expect("well-typed entries load");
    assert!(
        endpoints[0].problem().unwrap_or("")
            == "host `a/b` is not a host name or IP address (`/` cannot be in one)",
        "{:?}",
        endpoints[0].problem()
    );
    assert_eq!(
        endpoints[1].problem(),
        Some("route `api` must start with `/`")
    );
    assert_eq!(endpoints[2].problem(), None);
    assert_eq!(
        endpoints[2].url().map(|u| u.as_str()),
        Some("http://[::1]:8080/api")
    );
}

#[test]
fn a_null_document_or_a_number_is_refused_as_a_whole() {
    for (json, found) in [
        ("null", "null"),
        ("5", "integer `5`"),
        (r#""x""#, r#"string "x""#),
    ] {
        let err = load_error(json);
        assert_eq!(
            err.to_string(),
            format!("test.json: expected an object of endpoints by name, found {found}")
        );
        assert_eq!(
            (err.endpoint(), err.field(), err.line()),
            (None, None, None)
        );
    }
}

#[test]
fn text_after_the_document_is_not_json() {
    let err = load_error(r#"{"e": {"url": "http://x/"}} {"#);
    assert!(
        err.to_string()
            .starts_with("test.json: not valid JSON (trailing characters at line 1 column"),
        "{err}"
    );
    assert_eq!(err.endpoint(), None);
}

#[test]
fn every_field_is_read() {
    let endpoints = parse_endpoints(
        r#"{"all": {"protocol": "https", "host": "example.com", "port": "8443", "route": "/v1?q=1",
                    "method": "get", "content_type": "application/vnd.x+json", "time_out": 1.5,
                    "data": {"k": [1, 2]}, "headers": {"x-b": "2", "x-a": "1"},
                    "expect": "bytes", "idempotent": false},
            "text": {"url": "http://127.0.0.1:9/log", "text": "a line\n", "expect": "text",
                     "idempotent": true}}"#,
        "t",
    )
    .expect("loads");
    let all = &endpoints[0];
    assert_eq!(all.name(), "all");
    assert_eq!(
        all.url().map(|u| u.as_str()),
        Some("https://example.com:8443/v1?q=1")
    );
    assert_eq!(all.method(), Method::Get);
    assert_eq!(all.media_type(), "application/vnd.x+json");
    assert_eq!(all.time_limit(), Duration::from_millis(1500));
    assert_eq!(all.data(), Some(&json!({"k": [1, 2]})));
    let headers = [("x-b", "2"), ("x-a", "1")].map(|(n, v)| (n.to_owned(), v.to_owned()));
    assert_eq!(all.headers(), headers);
    assert_eq!(all.format(), BodyFormat::Bytes);
    assert!(!all.is_idempotent(), "a GET marked not idempotent");
    assert_eq!(all.problem(), None);

    let text = &endpoints[1];
    assert_eq!(text.method(), Method::Post);
    assert_eq!(text.data(), None);
    assert_eq!(text.media_type(), "text/plain; charset=utf-8");
    assert_eq!(text.format(), BodyFormat::Text);
    assert!(text.is_idempotent(), "a POST marked idempotent");
    assert_eq!(text.time_limit(), fanout::DEFAULT_TIMEOUT);
}

#[test]
fn null_data_is_sent_as_null_and_any_other_null_field_is_not_given() {
    let endpoints = parse_endpoints(
        r#"{"e": {"url": "http://x/", "data": null, "method": null, "time_out": null,
                  "headers": null, "expect": null, "idempotent": null, "text": null,
                  "protocol": null}}"#,
        "t",
    )
    .expect("loads");
    let e = &endpoints[0];
    assert_eq!(e.data(), Some(&Value::Null));
    assert_eq!(
        (e.method(), e.time_limit(), e.format()),
        (Method::Post, fanout::DEFAULT_TIMEOUT, BodyFormat::Json)
    );
}

#[test]
fn a_header_written_twice_is_sent_twice_and_content_type_sets_the_content_type() {
    let endpoints = parse_endpoints(
        r#"{"e": {"url": "http://x/", "headers": {"x-a": "1", "Content-Type": "text/csv", "x-a": "2"}}}"#,
        "t",
    )
    .expect("loads");
    let headers = [("x-a", "1"), ("x-a", "2")].map(|(n, v)| (n.to_owned(), v.to_owned()));
    assert_eq!(endpoints[0].headers(), headers);
    assert_eq!(endpoints[0].media_type(), "text/csv");
}

#[test]
fn a_port_is_a_number_or_a_string_of_digits() {
    let url_of = |port: &str| {
        let json = format!(
            r#"{{"e": {{"protocol": "http", "host": "127.0.0.1", "port": {port}, "route": "/"}}}}"#
        );
        parse_endpoints(&json, "t").map(|e| e[0].url().map(|u| u.to_string()))
    };
    assert_eq!(
        url_of("8080"),
        Ok(Some("http://127.0.0.1:8080/".to_owned()))
    );
    assert_eq!(
        url_of(r#""8080""#),
        Ok(Some("http://127.0.0.1:8080/".to_owned()))
    );
    // The default port for the scheme is left out of the URL.
    assert_eq!(url_of(r#""080""#), Ok(Some("http://127.0.0.1/".to_owned())));
    for (port, found) in [
        (r#""abc""#, r#"string "abc""#),
        (r#""""#, r#"string """#),
        (r#"" 80""#, r#"string " 80""#),
        ("true", "boolean `true`"),
        ("-1", "integer `-1`"),
        ("80.5", "floating point `80.5`"),
        ("[80]", "an array"),
    ] {
        let err = url_of(port).expect_err(port);
        assert_eq!(
            err.to_string(),
            format!(
                "t: e: field `port`: expected a port number (a whole number or a string of digits), found {found}"
            )
        );
        assert_eq!((err.endpoint(), err.field()), (Some("e"), Some("port")));
    }
}

#[test]
fn a_port_out_of_range_loads_as_an_invalid_endpoint() {
    let endpoints = parse_endpoints(
        r#"{"far": {"protocol": "http", "host": "127.0.0.1", "port": 70000, "route": "/"},
            "near": {"protocol": "http", "host": "127.0.0.1", "port": "65535", "route": "/"}}"#,
        "t",
    )
    .expect("well-typed entries load");
    assert_eq!(
        endpoints[0].problem(),
        Some("port 70000 is out of range (0-65535)")
    );
    assert_eq!(endpoints[1].problem(), None);
}

#[test]
fn each_missing_part_is_named_in_order() {
    for (json, missing) in [
        (r#"{}"#, "protocol"),
        (r#"{"protocol": "http"}"#, "host"),
        (r#"{"protocol": "http", "host": "h"}"#, "port"),
        (r#"{"protocol": "http", "host": "h", "port": 1}"#, "route"),
        (r#"{"protocol": "http", "port": 1, "route": "/"}"#, "host"),
    ] {
        let err = load_error(&format!(r#"{{"e": {json}}}"#));
        assert_eq!(
            err.to_string(),
            format!("test.json: e: field `{missing}`: missing (or give `url` instead)")
        );
    }
}

#[test]
fn data_and_text_together_are_refused_naming_both() {
    let err = load_error(r#"{"e": {"url": "http://x/", "data": {}, "text": "hi"}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `text`: give either `data` or `text`, not both"
    );
    let err = load_error(r#"{"e": {"url": "http://x/", "data": null, "text": "hi"}}"#);
    assert_eq!(err.field(), Some("text"));
}

#[test]
fn text_must_be_a_string() {
    let err = load_error(r#"{"e": {"url": "http://x/", "text": {"a": 1}}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `text`: expected a string, found an object"
    );
}

#[test]
fn expect_names_one_of_three_formats() {
    for (name, format) in [
        ("json", BodyFormat::Json),
        ("text", BodyFormat::Text),
        ("bytes", BodyFormat::Bytes),
    ] {
        let json = format!(r#"{{"e": {{"url": "http://x/", "expect": "{name}"}}}}"#);
        let endpoints = parse_endpoints(&json, "t").expect("loads");
        assert_eq!(endpoints[0].format(), format);
    }
    let err = load_error(r#"{"e": {"url": "http://x/", "expect": "xml"}}"#);
    assert_eq!(
        err.to_string(),
        r#"test.json: e: field `expect`: expected "json", "text" or "bytes", found string "xml""#
    );
    let err = load_error(r#"{"e": {"url": "http://x/", "expect": 5}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `expect`: expected a string, found integer `5`"
    );
}

#[test]
fn idempotent_is_a_boolean_that_overrides_the_method() {
    let endpoints = parse_endpoints(
        r#"{"post": {"url": "http://x/", "idempotent": true},
            "get": {"url": "http://x/", "method": "GET", "idempotent": false},
            "plain": {"url": "http://x/"}}"#,
        "t",
    )
    .expect("loads");
    let marked: Vec<_> = endpoints.iter().map(Endpoint::is_idempotent).collect();
    assert_eq!(marked, [true, false, false]);
    let err = load_error(r#"{"e": {"url": "http://x/", "idempotent": "yes"}}"#);
    assert_eq!(
        err.to_string(),
        r#"test.json: e: field `idempotent`: expected a boolean, found string "yes""#
    );
}

#[test]
fn an_unknown_field_lists_every_field() {
    let err = load_error(r#"{"e": {"url": "http://x/", "name": "e"}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `name`: unknown field (expected one of protocol, host, port, \
         route, url, method, content_type, time_out, data, text, headers, expect, idempotent)"
    );
}

#[test]
fn an_error_in_a_later_endpoint_names_that_endpoint() {
    let err = load_error(
        r#"{"a": {"url": "http://x/", "time_out": 1}, "b": {"url": "http://x/"},
            "c": [1]}"#,
    );
    assert_eq!(
        err.to_string(),
        "test.json: c: expected an object of fields, found an array"
    );
    assert_eq!(err.field(), None);
}

// JSON Lines.

fn jsonl(text: &str) -> Vec<Result<Endpoint, LoadError>> {
    load_endpoints_jsonl(text.as_bytes(), "endpoints.jsonl").collect()
}

#[test]
fn json_lines_load_one_endpoint_a_line_in_order() {
    let items = jsonl(
        r#"{"name": "a", "url": "http://127.0.0.1:1/", "data": {"sleep_time": 1}}
{"protocol": "http", "host": "127.0.0.1", "port": "2", "route": "/api", "name": "b", "time_out": 0.5}
{"name": "a", "url": "http://127.0.0.1:3/", "text": "again", "expect": "text"}
"#,
    );
    let loaded: Vec<_> = items
        .iter()
        .map(|item| {
            let e = item.as_ref().expect("each line loads");
            (e.name(), e.url().and_then(|u| u.port()), e.time_limit())
        })
        .collect();
    assert_eq!(
        loaded,
        [
            ("a", Some(1), fanout::DEFAULT_TIMEOUT),
            ("b", Some(2), Duration::from_millis(500)),
            ("a", Some(3), fanout::DEFAULT_TIMEOUT),
        ]
    );
}

#[test]
fn a_bad_line_in_the_middle_fails_alone_and_names_its_line() {
    let items = jsonl(
        r#"{"name": "a", "url": "http://127.0.0.1:1/"}

{"name": "tmp_3", "url": "http://127.0.0.1:3/", "time_out": "soon"}
{"name": "d", "url": "http://127.0.0.1:4/"}"#,
    );
    assert_eq!(items.len(), 3, "the blank line is passed over");
    assert_eq!(items[0].as_ref().map(|e| e.name()), Ok("a"));
    assert_eq!(items[2].as_ref().map(|e| e.name()), Ok("d"));
    let err = items[1].as_ref().expect_err("line 3 is bad");
    assert_eq!(
        err.to_string(),
        r#"endpoints.jsonl: line 3: tmp_3: field `time_out`: expected seconds as a number, found string "soon""#
    );
    assert_eq!(
        (err.line(), err.endpoint(), err.field()),
        (Some(3), Some("tmp_3"), Some("time_out"))
    );
}

#[test]
fn a_line_names_its_endpoint_even_when_the_fault_comes_before_the_name() {
    let err = parse_endpoint_line(r#"{"bogus": 1, "name": "late"}"#, 7, "f.jsonl")
        .expect_err("unknown field");
    assert_eq!(
        err.to_string(),
        "f.jsonl: line 7: late: field `bogus`: unknown field (expected one of name, protocol, \
         host, port, route, url, method, content_type, time_out, data, text, headers, expect, \
         idempotent)"
    );
}

#[test]
fn a_line_without_a_usable_name_is_refused() {
    let err = parse_endpoint_line(r#"{"url": "http://x/"}"#, 2, "f.jsonl").expect_err("no name");
    assert_eq!(err.to_string(), "f.jsonl: line 2: field `name`: missing");
    assert_eq!(err.endpoint(), None);
    let err = parse_endpoint_line(r#"{"name": 5, "url": "http://x/"}"#, 2, "f.jsonl")
        .expect_err("a number for a name");
    assert_eq!(
        err.to_string(),
        "f.jsonl: line 2: field `name`: expected a string, found integer `5`"
    );
    let err = parse_endpoint_line(
        r#"{"name": "a", "url": "http://x/", "name": "b"}"#,
        2,
        "f.jsonl",
    )
    .expect_err("two names");
    assert_eq!(
        err.to_string(),
        "f.jsonl: line 2: a: field `name`: given twice"
    );
}

#[test]
fn a_line_that_is_not_json_or_not_an_object_names_its_line() {
    let err = parse_endpoint_line(r#"{"name": "a", "url": "#, 4, "f.jsonl").expect_err("cut short");
    assert_eq!(
        err.to_string(),
        "f.jsonl: line 4: a: not valid JSON (EOF while parsing a value at column 21)"
    );
    let err = parse_endpoint_line(r#"["a"]"#, 5, "f.jsonl").expect_err("an array");
    assert_eq!(
        err.to_string(),
        "f.jsonl: line 5: expected an object with the endpoint's name and fields, found an array"
    );
    let err = parse_endpoint_line(r#"{"name": "a", "url": "http://x/"} 1"#, 6, "f.jsonl")
        .expect_err("two values");
    assert_eq!(
        err.to_string(),
        "f.jsonl: line 6: a: not valid JSON (trailing characters at column 35)"
    );
}

#[test]
fn a_line_with_a_bad_url_loads_as_an_invalid_endpoint() {
    let endpoint = parse_endpoint_line(
        r#"{"name": "g", "protocol": "gopher", "host": "h", "port": 70, "route": "/"}"#,
        1,
        "f.jsonl",
    )
    .expect("well-typed");
    assert!(
        endpoint
            .problem()
            .is_some_and(|p| p.contains("unsupported protocol `gopher`")),
        "{:?}",
        endpoint.problem()
    );
}

#[test]
fn a_line_that_is_not_utf8_fails_alone() {
    let mut input = b"{\"name\": \"a\", \"url\": \"http://x/\"}\n".to_vec();
    input.extend_from_slice(b"{\"name\": \"\xff\"}\n{\"name\": \"c\", \"url\": \"http://x/\"}\r\n");
    let items: Vec<_> = load_endpoints_jsonl(&input[..], "f.jsonl").collect();
    assert_eq!(items.len(), 3);
    let err = items[1].as_ref().expect_err("not UTF-8");
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string()
            .starts_with("f.jsonl: line 2: cannot read the line ("),
        "{err}"
    );
    assert_eq!(items[2].as_ref().map(|e| e.name()), Ok("c"));
}

/// A reader that makes `lines` JSON Lines as they are read and counts how many it made.
struct GeneratedLines {
    lines: usize,
    made: Arc<AtomicUsize>,
    pending: Vec<u8>,
}

impl Read for GeneratedLines {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            let n = self.made.load(Ordering::SeqCst);
            if n == self.lines {
                return Ok(0);
            }
            self.made.store(n + 1, Ordering::SeqCst);
            self.pending = format!(
                "{{\"name\": \"e{n}\", \"url\": \"http://127.0.0.1:9/{n}\", \"data\": {{\"n\": {n}}}}}\n"
            )
            .into_bytes();
        }
        let len = self.pending.len().min(buf.len());
        buf[..len].copy_from_slice(&self.pending[..len]);
        self.pending.drain(..len);
        Ok(len)
    }
}

#[test]
fn json_lines_are_read_lazily_one_line_at_a_time() {
    const LINES: usize = 100_000;
    let made = Arc::new(AtomicUsize::new(0));
    let reader: Box<dyn BufRead> = Box::new(BufReader::new(GeneratedLines {
        lines: LINES,
        made: Arc::clone(&made),
        pending: Vec::new(),
    }));
    let mut endpoints = load_endpoints_jsonl(reader, "generated.jsonl");

    let first = endpoints.next().expect("a first item").expect("loads");
    assert_eq!(first.name(), "e0");
    let made_for_the_first = made.load(Ordering::SeqCst);
    assert!(
        made_for_the_first < 1_000,
        "{made_for_the_first} lines made to read one"
    );

    let mut count = 1;
    for (n, endpoint) in (1..).zip(endpoints) {
        let endpoint = endpoint.expect("each generated line loads");
        assert_eq!(endpoint.data(), Some(&json!({"n": n})));
        count += 1;
    }
    assert_eq!((count, made.load(Ordering::SeqCst)), (LINES, LINES));
}
