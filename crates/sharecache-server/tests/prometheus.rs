//! The alert rules and the Grafana dashboard against the real thing: `promtool check
//! rules` and `promtool test rules` on deploy/prometheus (a firing unit test per rule);
//! a real Prometheus (Debian's package; scripts/test installs it) scraping a real
//! `sharecache serve` with the admin token, on a real redis-server, that loads the rules,
//! evaluates them without error, and finds data for every series each alert compares;
//! every metric the dashboard's expressions name is one `/metrics` serves, and
//! `promtool check metrics` finds nothing to say about the names; and the figures the
//! alerts read (backend up, fallback and its budget, L1 link, evictions, SSE, failed
//! authentications) follow what the service does.
//!
//! Every process is killed by its pid when its guard drops, and every wait is bounded.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::serve::{Served, serve};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const PROMTOOL: &str = "promtool";
const PROMETHEUS: &str = "prometheus";

fn rules_dir() -> String {
    format!("{ROOT}/deploy/prometheus")
}

/// Runs a command to completion within `limit`; kills it (by its pid) past that.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{what}: {e} (scripts/test installs Debian's prometheus package)")
        });
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_success(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The alert names of alerts.yml, in order.
fn alert_names() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{}/alerts.yml", rules_dir())).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let dir = rules_dir();
    let out = run_bounded(
        Command::new(PROMTOOL)
            .args(["check", "rules", "alerts.yml"])
            .current_dir(&dir),
        Duration::from_secs(60),
    );
    let said = assert_success(&out, "promtool check rules");
    let names = alert_names();
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{said}"
    );
    let out = run_bounded(
        Command::new(PROMTOOL)
            .args(["test", "rules", "alerts.test.yml"])
            .current_dir(&dir),
        Duration::from_secs(120),
    );
    assert_success(&out, "promtool test rules");

    // Each rule has a case where it fires: an `alertname:` followed by a non-empty
    // `exp_alerts:` list.
    let tests = std::fs::read_to_string(format!("{dir}/alerts.test.yml")).unwrap();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let fired: BTreeSet<&str> = lines
        .windows(2)
        .filter(|w| w[1] == "exp_alerts:")
        .filter_map(|w| w[0].strip_prefix("alertname:").map(str::trim))
        .collect();
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !fired.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a firing unit test: {missing:?}"
    );
    let unknown: Vec<_> = fired
        .iter()
        .filter(|n| !names.iter().any(|m| m == *n))
        .collect();
    assert!(
        unknown.is_empty(),
        "tests of rules alerts.yml lacks: {unknown:?}"
    );
}

/// Requests that make every family of `/metrics` have series: hits and misses of a
/// namespace, writes, a refused token.
async fn traffic(s: &Served) {
    let c = support::client();
    let url = &s.url;
    let put = c
        .put(format!("{url}/v1/cache/user/seen"))
        .bearer_auth(&s.user)
        .header("content-type", "application/json")
        .body("1")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    for key in ["seen", "seen", "unseen"] {
        let r = c
            .get(format!("{url}/v1/cache/user/{key}"))
            .bearer_auth(&s.user)
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 200 | 404), "{}", r.status());
    }
    let r = c
        .get(format!("{url}/v1/cache/user/seen"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// The `/metrics` text of a served process (with the admin token).
async fn metrics_text(s: &Served) -> String {
    support::client()
        .get(format!("{}/metrics", s.url))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The sample names `/metrics` serves (`_bucket`, `_sum`, `_count`, `_total` included).
async fn served_names(s: &Served) -> BTreeSet<String> {
    metrics_text(s)
        .await
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// Every PromQL text of the Grafana dashboard: the panels' `expr`s and the template
/// variables' queries (`label_values(...)`).
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &serde_json::Value, key: Option<&str>, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(v, Some(k), out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, key, out)),
            serde_json::Value::String(s) if matches!(key, Some("expr" | "definition")) => {
                out.push(s.clone());
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/grafana/sharecache.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    walk(&dash, None, &mut out);
    out
}

/// The `sharecache_*` metric names a PromQL text mentions.
fn metric_names(expr: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sharecache_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

/// A dashboard expression with Grafana's variables replaced, for Prometheus.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
        .replace("$namespace", ".*")
}

#[tokio::test]
async fn every_dashboard_expression_names_a_metric_the_service_serves() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let s = tokio::task::spawn_blocking(serve).await.unwrap();
    traffic(&s).await;
    let served = served_names(&s).await;
    let mut unknown = BTreeSet::new();
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "names no sharecache metric: {q}");
        unknown.extend(names.into_iter().filter(|n| !served.contains(*n)));
    }
    // And the names follow Prometheus's conventions, as `promtool check metrics` lints
    // them (units in names, `_total` counters...).
    let text = metrics_text(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, &text).unwrap();
    let out = run_bounded(
        Command::new("sh")
            .arg("-c")
            .arg(format!("{PROMTOOL} check metrics < '{}'", path.display())),
        Duration::from_secs(60),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool reads the classic text format, where a counter's HELP names its sample
    // (`x_total`); OpenMetrics names the family (`x`). That difference is no problem.
    let problems: Vec<&str> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let family = l
                .strip_suffix(" no help text")
                .and_then(|n| n.strip_suffix("_total"));
            !family.is_some_and(|f| text.contains(&format!("# HELP {f} ")))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "promtool check metrics: {problems:#?}\n{text}"
    );
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics /metrics does not serve: {unknown:?}\nserved: {served:?}"
    );
}

