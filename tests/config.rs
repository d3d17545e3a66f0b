//! Loading endpoints: the shipped file, and a clear error for each kind of bad input.

use std::time::Duration;

use fanout::{load_endpoints, parse_endpoints, LoadError, Method};
use serde_json::json;

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
        "test.json: e: field `protocol`: expected a string, found number 7"
    );
    let err = load_error(r#"{"e": {"url": "http://x/", "headers": {"a": 1}}}"#);
    assert_eq!(
        err.to_string(),
        "test.json: e: field `headers`: header `a`: expected a string, found number 1"
    );
    let err = load_error(r#"{"e": {"protocol": "http", "host": "h", "port": true, "route": "/"}}"#);
    assert_eq!(err.field(), Some("port"));
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
            "words": {"protocol": "http", "host": "h", "port": "eighty", "route": "/"},
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
    assert_eq!(problems[2], "port `eighty` is not a whole number");
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
        endpoints[0]
            .problem()
            .unwrap_or("")
            .starts_with("host `a/b` is not a host name or IP address"),
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
