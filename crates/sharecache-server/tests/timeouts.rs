//! The HTTP server's timeouts, on a real `sharecache serve` over raw sockets: a client
//! that sends its headers slowly, sits idle on a keep-alive connection, or never finishes
//! its body is cut off after the configured time; a prompt one is served; h2c (prior
//! knowledge) is spoken on the same port.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::serve::{Served, serve_with};

const TIMEOUT: Duration = Duration::from_millis(600);
/// How much later than the timeout the server may act on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(4);

fn served() -> Served {
    serve_with("header_timeout_ms = 600\nbody_timeout_ms = 600")
}

fn connect(s: &Served) -> TcpStream {
    let addr = s.url.trim_start_matches("http://");
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(TIMEOUT + SLACK + SLACK)).unwrap();
    c
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
fn read_to_close(c: &mut TcpStream) -> (String, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), Instant::now())
}

fn within_bounds(start: Instant, end: Instant, what: &str) {
    let took = end - start;
    assert!(
        took >= TIMEOUT - Duration::from_millis(100),
        "{what}: closed after {took:?}, before the timeout"
    );
    assert!(took <= TIMEOUT + SLACK, "{what}: still open after {took:?}");
}

#[test]
fn slow_headers_idle_connections_and_slow_bodies_are_cut_off() {
    let s = served();

    // Headers that never finish.
    let mut c = connect(&s);
    let start = Instant::now();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (_, end) = read_to_close(&mut c);
    within_bounds(start, end, "slow headers");

    // A keep-alive connection answered, then left idle.
    let mut c = connect(&s);
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let start = Instant::now();
    let (rest, end) = read_to_close(&mut c);
    assert!(rest.is_empty(), "{rest}");
    within_bounds(start, end, "idle keep-alive");

    // A body that stops arriving: 408 with the API's error shape, then the close.
    let mut c = connect(&s);
    let start = Instant::now();
    write!(
        c,
        "PUT /v1/cache/user/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":",
        s.user
    )
    .unwrap();
    let (answer, end) = read_to_close(&mut c);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    within_bounds(start, end, "slow body");
    // Nothing was stored.
    let mut c = connect(&s);
    write!(
        c,
        "GET /v1/cache/user/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        s.user
    )
    .unwrap();
    let (answer, _) = read_to_close(&mut c);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn a_prompt_client_is_served_over_http1_and_h2c() {
    let s = served();
    // A body sent in pieces, each well within the timeout, is taken whole.
    let mut c = connect(&s);
    write!(
        c,
        "PUT /v1/cache/user/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n",
        s.user
    )
    .unwrap();
    for piece in [&b"{\"a\""[..], b":1}"] {
        std::thread::sleep(Duration::from_millis(100));
        c.write_all(piece).unwrap();
    }
    let (answer, _) = read_to_close(&mut c);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");

    // HTTP/2 with prior knowledge: the preface and an empty SETTINGS frame get the
    // server's SETTINGS frame back (frame type 4 on stream 0).
    let mut c = connect(&s);
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    c.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    let mut head = [0u8; 9];
    c.read_exact(&mut head).unwrap();
    assert_eq!(head[3], 4, "first frame type {head:?}");
    assert_eq!(&head[5..9], &[0, 0, 0, 0], "stream 0");
}
