# syntax=docker/dockerfile:1
#
# Both programs in one image: `consumer` (the default command) and `producer`.
# templates/ and static/ are compiled into the binaries (askama, rust-embed), so the
# runtime stage needs nothing but the two executables.
#
#   docker build -t taskhooks .
#   docker run --rm -e BIND=0.0.0.0:5001 -e WEBHOOK_SECRET=whsec_... -p 5001:5001 taskhooks
#   docker run --rm -e BIND=0.0.0.0:5000 -e WEBHOOK_SECRET=whsec_... -p 5000:5000 taskhooks producer
#
# scripts/check-docker checks that the paths, binaries and ports named here exist.

# ---- build ------------------------------------------------------------------------
# Keep the Rust version equal to `rust-version` in Cargo.toml.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /app

COPY Cargo.toml Cargo.lock ./
COPY shared shared
COPY consumer consumer
COPY producer producer
COPY templates templates
COPY static static

# The registry cache only speeds up rebuilds; the binaries stay in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked --bins

# ---- run --------------------------------------------------------------------------
# Same Debian release as the builder, so the binaries find the glibc they were linked to.
FROM debian:bookworm-slim AS runtime

# ca-certificates: for webhooks sent to https:// receivers.
# curl: the docker-compose.yml healthchecks call /healthz with it.
# Versions are not pinned (hadolint DL3008): bookworm's security updates replace them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 taskhooks \
    && useradd --system --uid 10001 --gid taskhooks --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin taskhooks

COPY --from=builder /app/target/release/consumer /app/target/release/producer /usr/local/bin/

# Numeric, so `runAsNonRoot` checks and hosts without this user can resolve it.
USER 10001:10001

# 5000: producer, 5001: consumer. Each binds 127.0.0.1 unless BIND says otherwise;
# in a container set BIND=0.0.0.0:5000 / BIND=0.0.0.0:5001 (docker-compose.yml does).
EXPOSE 5000 5001

# No ENTRYPOINT, so `docker run IMAGE producer send --count 5` works as written.
CMD ["consumer"]
