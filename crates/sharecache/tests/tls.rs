//! `rediss://` against a real redis-server serving TLS, with a certificate from a CA the
//! process trusts through `SSL_CERT_FILE` (how a private CA is trusted: redis-rs reads the
//! platform's roots). Before the rustls provider was installed, any `rediss://` URL
//! panicked at connect. The client half runs in a child test process, so that
//! `SSL_CERT_FILE` is set for it from its start.

use std::path::Path;
use std::process::Command;

use sharecache::{Cache, Fallback, Ttl};
use sharecache_testkit::{RedisConfig, RedisServer, free_port};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a leaf for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            ][..],
            &["-out", "ca.pem", "-subj", "/CN=sharecache test CA"],
            &days,
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("leaf.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            &[
                "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            ][..],
            &[
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-extfile",
                "leaf.ext",
            ],
            &days,
        ]
        .concat(),
    );
}

#[test]
fn rediss_urls_connect_and_refuse_what_they_cannot_verify() {
    let dir = std::env::temp_dir().join(format!("sharecache-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let tls_port = free_port().to_string();
    let server = RedisServer::start_with(RedisConfig::args(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &file("leaf.pem"),
        "--tls-key-file",
        &file("leaf.key"),
        "--tls-ca-cert-file",
        &file("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]));
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "client_half", "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", file("ca.pem"))
        .env("TLS_PORT", &tls_port)
        .env("PLAIN_PORT", server.port().to_string())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && printed.contains("1 passed"),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The value is in Redis, read over the plain port.
    assert_eq!(
        server
            .cmd(&["GET", "auth:k"])
            .text()
            .map(|v| v.contains("over tls")),
        Some(true)
    );
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run by the test above, in a child process with `SSL_CERT_FILE` set.
#[tokio::test]
#[ignore = "run by rediss_urls_connect_and_refuse_what_they_cannot_verify"]
async fn client_half() {
    let port = |name: &str| std::env::var(name).expect("run by the parent test");
    let cache = Cache::builder()
        .redis(format!("rediss://127.0.0.1:{}", port("TLS_PORT")))
        .fallback(Fallback::Fail)
        .build()
        .await
        .expect("a rediss:// URL to a server with a trusted certificate connects");
    let ns = cache.namespace("auth").unwrap();
    ns.set("k", &"over tls", Ttl::NEVER).await.unwrap();
    assert_eq!(
        ns.get::<String>("k").await.unwrap().as_deref(),
        Some("over tls")
    );
    // TLS to a port that speaks plain RESP: a clear error, no panic, no hang.
    let e = Cache::builder()
        .redis(format!("rediss://127.0.0.1:{}", port("PLAIN_PORT")))
        .fallback(Fallback::Fail)
        .build()
        .await
        .expect_err("plain RESP is not TLS");
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
}
