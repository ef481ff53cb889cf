//! Test apps: the real router over a memory, Redis or Redis Cluster backend, with an
//! admin and three service credentials, driven with `oneshot` or over a real socket;
//! [`on_every_backend!`] to run a behaviour test on each backend; the route table
//! ([`routes`]) and the store snapshots ([`store`]) the isolation and bad-input checks
//! share; a real `sharecache serve` process ([`serve`]); the binary's other commands run
//! to their end, with their JSON report ([`cli`]).
#![allow(dead_code, unreachable_pub)]

pub mod acl;
pub mod cli;
pub mod node;
pub mod routes;
pub mod serve;
pub mod store;

/// Runs each named `async fn(Backend)` as one test on the memory backend and one on a
/// real Redis, and all of them in turn on one 6-node Redis Cluster (started once per
/// test binary, emptied between cases). `@local` skips the cluster, for tests whose
/// checks read a single redis-server below the API.
///
/// Use it after `#[macro_use] mod support;` and `use support::Backend;`.
#[macro_export]
macro_rules! on_every_backend {
    (@local $($name:ident),* $(,)?) => {
        mod memory { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Memory).await; })* }
        mod redis { $(#[tokio::test] async fn $name() { super::$name(super::Backend::Redis).await; })* }
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_every_backend!(@local $($name),*);
        /// Every case on one Redis Cluster, emptied between cases.
        mod cluster {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_case() {
                let cluster = tokio::task::spawn_blocking(sharecache_testkit::RedisCluster::start)
                    .await
                    .unwrap();
                let url: &'static str = Box::leak(cluster.url().into_boxed_str());
                $(
                    for m in cluster.masters() {
                        m.cmd(&["FLUSHALL"]);
                    }
                    super::$name(super::Backend::Cluster(url)).await;
                )*
            }
        }
    };
}

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use sharecache::Cache;
use sharecache_server::auth::{hash_token, new_token};
use sharecache_server::config::Config;
use sharecache_server::http::{AppState, router};
use sharecache_server::serve::{app_state, open_cache};
use sharecache_testkit::RedisServer;
use tower::ServiceExt;

/// Which backend a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    /// A running Redis Cluster (its URL); the caller owns the cluster and empties it
    /// between apps.
    Cluster(&'static str),
    /// A Redis URL the caller owns: a server started with its own settings, or a port
    /// nobody listens on.
    Url(&'static str),
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub cache: Cache,
    pub admin: String,
    /// `auth`: write auth, read shared.
    pub auth: String,
    /// `user`: write user and shared.
    pub user: String,
    /// `a`: write namespace `a` only (a prefix of `ab`).
    pub a: String,
    /// `ops`: a viewer (reads every namespace, changes nothing).
    pub viewer: String,
    pub server: Option<RedisServer>,
    /// State directory (generated session key), removed on drop.
    pub state_dir: tempfile::TempDir,
}

/// The response of one request.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.text()))
            .to_owned()
    }
}

pub fn config_text(extra_server: &str, admin: &str, auth: &str, user: &str, a: &str) -> String {
    let h = |t: &str| hex::encode(hash_token(t));
    format!(
        "[server]\n{extra_server}\n[admin]\ntoken_sha256 = \"{}\"\n\
         [[services]]\nname = \"auth\"\ntoken_sha256 = \"{}\"\nread = [\"shared\"]\nwrite = [\"auth\"]\n\
         [[services]]\nname = \"user\"\ntoken_sha256 = \"{}\"\nwrite = [\"user\", \"shared\"]\n\
         [[services]]\nname = \"a\"\ntoken_sha256 = \"{}\"\nwrite = [\"a\"]\n",
        h(admin),
        h(auth),
        h(user),
        h(a)
    )
}

impl TestApp {
    pub async fn new(backend: Backend) -> Self {
        Self::with_server_config(backend, "max_body_bytes = 65536\nmax_batch = 100").await
    }

    pub async fn with_server_config(backend: Backend, extra_server: &str) -> Self {
        let (admin, auth, user, a) = (new_token(), new_token(), new_token(), new_token());
        let viewer = new_token();
        let text = format!(
            "{}[[viewers]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\n",
            config_text(extra_server, &admin, &auth, &user, &a),
            hex::encode(hash_token(&viewer))
        );
        let mut cfg = Config::parse("test.toml", &text).unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        cfg.server.state_dir = state_dir.path().to_owned();
        let server = match backend {
            Backend::Memory => None,
            Backend::Redis => {
                let s = RedisServer::start();
                cfg.backend.url = s.url();
                cfg.backend.command_timeout_ms = 300;
                cfg.backend.connect_timeout_ms = 300;
                Some(s)
            }
            Backend::Cluster(url) | Backend::Url(url) => {
                let ms = if matches!(backend, Backend::Cluster(_)) {
                    1000
                } else {
                    300
                };
                cfg.backend.url = url.to_owned();
                cfg.backend.command_timeout_ms = ms;
                cfg.backend.connect_timeout_ms = ms;
                None
            }
        };
        let cache = open_cache(&cfg).await.unwrap();
        let state = app_state(&cfg, cache.clone(), hash_token(&admin));
        Self {
            router: router(state.clone()),
            state,
            cache,
            admin,
            auth,
            user,
            a,
            viewer,
            server,
            state_dir,
        }
    }

    /// One request through the router (no socket).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Resp {
        self.call_bytes(method, uri, token, body.map(|b| b.as_bytes().to_vec()))
            .await
    }

    pub async fn call_bytes(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(body) => b
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// One request with extra headers (a `content-type` among them replaces the JSON
    /// default of a request with a body).
    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(h, _)| h.eq_ignore_ascii_case("content-type"))
        {
            b = b.header("content-type", "application/json");
        }
        for (h, v) in headers {
            b = b.header(*h, *v);
        }
        let body = body.map_or_else(Body::empty, Body::from);
        self.send(b.body(body).unwrap()).await
    }

    /// Any request through the router (no socket).
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Serves the router on a free loopback port; returns its address.
    pub async fn spawn(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self
            .router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        addr
    }
}

/// A reqwest client with a short timeout for socket tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Percent-encodes every byte that is not unreserved, so any key fits in one path segment.
pub fn enc(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
