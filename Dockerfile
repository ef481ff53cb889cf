# sharecache: the binary alone in a slim image, running as a non-root user.
#   docker build -t sharecache .
#   docker run -p 7070:7070 -v $PWD/sharecache.toml:/etc/sharecache/sharecache.toml:ro sharecache
# See docs/deploy.md (compose.yaml runs it beside Redis).

# --- build ---
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
RUN cargo build --release --locked -p sharecache-server \
    && cp target/release/sharecache /sharecache

# --- run ---
FROM debian:bookworm-slim
# ca-certificates: rediss:// URLs verify the server against the system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/sharecache --create-home sharecache
COPY --from=build /sharecache /usr/local/bin/sharecache
COPY deploy/sharecache.toml /etc/sharecache/sharecache.toml
USER 10001:10001
WORKDIR /var/lib/sharecache
ENV SHARECACHE_CONFIG=/etc/sharecache/sharecache.toml
EXPOSE 7070
# /ready answers 200 while requests can be served. bash's /dev/tcp does the request, so
# the image needs no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7070 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/sharecache"]
CMD ["serve", "--listen", "0.0.0.0:7070"]
