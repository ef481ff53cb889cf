//! The OpenAPI document's shared parts. Each operation comes from its handler's
//! `#[utoipa::path]` (see [`super::api`]); this module adds what every operation of a
//! kind has in common, by rule, so no handler repeats it:
//!
//! * `security`: the bearer token, on every operation but `/health`, `/ready`,
//!   `/openapi.json` (and `/metrics` with `metrics_public`);
//! * the error answers, all with the [`ErrorBody`] schema: 401 and 429 where a token is
//!   checked; 400 and 403 under a namespace; 400 and 413 where a body is read, and 415
//!   where it is read as a typed JSON body; 500, 503 and 507 wherever the backend is called.
//!   Handlers list only their own answers (404, 409).
//!
//! Tests check the rules against the router: `tests/openapi.rs` validates the served
//! document and compares its routes and security with the route table of
//! `tests/support`, which drives the 401/403/400 checks of every route.

use axum::http::Method;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::HttpOptions;
use super::error::{ErrorBody, ErrorDetail};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sharecache",
        description = "Shared, namespaced cache and coordination over HTTP.\n\n\
            Every /v1 request carries `Authorization: Bearer <token>`; each credential may read \
            or write the namespaces it is granted. Errors are `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}` \
            with a stable code.\n\n\
            Keys, names and ids in paths are percent-encoded. A key spelt like an operation of its \
            route (`_mget`, `_mset`, `_mdel`, `_invalidate` under /v1/cache/{ns}, `_claim`, `_ack`, \
            `_dead` under a queue, `_extend`, `_rotate`, `_since`) is reached by encoding its first \
            character: `/v1/cache/{ns}/%5Fmget` is the key `_mget`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "cache", description = "Values (JSON documents stored as sent), batches, listings, tags"),
        (name = "ratelimit", description = "Rate-limit decisions (GCRA or sliding window)"),
        (name = "locks", description = "Leases with fencing tokens"),
        (name = "sessions", description = "Server-side sessions with sealed ids"),
        (name = "events", description = "Publish and subscribe (Server-Sent Events), durable replay"),
        (name = "queues", description = "Work queues: push, claim, acknowledge, dead letters"),
        (name = "presence", description = "Who is online"),
        (name = "ops", description = "Health, readiness, metrics, stats, this document"),
        (name = "dashboard", description = "Dashboard login (session cookie), the key browser, the primitives of a namespace, the audit log"),
    )
)]
struct ApiDoc;

/// Name of the bearer security scheme.
pub const BEARER: &str = "bearer";

/// The dashboard login: public (no bearer token) but it checks the token in its body.
pub const LOGIN_PATH: &str = "/v1/dashboard/login";

/// Paths served without a bearer token.
pub const PUBLIC_PATHS: [&str; 5] = [
    "/health",
    "/ready",
    "/openapi.json",
    "/v1/dashboard/login",
    "/v1/dashboard/logout",
];

/// The document before any route is added: info, tags, the error schema, the scheme.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    doc
}

/// Every operation of a path item with its method.
pub(crate) fn operations(item: &PathItem) -> Vec<(Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}

fn operations_mut(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
    .collect()
}

/// Adds the rule-given security and error answers to every operation.
pub(crate) fn finish(doc: &mut utoipa::openapi::OpenApi, opts: &HttpOptions) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let public =
            PUBLIC_PATHS.contains(&path.as_str()) || (path == "/metrics" && opts.metrics_public);
        for (method, op) in operations_mut(item) {
            let mut add = |status: u16, description: &str| {
                let key = status.to_string();
                if op.responses.responses.contains_key(&key) {
                    return;
                }
                let mut r = ResponseBuilder::new().description(description);
                // A HEAD answer has no body.
                if method != Method::HEAD {
                    r = r.content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                            .build(),
                    );
                }
                op.responses.responses.insert(key, RefOr::T(r.build()));
            };
            if public {
                op.security = None;
            } else {
                op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                add(401, "no token, or an unknown one (`unauthorized`)");
                add(
                    429,
                    "too many failed authentications from this address; see Retry-After (`rate_limited`)",
                );
            }
            if path.contains("{ns}") {
                add(
                    400,
                    "invalid namespace, key, path, query or body (`invalid_*`, `too_many_keys`)",
                );
                add(
                    403,
                    "the credential lacks the grant on this namespace (`forbidden`)",
                );
            }
            if let Some(body) = &op.request_body {
                // A body of a declared shape is read as JSON, which needs the content
                // type; an "any JSON document" body is taken as sent.
                let typed = body
                    .content
                    .values()
                    .any(|c| matches!(c.schema, Some(RefOr::Ref(_))));
                add(400, "invalid body (`invalid_body`)");
                add(
                    413,
                    "body over `[server] max_body_bytes`, or a value over the library's limit",
                );
                if typed {
                    add(
                        415,
                        "the body is not sent as `content-type: application/json` (`unsupported_media_type`)",
                    );
                }
            }
            if path == "/v1/cache/{ns}/{key}" {
                add(
                    409,
                    "the key holds a Redis value of another type, not a string (`wrong_type`)",
                );
                if method == Method::GET {
                    add(
                        422,
                        "the key holds a string that is not JSON, written by another client (`not_json`)",
                    );
                }
            }
            if path.starts_with("/v1/") {
                add(500, "internal error, detail in the server log (`internal`)");
                add(
                    503,
                    "the backend is unavailable or refuses this call; see Retry-After \
                     (`unavailable`, `fallback_full`, `backend_read_only`, `backend_loading`, \
                     `backend_busy`, `backend_cannot_persist`, `backend_permission`)",
                );
                add(
                    507,
                    "the backend is out of memory: Redis `maxmemory` reached under a policy that \
                     cannot evict (`backend_full`)",
                );
            }
            // The login takes its token in the body: it keeps its own refusals.
            if public && path != LOGIN_PATH {
                for s in ["401", "403", "429"] {
                    op.responses.responses.remove(s);
                }
            }
        }
    }
}
