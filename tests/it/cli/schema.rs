//! The JSON report against `schema/report.schema.json`: a checker for the part of JSON Schema
//! the file uses (type, enum, const, required, properties, additionalProperties: false, items,
//! oneOf, $ref into $defs), so every key the report prints is in the schema and every key the
//! schema requires is printed, with its type.

use super::*;

/// The schema shipped in the repository.
fn schema() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json"),
    )
    .expect("schema/report.schema.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        _ => panic!("the checker does not know type {t}"),
    }
}

/// The places where `v` breaks schema `s` (`root` resolves $ref), each with its JSON path.
fn check(v: &Value, s: &Value, root: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("$ref into $defs");
        return check(v, &root["$defs"][name], root, at, errors);
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let fits = alts
            .iter()
            .filter(|a| {
                let mut e = Vec::new();
                check(v, a, root, at, &mut e);
                e.is_empty()
            })
            .count();
        if fits != 1 {
            errors.push(format!("{at}: fits {fits} of the oneOf alternatives"));
        }
        return;
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(v, t)) {
        errors.push(format!("{at}: {v} is not {types:?}"));
        return;
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let (Some(obj), Some(props)) = (v.as_object(), s.get("properties")) {
        for key in s["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(key) {
                errors.push(format!("{at}: `{key}` is missing"));
            }
        }
        for (key, value) in obj {
            match props.get(key) {
                Some(p) => check(value, p, root, &format!("{at}.{key}"), errors),
                None => errors.push(format!("{at}: `{key}` is not in the schema")),
            }
        }
    }
    if let (Some(items), Some(item)) = (v.as_array(), s.get("items")) {
        for (i, x) in items.iter().enumerate() {
            check(x, item, root, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Reports of every kind: validated (timing), --report all, SE already present, shapes that
/// stop (no compute), a FLOAT16 model, squeeze none.
#[test]
fn json_reports_match_the_schema() {
    let root = schema();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.onnx");
    let reports = [
        json_to(fixture("resnet_basic_ts"), &out, &["--time-runs", "1"]),
        json(fixture("mobilenet_v2_tiny_dynamo"), &["--report", "all"]),
        json(fixture("se_resnet_tiny_ts"), &["--report", "all"]),
        json(
            fixture("vgg_tiny_ts"),
            &["--report", "macs", "--input-shape", "1,3,1,1"],
        ),
        json_to(fixture("fp16_resnet_tiny_ts"), &out, &["--time-runs", "1"]),
        json(
            fixture("inception_tiny_ts"),
            &["--report", "params", "--squeeze", "none"],
        ),
    ];
    for (i, r) in reports.iter().enumerate() {
        let mut errors = Vec::new();
        check(r, &root, &root, "$", &mut errors);
        assert!(errors.is_empty(), "report {i}:\n{}", errors.join("\n"));
    }
    // The checker catches what it should.
    let mut errors = Vec::new();
    let mut bad = reports[0].clone();
    bad["compute"]["added"]["profiler"] = Value::from("many");
    bad["surprise"] = Value::from(1);
    check(&bad, &root, &root, "$", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    // The shapes stop in vgg_tiny on a 1×1 input (its first 2×2 max pool has no output): no
    // compute, a note naming the pool.
    assert!(reports[3].get("compute").is_none());
    assert!(reports[3]["compute_note"]
        .as_str()
        .unwrap()
        .contains("MaxPool"));
}
