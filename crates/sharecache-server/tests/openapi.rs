//! The served OpenAPI document is one clients can trust: it passes an OpenAPI 3.1
//! validator (`openapi-spec-validator`, installed by `scripts/test`), its routes and
//! their security are exactly the route table's (which `tests/routes.rs` checks against
//! the router), its operationIds are unique, and every operation documents the errors it
//! can answer with the error schema.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use axum::http::{Method, StatusCode};
use serde_json::Value;
use support::routes::{Perm, routes};
use support::{Backend, TestApp};

async fn served(app: &TestApp) -> Value {
    let r = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    r.json()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (METHOD, path) -> operation, for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_passes_an_openapi_3_1_validator() {
    let app = TestApp::new(Backend::Memory).await;
    let doc = served(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
                  validate(json.load(sys.stdin), cls=OpenAPIV31SpecValidator)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs openapi-spec-validator)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenAPI document is invalid (or openapi-spec-validator is missing: \
         `python3 -m pip install openapi-spec-validator`, as scripts/test does):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_document_has_exactly_the_routes_of_the_table() {
    let app = TestApp::new(Backend::Memory).await;
    let doc = served(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let table: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes in the table but not documented: {missing:?}; documented but not in the table: {extra:?}"
    );
    // On each path of the table, the router serves no method the document lacks: the
    // others are 405 (HEAD is served wherever GET is). POST on a cache key is the one
    // route outside the document: it is not an operation, and says so with a 404.
    let paths: BTreeSet<&str> = routes().iter().map(|r| r.path).collect();
    for path in paths {
        let uri = support::routes::routes()
            .into_iter()
            .find(|r| r.path == path)
            .unwrap()
            .uri("user", "k");
        for m in [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::HEAD,
        ] {
            let key = (m.to_string(), path.to_owned());
            if documented.contains(&key)
                || (m == Method::HEAD && documented.contains(&("GET".to_owned(), path.to_owned())))
            {
                continue;
            }
            let r = app
                .call(m.clone(), &uri, Some(&app.admin), Some("{}"))
                .await;
            let expected = if m == Method::POST && path == "/v1/cache/{ns}/{key}" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::METHOD_NOT_ALLOWED
            };
            assert_eq!(
                r.status,
                expected,
                "{m} {uri} is served but not documented: {}",
                r.text()
            );
        }
    }
}

#[tokio::test]
async fn operation_ids_are_unique() {
    let app = TestApp::new(Backend::Memory).await;
    let doc = served(&app).await;
    let mut seen = BTreeSet::new();
    for (m, p, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {p} has no operationId"));
        assert!(seen.insert(id.to_owned()), "operationId {id} twice");
    }
}

fn security(op: &Value) -> Option<Vec<String>> {
    op.get("security").map(|s| {
        s.as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().cloned())
            .collect()
    })
}

#[tokio::test]
async fn security_and_error_answers_follow_the_permissions() {
    for metrics_public in [false, true] {
        let app = TestApp::with_server_config(
            Backend::Memory,
            &format!("max_body_bytes = 65536\nmax_batch = 100\nmetrics_public = {metrics_public}"),
        )
        .await;
        let doc = served(&app).await;
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"],
            serde_json::json!({"type": "http", "scheme": "bearer"})
        );
        assert!(doc.get("security").is_none(), "security is per operation");
        for route in routes() {
            let ctx = format!(
                "{} {} (metrics_public {metrics_public})",
                route.method, route.path
            );
            let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
            let public = matches!(route.perm, Perm::Public | Perm::Login)
                || (route.path == "/metrics" && metrics_public);
            let responses = op["responses"].as_object().unwrap();
            let error = |status: &str| {
                let r = responses
                    .get(status)
                    .unwrap_or_else(|| panic!("{ctx}: {status} not documented"));
                if route.method != Method::HEAD {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{ctx}: {status}"
                    );
                }
            };
            if route.perm == Perm::Login {
                // The token travels in the body: no security scheme, but its refusals.
                assert_eq!(security(op), None, "{ctx}");
                error("401");
                error("403");
                error("429");
            } else if public {
                assert_eq!(security(op), None, "{ctx}");
                assert!(!responses.contains_key("401"), "{ctx}");
            } else {
                assert_eq!(security(op), Some(vec!["bearer".to_owned()]), "{ctx}");
                error("401");
                error("429");
            }
            if route.perm == Perm::Admin && !metrics_public {
                error("403");
            }
            if route.has_ns() {
                error("400");
                error("403");
                error("503");
            }
            if let Some(body) = route.body {
                error("400");
                error("413");
                // Typed bodies (read with the JSON extractor) need the content type.
                assert_eq!(
                    responses.contains_key("415"),
                    body.starts_with('{'),
                    "{ctx}: 415"
                );
            }
        }
    }
}

#[tokio::test]
async fn schemas_carry_the_bounds() {
    let app = TestApp::new(Backend::Memory).await;
    let doc = served(&app).await;
    let schemas = &doc["components"]["schemas"];
    for name in [
        "KeysBody",
        "MsetBody",
        "InvalidateBody",
        "RateLimitBody",
        "AcquireBody",
        "ExtendBody",
        "CreateBody",
        "UpdateBody",
        "ClaimBody",
        "AckBody",
        "ErrorBody",
    ] {
        assert!(schemas.get(name).is_some(), "schema {name} missing");
    }
    assert_eq!(
        schemas["MsetBody"]["properties"]["ttl"]["maximum"],
        315_360_000
    );
    assert_eq!(
        schemas["AcquireBody"]["properties"]["ttl_ms"]["maximum"],
        86_400_000
    );
    assert_eq!(schemas["ClaimBody"]["properties"]["count"]["maximum"], 1000);
    let get = &doc["paths"]["/v1/cache/{ns}/{key}"]["get"]["parameters"];
    let param = |name: &str| {
        get.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))["schema"]
            .clone()
    };
    assert_eq!(param("ns")["pattern"], "^[a-z0-9_-]{1,64}$");
    assert_eq!(
        (
            param("key")["minLength"].as_u64(),
            param("key")["maxLength"].as_u64()
        ),
        (Some(1), Some(1024))
    );
    let put = &doc["paths"]["/v1/cache/{ns}/{key}"]["put"]["parameters"];
    let ttl = put
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ttl")
        .unwrap();
    assert_eq!(
        (
            ttl["schema"]["minimum"].as_u64(),
            ttl["schema"]["maximum"].as_u64()
        ),
        (Some(1), Some(315_360_000))
    );
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("%5Fmget"),
        "the document says how to reach a key named like an operation"
    );
}
