//! The one table of every route of the API: method, path template (as in the OpenAPI
//! document), the permission it needs and a sample request that is valid once the
//! permission is held. `tests/routes.rs` drives the 403 and 400 checks of every route
//! from it, `tests/isolation.rs` the 401s; `tests/openapi.rs` compares it with the served
//! document (and probes the router for methods the document lacks on these paths), so a
//! route added to `api()` without a row here, or a row without a route, fails a test.
//! Outside the document and this table are only the dashboard's static files and POST on
//! a cache key (a 404).

use axum::http::Method;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// No token.
    Public,
    /// Any valid token (what it shows depends on the grants).
    Any,
    /// Read (or write) on the path's namespace.
    Read,
    /// Write on the path's namespace.
    Write,
    /// The admin credential (unless `metrics_public` for `/metrics`).
    Admin,
    /// No bearer token: the dashboard login, which takes a token in its body and only
    /// from a same-origin page (tests/dashboard_roles.rs).
    Login,
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// As in the OpenAPI document: `/v1/cache/{ns}/{key}`.
    pub path: &'static str,
    pub perm: Perm,
    /// A valid query string for the sample request (without `?`), or "".
    pub query: &'static str,
    /// A valid body for the sample request.
    pub body: Option<&'static str>,
    /// Answers a stream (SSE): a successful call never ends, so only refusals are sent.
    pub streams: bool,
}

impl Route {
    /// The sample request's URI with `ns` for `{ns}` and `name` (already percent-encoded)
    /// for the other parameter, if any.
    pub fn uri(&self, ns: &str, name: &str) -> String {
        let mut out = String::new();
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}').expect("closed parameter");
            out.push_str(&rest[..open]);
            out.push_str(if &rest[open..=close] == "{ns}" {
                ns
            } else {
                name
            });
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        if !self.query.is_empty() {
            out.push('?');
            out.push_str(self.query);
        }
        out
    }

    /// Whether the path has a namespace.
    pub fn has_ns(&self) -> bool {
        self.path.contains("{ns}")
    }

    /// Whether a parameter other than `{ns}` is a key checked by the library
    /// (`invalid_key`): every one but the session id, which is only ever looked up.
    pub fn has_key(&self) -> bool {
        self.path.matches('{').count() > 1 && !self.path.contains("{id}")
    }
}

