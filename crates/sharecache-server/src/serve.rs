//! `sharecache serve`: load the config, open the cache, serve the HTTP API until SIGTERM
//! or Ctrl-C, letting in-flight requests finish. SIGHUP reloads the credentials from the
//! config file (see [`reload_credentials`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sharecache::{Cache, Fallback, MemoryLimits};

use crate::auth::{Credentials, load_or_create_admin};
use crate::config::{Config, FallbackPolicy, Readiness};
use crate::http::{AppState, HttpOptions, router};

/// Arguments of `sharecache serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Config file (see sharecache.example.toml). Without one: embedded memory store,
    /// 127.0.0.1:7070, a generated admin token.
    #[arg(long, env = "SHARECACHE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides `[server] listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Refuse to start while the configured Redis is unreachable, instead of serving from
    /// process memory until it comes back.
    #[arg(long)]
    pub require_backend: bool,
}

/// Loads the config named by `args` and applies the environment and the CLI overrides.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    cfg.apply_env()?;
    if let Some(addr) = args.listen {
        cfg.server.listen = addr.to_string();
    }
    Ok(cfg)
}

/// Opens the cache described by the config.
pub async fn open_cache(cfg: &Config) -> anyhow::Result<Cache> {
    let b = &cfg.backend;
    let mut builder = Cache::builder()
        .url(&b.url)
        .fallback(match b.fallback {
            FallbackPolicy::Memory => Fallback::Memory,
            FallbackPolicy::Fail => Fallback::Fail,
        })
        .command_timeout(Duration::from_millis(b.command_timeout_ms))
        .connect_timeout(Duration::from_millis(b.connect_timeout_ms))
        .memory_limits(MemoryLimits {
            max_bytes: b.memory_max_bytes,
            max_entries: b.memory_max_entries,
        })
        .max_batch(cfg.server.max_batch)
        .format(cfg.values.format.format());
    for (ns, f) in &cfg.values.namespaces {
        builder = builder.namespace_format(ns, f.format());
    }
    if let Some(p) = &b.key_prefix {
        builder = builder.key_prefix(p);
    }
    builder = builder.subscriber_buffer(sharecache::events::SubscriberBuffer {
        max_bytes: cfg.server.sse_buffer_bytes,
        ..Default::default()
    });
    if let Some(n) = b.fallback_namespace_max_bytes {
        builder = builder.fallback_namespace_max_bytes(n);
    }
    if cfg.tier.enabled {
        let mut tier = sharecache::LocalTier::max_bytes(cfg.tier.max_bytes)
            .ttl_cap(Duration::from_secs(cfg.tier.ttl_cap_secs));
        for ns in &cfg.tier.disabled {
            tier = tier.disable(ns);
        }
        builder = builder.local_tier(tier);
    }
    builder = builder.session_keys(session_keys(cfg)?);
    builder.build().await.context("open the cache backend")
}

/// Session keys from the config, or one kept in the state directory (created at first
/// start, mode 0600).
pub fn session_keys(cfg: &Config) -> anyhow::Result<sharecache::session::SessionKeys> {
    let parse = |h: &str| -> anyhow::Result<[u8; 32]> {
        let mut k = [0u8; 32];
        hex::decode_to_slice(h.trim(), &mut k)
            .map_err(|e| anyhow::anyhow!("invalid session key: {e}"))?;
        Ok(k)
    };
    let keys: Vec<[u8; 32]> = if cfg.sessions.keys.is_empty() {
        let path = cfg.server.state_dir.join("session.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => vec![parse(&text).map_err(|e| {
                anyhow::anyhow!("{}: {e}; delete it to make a new key", path.display())
            })?],
            Err(_) => {
                std::fs::create_dir_all(&cfg.server.state_dir)?;
                let k = sharecache::session::SessionKeys::generate();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                std::io::Write::write_all(&mut opts.open(&path)?, hex::encode(k).as_bytes())?;
                vec![k]
            }
        }
    } else {
        cfg.sessions
            .keys
            .iter()
            .map(|h| parse(h))
            .collect::<anyhow::Result<_>>()?
    };
    Ok(sharecache::session::SessionKeys::new(&keys)?)
}

/// Builds the application state from a config (admin token handled by the caller).
pub fn app_state(cfg: &Config, cache: Cache, admin_hash: [u8; 32]) -> AppState {
    let creds = Credentials::new(cfg, admin_hash);
    let opts = HttpOptions {
        doctor_url: Some(&cfg.backend.url)
            .filter(|u| !u.starts_with("memory"))
            .and_then(|u| sharecache::RedisUrl::parse(u).ok()),
        max_body_bytes: cfg.server.max_body_bytes,
        max_batch: cfg.server.max_batch,
        metrics_public: cfg.server.metrics_public,
        auth_failures_per_minute: cfg.server.auth_failures_per_minute,
        lenient_readiness: cfg.server.readiness == Readiness::Lenient,
        body_timeout: Duration::from_millis(cfg.server.body_timeout_ms),
        sse_per_credential: cfg.server.sse_per_credential,
        memory_budget_bytes: if cfg.backend.url.starts_with("memory")
            || cfg.backend.fallback == FallbackPolicy::Memory
        {
            cfg.backend.memory_max_bytes
        } else {
            0
        },
    };
    AppState::new(
        cache,
        creds,
        opts,
        cfg.backend.fallback == FallbackPolicy::Memory,
    )
}