/// A Prometheus process, killed by its pid on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second with the bearer token (from a 0600 file, as a
    /// deployment would keep it), evaluates alerts.yml every second; waits at most 60 s
    /// until it is ready.
    async fn start(target: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("sharecache.token");
        std::fs::write(&token_file, token).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(
            &token_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}/alerts.yml\n\
                 scrape_configs:\n  - job_name: sharecache\n    \
                 authorization:\n      type: Bearer\n      credentials_file: {token}\n    \
                 static_configs:\n      - targets: ['{target}']\n",
                rules = Path::new(&rules_dir()).canonicalize().unwrap().display(),
                token = token_file.display(),
            ),
        )
        .unwrap();
        let port = sharecache_testkit::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start prometheus: {e} (scripts/test installs Debian's prometheus package)")
            });
        let p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        p.wait_for("ready", Duration::from_secs(60), || async {
            support::client()
                .get(format!("{}/-/ready", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `ok` every 200 ms until it holds; panics with Prometheus's log past `limit`.
    async fn wait_for<F, Fut>(&self, what: &str, limit: Duration, mut ok: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        while !ok().await {
            assert!(
                Instant::now() < deadline,
                "prometheus: {what} not within {limit:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET /api/v1/<path>` with query parameters; the `data` of a successful answer.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", support::enc(v)))
            .collect();
        let r: serde_json::Value = support::client()
            .get(format!("{}/api/v1/{path}?{}", self.url, qs.join("&")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], "success", "{path} {query:?}: {r}");
        r["data"].clone()
    }

    /// The instant vector (or scalar) of a PromQL query.
    async fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let data = self.api("query", &[("query", q)]).await;
        match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().unwrap().clone(),
            Some("scalar") => vec![data["result"].clone()],
            other => panic!("{q}: result type {other:?}: {data}"),
        }
    }
}

/// An expression with its threshold comparisons (`> 0.01`, `== 0`...) removed: what it
/// compares, which must exist for the alert to be able to fire.
fn without_thresholds(expr: &str) -> String {
    let mut out = String::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &expr[i..];
        let op = ["==", "!=", ">=", "<=", ">", "<"]
            .into_iter()
            .find(|op| rest.starts_with(op));
        if let Some(op) = op {
            let after = rest[op.len()..].trim_start();
            let after = after.strip_prefix("bool ").unwrap_or(after).trim_start();
            let num: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '-' | '+'))
                .collect();
            if !num.is_empty() && num.parse::<f64>().is_ok() {
                while out.ends_with(' ') {
                    out.pop();
                }
                i = expr.len() - after.len() + num.len();
                continue;
            }
        }
        let ch = rest.chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[test]
