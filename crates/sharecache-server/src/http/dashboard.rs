//! The web dashboard: one static page, its script and its style, compiled into the
//! binary. The page holds nothing secret: it logs in once with a token (`login.rs`) and
//! then calls the API with the session cookie, so every figure it shows and every change
//! it makes is authorized exactly as the API's (`browse.rs` for the key browser). A strict Content-Security-Policy allows only this
//! origin's script and style, and the script inserts server data as text, never HTML.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    asset(
        include_str!("dashboard/index.html"),
        "text/html; charset=utf-8",
    )
}

/// `GET /dashboard.js`
pub async fn script() -> Response {
    asset(
        include_str!("dashboard/dashboard.js"),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /dashboard.css`
pub async fn style() -> Response {
    asset(
        include_str!("dashboard/dashboard.css"),
        "text/css; charset=utf-8",
    )
}

/// `GET /vendor/uplot.js`: uPlot 1.6.32 (MIT, `dashboard/vendor/uPlot.LICENSE`), the
/// charting library, compiled in so the page needs no network. tests/dashboard.rs checks
/// it is byte for byte the version locked in tests/node/package-lock.json.
pub async fn uplot_script() -> Response {
    asset(
        include_str!("dashboard/vendor/uPlot.iife.min.js"),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /vendor/uplot.css`
pub async fn uplot_style() -> Response {
    asset(
        include_str!("dashboard/vendor/uPlot.min.css"),
        "text/css; charset=utf-8",
    )
}