/// Runs the service until a shutdown signal.
pub fn run_blocking(args: ServeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(run(args))
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args)?;
    let admin_hash = match Credentials::configured_admin(&cfg) {
        Some(h) => h,
        None => {
            let (h, shown) = load_or_create_admin(&cfg.server.state_dir)?;
            if let Some(token) = shown {
                eprintln!(
                    "\n  No admin token was configured, so one was generated. It is shown this once;\n  \
                     only its SHA-256 is kept (in {}):\n\n      {token}\n\n  \
                     Use it as 'Authorization: Bearer <token>'. To replace it, set [admin] token_sha256\n  \
                     or delete that file and restart.\n",
                    cfg.server.state_dir.join("admin_token.sha256").display()
                );
            }
            h
        }
    };
    let cache = open_cache(&cfg).await?;
    if cache.state() == sharecache::BackendState::Degraded {
        let why = match cache.ping().await {
            Err(e) => e.to_string(),
            Ok(_) => "it did not answer at startup".to_owned(),
        };
        let url = sharecache::redact_url(&cfg.backend.url);
        if args.require_backend {
            anyhow::bail!(
                "Redis at {url} is unreachable ({why}); start it or fix [backend] url \
                 (--require-backend refuses to serve from process memory)"
            );
        }
        let meanwhile = match cfg.backend.fallback {
            FallbackPolicy::Memory => {
                "Serving from process memory, which other instances do not see, until it is \
                 back; /ready answers 503 meanwhile ([server] readiness = \"lenient\" takes \
                 traffic anyway)"
            }
            FallbackPolicy::Fail => {
                "Answering 503 until it is back ([backend] fallback = \"fail\")"
            }
        };
        eprintln!(
            "warning: Redis at {url} is unreachable ({why}).\n  {meanwhile}.\n  Fix [backend] \
             url, or pass --require-backend to refuse to start."
        );
    }
    if let Ok(sharecache::StoreStats {
        evicting_policy: Some(policy),
        ..
    }) = cache.stats().await
    {
        let warning = crate::http::ops::eviction_warning(&policy);
        tracing::warn!(policy = %policy, "{warning}");
        eprintln!("warning: {warning}.");
    }
    let state = app_state(&cfg, cache.clone(), admin_hash);
    crate::http::monitor::spawn_sampler(&state, crate::http::monitor::INTERVAL);
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(args.clone(), state.clone(), admin_hash));
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .with_context(|| {
            format!(
                "listen on {}; is another process using it? (--listen to pick another)",
                cfg.server.listen
            )
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = %cache.state(), services = cfg.services.len(), "sharecache serving");
    eprintln!(
        "sharecache listening on http://{addr}  (backend: {}; health: http://{addr}/health, API: http://{addr}/openapi.json)",
        cache.state()
    );
    serve_http(
        listener,
        router(state),
        Duration::from_millis(cfg.server.header_timeout_ms),
    )
    .await;
    tracing::info!("sharecache stopped");
    Ok(())
}

/// The credentials of the config named by `args` as it is now: `[[services]]`,
/// `[[viewers]]` and `[admin] token_sha256` (without one, `admin` stays: the hash the
/// process started with). The whole file is parsed and validated first, so a bad edit is
/// refused with the error and nothing changes.
pub fn reload_credentials(args: &ServeArgs, admin: [u8; 32]) -> anyhow::Result<Credentials> {
    anyhow::ensure!(
        args.config.is_some(),
        "started without --config (or SHARECACHE_CONFIG): there is no file to reload"
    );
    let cfg = load_config(args)?;
    let admin = Credentials::configured_admin(&cfg).unwrap_or(admin);
    Ok(Credentials::new(&cfg, admin))
}

/// On each SIGHUP, puts the config file's credentials in force without dropping a
/// connection; a config that does not load is refused, logged, and the running
/// credentials stay. Other settings take effect at the next start.
#[cfg(unix)]
async fn reload_on_hangup(args: ServeArgs, state: AppState, admin: [u8; 32]) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the credentials reload only on a restart");
        return;
    };
    while hangups.recv().await.is_some() {
        match reload_credentials(&args, admin) {
            Ok(creds) => {
                let (services, viewers) = creds.counts();
                state.replace_credentials(creds);
                tracing::info!(
                    services,
                    viewers,
                    "SIGHUP: reloaded the credentials ([[services]], [[viewers]], [admin] token_sha256); \
                     other settings take effect at the next start"
                );
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "SIGHUP: the config was refused; the running credentials stay in force"
            ),
        }
    }
}

/// How long shutdown waits for open connections (a live event stream never ends by
/// itself) before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 and HTTP/2 over cleartext (prior knowledge) on `listener` until a
/// shutdown signal, then lets in-flight requests finish (up to [`SHUTDOWN_GRACE`]).
/// Unlike `axum::serve`, a client gets `header_timeout` to send a request's headers, and
/// an idle keep-alive connection is closed after it; the body's own timeout is a layer
/// of the router (`[server] body_timeout_ms`).
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(header_timeout)
        .keep_alive_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the open
                    // connections and try again shortly.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
            });
        let conn = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "connections still open after the shutdown grace period (event streams?): closing them"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal: finishing in-flight requests");
}