fn thresholds_are_removed_and_selectors_kept() {
    assert_eq!(
        without_thresholds(r#"a{x=~"5..", y!="1"} / (b > 0) > 0.8"#),
        r#"a{x=~"5..", y!="1"} / (b)"#
    );
    assert_eq!(without_thresholds("up == 0"), "up");
    assert_eq!(
        without_thresholds("histogram_quantile(0.99, x) > 1e-02 and y < 5"),
        "histogram_quantile(0.99, x) and y"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_service_and_every_alert_has_data() {
    let s = tokio::task::spawn_blocking(serve).await.unwrap();
    traffic(&s).await;
    let target = s.url.trim_start_matches("http://").to_owned();
    let p = Prometheus::start(&target, &s.admin).await;

    // Scraped with the admin token: the target is up, and has been scraped a few times
    // (rate() needs two samples).
    p.wait_for(
        "three scrapes of the service",
        Duration::from_secs(60),
        || async {
            p.query(r#"count_over_time(sharecache_backend_up{job="sharecache"}[5m]) >= 3"#)
                .await
                .len()
                == 1
        },
    )
    .await;
    let up = p.query(r#"up{job="sharecache"}"#).await;
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    // More traffic between scrapes, so rates are not all zero.
    traffic(&s).await;

    // The rules Prometheus loaded are alerts.yml's, and each has been evaluated without
    // error.
    let names = alert_names();
    let rules = || async {
        let data = p.api("rules", &[("type", "alert")]).await;
        data["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect::<Vec<_>>()
    };
    p.wait_for("every rule evaluated", Duration::from_secs(30), || async {
        let r = rules().await;
        r.len() == names.len() && r.iter().all(|r| r["health"] != "unknown")
    })
    .await;
    let loaded = rules().await;
    let loaded_names: Vec<&str> = loaded.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(loaded_names, names, "the rules Prometheus loaded");
    for r in &loaded {
        assert_eq!(r["health"], "ok", "{} did not evaluate: {r}", r["name"]);
    }

    // Every alert's expression runs, and what it compares has data from the service.
    let mut empty = Vec::new();
    for r in &loaded {
        let expr = r["query"].as_str().unwrap();
        p.query(expr).await;
        let signal = without_thresholds(expr);
        if p.query(&signal).await.is_empty() {
            empty.push(format!("{}: {signal}", r["name"]));
        }
    }
    // The dashboard's expressions are valid PromQL (`api` asserts success).
    for q in dashboard_queries()
        .iter()
        .filter(|q| !q.starts_with("label_values"))
    {
        p.query(&grafana_to_promql(q)).await;
    }
    assert!(
        empty.is_empty(),
        "alert expressions without data from a scraped service:\n{}\nserved: {:?}",
        empty.join("\n"),
        served_names(&s).await
    );
}

/// The value of one series in a `/metrics` text (`name` or `name{labels}` as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

async fn metrics_of(app: &support::TestApp) -> String {
    let r = app
        .call(
            axum::http::Method::GET,
            "/metrics",
            Some(app.admin.as_str()),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The figures the alerts read follow what happens: the backend is up and no fallback
/// runs, L1's link is up, an open SSE stream is counted until it drops, a refused
/// token is counted; with Redis unreachable, the backend is down and the fallback (with
/// its budget) in use; without a tier, no L1 link is reported down.
#[tokio::test]
async fn the_alerts_figures_follow_the_service() {
    use support::{Backend, TestApp};
    use tower::ServiceExt;

    let app = TestApp::new(Backend::Redis).await;
    // The tier's invalidation link comes up in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = metrics_of(&app).await;
        if value(&m, "sharecache_l1_link_up") == Some(1.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "L1 link not up:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(value(&m, "sharecache_backend_up"), Some(1.0), "{m}");
    assert_eq!(value(&m, "sharecache_fallback_in_use"), Some(0.0), "{m}");
    assert_eq!(value(&m, "sharecache_memory_store_bytes"), Some(0.0), "{m}");
    assert!(
        value(&m, "sharecache_backend_memory_bytes").unwrap() > 0.0,
        "{m}"
    );
    assert_eq!(value(&m, "sharecache_sse_subscribers"), Some(0.0), "{m}");
    let failures = value(&m, "sharecache_auth_failures_total").unwrap();

    let req = axum::http::Request::get("/v1/events/user/news")
        .header("authorization", format!("Bearer {}", app.user))
        .body(axum::body::Body::empty())
        .unwrap();
    let stream = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(stream.status(), 200);
    let m = metrics_of(&app).await;
    assert_eq!(value(&m, "sharecache_sse_subscribers"), Some(1.0), "{m}");
    drop(stream);
    assert_eq!(
        value(&metrics_of(&app).await, "sharecache_sse_subscribers"),
        Some(0.0)
    );

    let r = app
        .call(
            axum::http::Method::GET,
            "/v1/cache/user/k",
            Some("wrong"),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    let m = metrics_of(&app).await;
    assert_eq!(
        value(&m, "sharecache_auth_failures_total"),
        Some(failures + 1.0),
        "{m}"
    );

    // Nobody listens on this port: Redis unreachable, the memory fallback answers.
    let url: &'static str = Box::leak(
        format!("redis://127.0.0.1:{}", sharecache_testkit::free_port()).into_boxed_str(),
    );
    let down = TestApp::new(Backend::Url(url)).await;
    let r = down
        .call(
            axum::http::Method::PUT,
            "/v1/cache/user/k",
            Some(down.user.as_str()),
            Some("1"),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let m = metrics_of(&down).await;
    assert_eq!(value(&m, "sharecache_backend_up"), Some(0.0), "{m}");
    assert_eq!(value(&m, "sharecache_fallback_in_use"), Some(1.0), "{m}");
    assert!(
        value(&m, "sharecache_memory_store_bytes").unwrap() > 0.0,
        "{m}"
    );
    assert_eq!(
        value(&m, "sharecache_memory_store_budget_bytes"),
        Some((256u64 << 20) as f64),
        "{m}"
    );

    // The embedded memory store has no tier: no L1 figures at all.
    let memory = TestApp::new(Backend::Memory).await;
    let m = metrics_of(&memory).await;
    assert!(!m.contains("sharecache_l1_"), "{m}");
    assert_eq!(value(&m, "sharecache_backend_up"), Some(1.0), "{m}");
}

/// Keys Redis evicts for space are counted in `sharecache_backend_evictions_total`, the
/// counter `SharecacheEvictions` watches.
#[tokio::test]
async fn redis_evictions_are_counted() {
    use sharecache_testkit::{RedisConfig, RedisServer};
    use support::{Backend, TestApp};

    let server = RedisServer::start_with(RedisConfig::args(&[
        "--maxmemory",
        "4mb",
        "--maxmemory-policy",
        "allkeys-lru",
    ]));
    let url: &'static str = Box::leak(server.url().into_boxed_str());
    let app = TestApp::new(Backend::Url(url)).await;
    let before = value(
        &metrics_of(&app).await,
        "sharecache_backend_evictions_total",
    )
    .unwrap();
    let big = format!("\"{}\"", "x".repeat(4000));
    for i in 0..3000 {
        let r = app
            .call(
                axum::http::Method::PUT,
                &format!("/v1/cache/user/k{i}"),
                Some(app.user.as_str()),
                Some(&big),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    let m = metrics_of(&app).await;
    let after = value(&m, "sharecache_backend_evictions_total").unwrap();
    assert!(
        after > before,
        "no evictions counted: {before} -> {after}\n{m}"
    );
    assert!(
        value(&m, "sharecache_backend_keys").unwrap() < 3000.0,
        "{m}"
    );
}

/// An SSE subscriber that falls more than `[server] sse_buffer_bytes` behind is dropped:
/// it gets one last `dropped` event saying how far behind it was, its stream ends, and
/// `sharecache_sse_subscribers_dropped_total` and `sharecache_sse_events_dropped_total`
/// count it (`SharecacheSseSubscribersDropped`). Its unread events are not kept.
#[tokio::test]
async fn events_a_slow_sse_subscriber_is_dropped_and_counted() {
    use http_body_util::BodyExt;
    use support::{Backend, TestApp};
    use tower::ServiceExt;

    let app = TestApp::with_server_config(Backend::Memory, "sse_buffer_bytes = 1048576").await;
    let t = Some(app.user.as_str());
    let req = axum::http::Request::get("/v1/events/user/firehose")
        .header("authorization", format!("Bearer {}", app.user))
        .body(axum::body::Body::empty())
        .unwrap();
    let mut body = app.router.clone().oneshot(req).await.unwrap().into_body();
    // 30 events of 64 KB, none read: past the 1 MiB bound after 16 of them.
    let big = "x".repeat(64_000);
    let mut receivers = Vec::new();
    for i in 0..30 {
        let r = app
            .call(
                axum::http::Method::POST,
                "/v1/events/user/firehose",
                t,
                Some(&format!("{{\"n\":{i},\"pad\":\"{big}\"}}")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        receivers.push(r.json()["receivers"].as_u64().unwrap());
    }
    let queued = receivers.iter().filter(|n| **n == 1).count();
    assert!(
        (15..=16).contains(&queued) && receivers[queued..].iter().all(|n| *n == 0),
        "queued until the bound, then dropped: {receivers:?}"
    );
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("a frame within 10 s")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(text.starts_with("event: dropped\n"), "{text:?}");
    let data: serde_json::Value =
        serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["reason"], "slow_subscriber", "{data}");
    assert_eq!(data["unread_events"], queued, "{data}");
    assert!(data["unread_bytes"].as_u64().unwrap() > 960_000, "{data}");
    let end = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "nothing after the dropped event");
    drop(body);
    let m = metrics_of(&app).await;
    assert_eq!(
        value(&m, "sharecache_sse_subscribers_dropped_total"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "sharecache_sse_events_dropped_total"),
        Some(queued as f64),
        "{m}"
    );
    assert_eq!(value(&m, "sharecache_sse_subscribers"), Some(0.0), "{m}");
}
