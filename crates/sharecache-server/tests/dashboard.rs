//! The dashboard in a real headless Chromium: it shows the backend and per-namespace
//! figures with the admin token, lists keys as text (a key holding markup stays text),
//! and says so when the token is refused.
//!
//! Needs `chromium` (Debian's package; `scripts/test` installs it). A screenshot of each
//! run is written to `target/dashboard.png` for a person to look at.

mod support;

use std::process::Command;

use axum::http::Method;
use support::{Backend, TestApp, enc};

const HOSTILE_KEY: &str = "<img src=x onerror=alert(1)>";

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!(
        "chromium was not found. Install it with:\n    sudo apt-get install -y chromium\n(or run scripts/test, which installs it)"
    );
}

/// Loads `url` in headless Chromium, lets the page's scripts run, returns the DOM.
fn render(url: &str, screenshot: Option<&std::path::Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,800",
        "--virtual-time-budget=5000",
    ];
    let mut cmd = Command::new(chromium());
    cmd.args(base)
        .arg(format!("--user-data-dir={}", profile.path().display()));
    if let Some(p) = screenshot {
        let mut shot = Command::new(chromium());
        shot.args(base)
            .arg(format!("--user-data-dir={}", profile.path().display()));
        shot.arg(format!("--screenshot={}", p.display())).arg(url);
        let _ = shot.output();
    }
    let out = cmd
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_namespaces_and_keys_as_text() {
    let app = TestApp::new(Backend::Memory).await;
    let addr = app.spawn().await;
    let t = Some(app.user.as_str());
    for k in ["profile:1", "profile:2", HOSTILE_KEY] {
        app.call(
            Method::PUT,
            &format!("/v1/cache/user/{}", enc(k)),
            t,
            Some("{\"a\":1}"),
        )
        .await;
    }
    app.call(
        Method::PUT,
        "/v1/cache/auth/session",
        Some(&app.auth),
        Some("1"),
    )
    .await;
    app.call(Method::GET, "/v1/cache/user/profile%3A1", t, None)
        .await;
    app.call(Method::GET, "/v1/cache/user/nope", t, None).await;

    let url = format!("http://{addr}/#token={}&ns=user", app.admin);
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard.png");
    let dom = tokio::task::spawn_blocking(move || render(&url, Some(&shot)))
        .await
        .unwrap();

    assert!(
        dom.contains("backend: memory"),
        "backend state missing:\n{dom}"
    );
    assert!(
        dom.contains(r#"<tr data-ns="user">"#),
        "user row missing:\n{dom}"
    );
    assert!(
        dom.contains(r#"<tr data-ns="auth">"#),
        "auth row missing:\n{dom}"
    );
    assert!(
        dom.contains(r#"<div id="total-keys" class="value">4</div>"#),
        "total keys:\n{dom}"
    );
    // user: 3 keys, 1 hit and 1 miss -> 50.0%.
    assert!(dom.contains("<td>50.0%</td>"), "hit ratio:\n{dom}");
    // The key browser lists the keys as text; markup in a key never becomes an element.
    assert!(
        dom.contains("<li>profile:1</li>") && dom.contains("<li>profile:2</li>"),
        "keys:\n{dom}"
    );
    assert!(
        dom.contains("<li>&lt;img src=x onerror=alert(1)&gt;</li>"),
        "hostile key not shown as text:\n{dom}"
    );
    assert!(!dom.contains("<img"), "a key was rendered as HTML:\n{dom}");
    // The token never stays in the address bar or the page.
    assert!(!dom.contains(&app.admin), "the token leaked into the DOM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_reports_a_refused_token_and_shows_no_data() {
    let app = TestApp::new(Backend::Memory).await;
    let addr = app.spawn().await;
    app.call(
        Method::PUT,
        "/v1/cache/user/secret",
        Some(&app.user),
        Some("1"),
    )
    .await;
    let url = format!("http://{addr}/#token=sc_wrong");
    let dom = tokio::task::spawn_blocking(move || render(&url, None))
        .await
        .unwrap();
    assert!(dom.contains("The token was refused"), "{dom}");
    assert!(
        !dom.contains("data-ns="),
        "no namespace may be shown:\n{dom}"
    );
}

#[tokio::test]
async fn dashboard_assets_carry_a_strict_content_security_policy() {
    let app = TestApp::new(Backend::Memory).await;
    for (path, ty) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let r = app.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.headers["content-type"].to_str().unwrap().starts_with(ty),
            "{path}"
        );
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }
}
