# syntax=docker/dockerfile:1
# Remedy's container image: `remedy run` (the Kafka streaming service with the
# API, dashboard and /metrics) by default; any other subcommand works too
# (`docker run --rm remedy generate ...`). Needs BuildKit for the cache mounts:
# Docker 23+ and Compose v2 use it by default; with Debian's docker.io 20.10 and
# docker-compose 1.29 set DOCKER_BUILDKIT=1 (compose/README.md).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
# rdkafka (feature `cmake-build`) compiles librdkafka from source with cmake.
# Of the headers below, only zlib's is used by the features Remedy enables
# (no `ssl`, `curl`, `gssapi` or `zstd`); the others are there so that turning
# one of those features on in Cargo.toml needs no change here. Versions are
# not pinned: Debian's security updates replace them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake pkg-config libcurl4-openssl-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry, git checkouts and target/ live in BuildKit cache mounts, so a
# rebuild after a source change recompiles Remedy's crates only. target/ is a
# cache mount, hence the copy out of it within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin remedy \
 && install -D -m 0755 target/release/remedy /out/remedy

FROM debian:bookworm-slim
# Runtime libraries: librdkafka is linked statically and built without TLS,
# curl, SASL or zstd, so besides glibc the binary needs only zlib (dynamic,
# libz.so.1). zlib1g is already part of the base image; it is named here so
# the dependency is written down. curl is for the health check (it brings
# libcurl4 and libssl3 along, which Remedy itself does not load).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl zlib1g \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 remedy \
 && useradd --system --uid 10001 --gid remedy --no-create-home \
      --home-dir /var/lib/remedy --shell /usr/sbin/nologin remedy \
 && install -d -o remedy -g remedy -m 0750 /var/lib/remedy \
 && install -d -m 0755 /etc/remedy
COPY --from=builder /out/remedy /usr/local/bin/remedy
# A default configuration for a broker at kafka:9092; mount your own over it
# or override single settings with REMEDY_<SECTION>__<KEY> variables.
COPY compose/remedy.toml /etc/remedy/remedy.toml

USER 10001:10001
WORKDIR /var/lib/remedy
VOLUME ["/var/lib/remedy"]
EXPOSE 8080
# Shell form on purpose: curl's own exit codes (7, 22...) become 1, the
# only "unhealthy" code Docker defines.
# hadolint ignore=DL3025
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["remedy"]
CMD ["run", "--config", "/etc/remedy/remedy.toml"]
