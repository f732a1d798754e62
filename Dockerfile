# syntax=docker/dockerfile:1
#
# Both programs in one small image: `consumer` (the default command) and `producer`.
# templates/ and static/ are compiled into the binaries (askama, rust-embed), so the
# runtime stage needs nothing but the two executables.
#
#   docker build -t taskhooks:local .
#   docker run --rm -e BIND=0.0.0.0:5001 -e WEBHOOK_SECRET=whsec_... -p 127.0.0.1:5001:5001 taskhooks:local
#   docker run --rm -e BIND=0.0.0.0:5000 -e WEBHOOK_SECRET=whsec_... -p 127.0.0.1:5000:5000 taskhooks:local producer
#
# scripts/compose-test builds and runs it for real (docker compose up --build).

# ---- build ------------------------------------------------------------------------
# Keep the Rust version equal to `rust-version` in Cargo.toml.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /app

# Dependencies first, in their own layer: only the manifests and the lock file go in, with
# empty sources, so editing a source file reuses this layer and recompiles only our crates.
COPY Cargo.toml Cargo.lock ./
COPY shared/Cargo.toml shared/
COPY consumer/Cargo.toml consumer/askama.toml consumer/
COPY producer/Cargo.toml producer/askama.toml producer/
RUN for crate in shared consumer producer; do \
        mkdir -p "$crate/src" "$crate/tests/api" \
        && touch "$crate/src/lib.rs" "$crate/tests/api/main.rs" \
        && echo 'fn main() {}' > "$crate/src/main.rs"; \
    done \
    && rm shared/src/main.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked --bins \
    && rm -rf shared/src consumer/src producer/src

# Our sources; `touch` makes cargo see them as newer than the empty stubs built above.
COPY shared shared
COPY consumer consumer
COPY producer producer
COPY templates templates
COPY static static
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    find shared consumer producer -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bins

# ---- run --------------------------------------------------------------------------
# Distroless: glibc, libgcc, CA certificates (for https:// receivers) and a non-root user,
# no shell and no package manager. Same Debian release as the builder, so the binaries find
# the glibc they were linked to. The healthcheck is `consumer healthcheck` / `producer
# healthcheck`, which GET /healthz themselves: no curl needed.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

COPY --from=builder /app/target/release/consumer /app/target/release/producer /usr/local/bin/

# Numeric (distroless's `nonroot`), so `runAsNonRoot` checks can resolve it.
USER 65532:65532

# 5000: producer, 5001: consumer. Each binds 127.0.0.1 unless BIND says otherwise;
# in a container set BIND=0.0.0.0:5000 / BIND=0.0.0.0:5001 (docker-compose.yml does).
EXPOSE 5000 5001

# No ENTRYPOINT, so `docker run IMAGE producer send --count 5` works as written.
CMD ["consumer"]
