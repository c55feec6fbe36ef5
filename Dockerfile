# Keel's container image: one `keel` binary (serve, worker, migrate, seed, maintenance, …),
# built in a release profile, run as a non-root user on a distroless base (glibc, no shell).
#   docker build -t keel .
#   docker run --rm -p 8080:8080 -e KEEL_DATABASE_URL=… keel            # keel serve
#   docker run --rm keel worker                                            # keel worker
# The build needs no database: migrations are compiled in.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY crates crates
COPY docs docs
# The registry and the target directory are cache mounts: a rebuild after a code change
# compiles Keel's crates, not its dependency tree.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin keel \
    && cp target/release/keel /keel

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /keel /usr/local/bin/keel
# Inside a container the process listens on every interface; the orchestrator decides who
# may reach it.
ENV KEEL_LISTEN=0.0.0.0:8080 \
    KEEL_WORKER_LISTEN=0.0.0.0:9091
EXPOSE 8080 9091
# distroless's `nonroot` user (65532): nothing in the image runs as root.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/keel"]
CMD ["serve"]