fn r(method: Method, path: &'static str, perm: Perm, body: Option<&'static str>) -> Route {
    Route {
        method,
        path,
        perm,
        query: "",
        body,
        streams: false,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Perm::*;
    let (get, put, post, delete, head, patch) = (
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::HEAD,
        Method::PATCH,
    );
    let with_query = |mut route: Route, query: &'static str| {
        route.query = query;
        route
    };
    let mut subscribe = r(get.clone(), "/v1/events/{ns}/{channel}", Read, None);
    subscribe.streams = true;
    vec![
        r(get.clone(), "/health", Public, None),
        r(get.clone(), "/ready", Public, None),
        r(get.clone(), "/openapi.json", Public, None),
        r(get.clone(), "/metrics", Admin, None),
        r(get.clone(), "/v1/stats", Any, None),
        r(get.clone(), "/v1/admin/doctor", Admin, None),
        r(get.clone(), "/v1/cache/{ns}", Read, None),
        r(delete.clone(), "/v1/cache/{ns}", Write, None),
        r(get.clone(), "/v1/cache/{ns}/{key}", Read, None),
        r(head, "/v1/cache/{ns}/{key}", Read, None),
        r(put.clone(), "/v1/cache/{ns}/{key}", Write, Some("1")),
        r(delete.clone(), "/v1/cache/{ns}/{key}", Write, None),
        r(get.clone(), "/v1/cache/{ns}/{key}/_ttl", Read, None),
        r(
            put.clone(),
            "/v1/cache/{ns}/{key}/_ttl",
            Write,
            Some(r#"{"ttl_ms":1000}"#),
        ),
        r(
            post.clone(),
            "/v1/cache/{ns}/_mget",
            Read,
            Some(r#"{"keys":["k"]}"#),
        ),
        r(
            post.clone(),
            "/v1/cache/{ns}/_mset",
            Write,
            Some(r#"{"items":{"k":1}}"#),
        ),
        r(
            post.clone(),
            "/v1/cache/{ns}/_mdel",
            Write,
            Some(r#"{"keys":["k"]}"#),
        ),
        r(
            post.clone(),
            "/v1/cache/{ns}/_invalidate",
            Write,
            Some(r#"{"pattern":"k*"}"#),
        ),
        r(
            post.clone(),
            "/v1/ratelimit/{ns}/{key}",
            Write,
            Some(r#"{"limit":5,"period_ms":60000}"#),
        ),
        r(delete.clone(), "/v1/ratelimit/{ns}/{key}", Write, None),
        r(post.clone(), "/v1/cache/{ns}/{key}/_take", Write, None),
        r(
            post.clone(),
            "/v1/cache/{ns}/{key}/_incr",
            Write,
            Some(r#"{"by":1}"#),
        ),
        r(
            post.clone(),
            "/v1/locks/{ns}/{name}",
            Write,
            Some(r#"{"ttl_ms":1000}"#),
        ),
        with_query(
            r(delete.clone(), "/v1/locks/{ns}/{name}", Write, None),
            "token=t",
        ),
        r(
            post.clone(),
            "/v1/locks/{ns}/{name}/_extend",
            Write,
            Some(r#"{"token":"t","ttl_ms":1000}"#),
        ),
        r(
            post.clone(),
            "/v1/sessions/{ns}",
            Write,
            Some(r#"{"data":1}"#),
        ),
        with_query(r(get.clone(), "/v1/sessions/{ns}", Write, None), "user=u"),
        with_query(
            r(delete.clone(), "/v1/sessions/{ns}", Write, None),
            "user=u",
        ),
        r(get.clone(), "/v1/sessions/{ns}/{id}", Write, None),
        r(
            put.clone(),
            "/v1/sessions/{ns}/{id}",
            Write,
            Some(r#"{"data":1}"#),
        ),
        r(
            patch,
            "/v1/sessions/{ns}/{id}",
            Write,
            Some(r#"{"data":1}"#),
        ),
        r(delete.clone(), "/v1/sessions/{ns}/{id}", Write, None),
        r(post.clone(), "/v1/sessions/{ns}/{id}/_rotate", Write, None),
        subscribe,
        r(post.clone(), "/v1/events/{ns}/{channel}", Write, Some("1")),
        r(get.clone(), "/v1/events/{ns}/{channel}/_since", Read, None),
        r(post.clone(), "/v1/queues/{ns}/{queue}", Write, Some("1")),
        r(
            post.clone(),
            "/v1/queues/{ns}/{queue}/_claim",
            Write,
            Some(r#"{"consumer":"w"}"#),
        ),
        r(
            post.clone(),
            "/v1/queues/{ns}/{queue}/_ack",
            Write,
            Some(r#"{"ids":["1-0"]}"#),
        ),
        r(get.clone(), "/v1/queues/{ns}/{queue}/_dead", Read, None),
        r(get.clone(), "/v1/queues/{ns}/{queue}/_stats", Read, None),
        r(
            post.clone(),
            "/v1/queues/{ns}/{queue}/_dead/{id}/_requeue",
            Write,
            None,
        ),
        r(
            delete.clone(),
            "/v1/queues/{ns}/{queue}/_dead/{id}",
            Write,
            None,
        ),
        r(get.clone(), "/v1/presence/{ns}", Read, None),
        r(put.clone(), "/v1/presence/{ns}/{member}", Write, None),
        r(delete.clone(), "/v1/presence/{ns}/{member}", Write, None),
        r(
            post.clone(),
            "/v1/dashboard/login",
            Login,
            Some(r#"{"token":"sc_x"}"#),
        ),
        r(post.clone(), "/v1/dashboard/logout", Public, None),
        r(get.clone(), "/v1/dashboard/me", Any, None),
        r(get.clone(), "/v1/admin/audit", Admin, None),
        r(get.clone(), "/v1/admin/monitor", Admin, None),
        r(get.clone(), "/v1/admin/redis", Admin, None),
        r(get.clone(), "/v1/dashboard/tree/{ns}", Read, None),
        r(get.clone(), "/v1/dashboard/key/{ns}/{key}", Read, None),
        r(
            put.clone(),
            "/v1/dashboard/key/{ns}/{key}",
            Write,
            Some("1"),
        ),
        r(delete.clone(), "/v1/dashboard/key/{ns}/{key}", Write, None),
        r(
            post.clone(),
            "/v1/dashboard/match/{ns}",
            Read,
            Some(r#"{"pattern":"k*"}"#),
        ),
        r(
            post,
            "/v1/dashboard/delete/{ns}",
            Write,
            Some(r#"{"pattern":"k*","confirm":true}"#),
        ),
        r(get.clone(), "/v1/dashboard/locks/{ns}", Read, None),
        r(get.clone(), "/v1/dashboard/presence/{ns}", Read, None),
        r(get.clone(), "/v1/dashboard/sessions/{ns}", Read, None),
        r(
            get.clone(),
            "/v1/dashboard/sessions/{ns}/{user}",
            Read,
            None,
        ),
        r(
            delete.clone(),
            "/v1/dashboard/sessions/{ns}/{user}",
            Write,
            None,
        ),
        r(
            delete.clone(),
            "/v1/dashboard/sessions/{ns}/{user}/{handle}",
            Write,
            None,
        ),
        r(get.clone(), "/v1/dashboard/queues/{ns}", Read, None),
    ]
}
