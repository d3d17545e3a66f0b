//! The loader never panics, whatever it is given: arbitrary bytes, arbitrary JSON, and
//! endpoint-shaped objects with arbitrary field values, as a JSON file and as JSON Lines.

use fanout::{load_endpoints_jsonl, parse_endpoint_line, parse_endpoints};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// An endpoint object built from the loader's own field names, with values of any type.
fn endpoint_shaped() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("protocol"),
        Just("host"),
        Just("port"),
        Just("route"),
        Just("url"),
        Just("method"),
        Just("content_type"),
        Just("time_out"),
        Just("data"),
        Just("headers"),
        Just("text"),
        Just("expect"),
        Just("idempotent"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        any_json(),
        Just(Value::from("http")),
        Just(Value::from("127.0.0.1")),
        Just(Value::from("30001")),
        Just(Value::from("/api")),
        Just(Value::from("http://127.0.0.1:1/")),
        Just(Value::from("text")),
        any::<bool>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
    ];
    prop::collection::vec((field, value), 0..8).prop_map(|fields| {
        let object: Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Value::Object(object)
    })
}

/// A JSON file holding one endpoint, `e`.
fn in_a_file(endpoint: Value) -> String {
    Value::Object(Map::from_iter([("e".to_owned(), endpoint)])).to_string()
}

/// A JSON Lines line holding the endpoint `e`: its name first, or last.
fn in_a_line(endpoint: Value, name_last: bool) -> String {
    let Value::Object(fields) = endpoint else {
        return endpoint.to_string();
    };
    let name = ("name".to_owned(), Value::from("e"));
    let object: Map<String, Value> = if name_last {
        fields.into_iter().chain([name]).collect()
    } else {
        [name].into_iter().chain(fields).collect()
    };
    Value::Object(object).to_string()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_endpoints(&text, "fuzz");
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let _ = parse_endpoints(&value.to_string(), "fuzz");
    }

    #[test]
    fn endpoint_shaped_objects_load_or_fail_with_a_named_error(value in endpoint_shaped()) {
        match parse_endpoints(&in_a_file(value), "fuzz") {
            Ok(endpoints) => prop_assert_eq!(endpoints.len(), 1),
            Err(err) => {
                prop_assert_eq!(err.endpoint(), Some("e"));
                prop_assert!(err.to_string().starts_with("fuzz: e: "), "{}", err);
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_lines_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for item in load_endpoints_jsonl(&bytes[..], "fuzz") {
            if let Err(err) = item {
                prop_assert!(err.line().is_some(), "{}", err);
            }
        }
    }

    #[test]
    fn endpoint_shaped_lines_load_or_fail_naming_line_and_endpoint(
        value in endpoint_shaped(),
        name_last in any::<bool>(),
    ) {
        match parse_endpoint_line(&in_a_line(value, name_last), 9, "fuzz") {
            Ok(endpoint) => prop_assert_eq!(endpoint.name(), "e"),
            Err(err) => {
                prop_assert_eq!((err.line(), err.endpoint()), (Some(9), Some("e")));
                prop_assert!(err.to_string().starts_with("fuzz: line 9: e: "), "{}", err);
            }
        }
    }
}
