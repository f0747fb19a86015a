# syntax=docker/dockerfile:1
# The cachet sidecar image: the release binary, ONNX Runtime and the embedding model, on a slim
# Debian base, run as a non-root user. The pod needs no network at start: the model and the
# runtime library are in the image, fetched at build time by the same pinned, sha256-checked
# scripts/setup.sh that local runs and CI use.
#
#   docker build -t cachet:0.1.0 .
#   docker run --rm -p 50051:50051 -p 50080:50080 -e OPENAI_API_KEY -v cachet-data:/var/lib/cachet cachet:0.1.0
#
# scripts/check-deploy.sh keeps this file honest where no Docker engine is available: every
# path COPYed must exist, the entrypoint and config must be accepted by the binary, and hadolint
# must pass.

# --- build: the release binary --------------------------------------------------------------
# Debian bookworm, like the runtime stage, so the binary links against the same glibc (2.36).
FROM rust:1.95-bookworm AS build
WORKDIR /src
# build.rs compiles the proto with a vendored protoc, so no system protobuf is needed;
# benches/ is listed because Cargo.toml declares the bench target, vendor/ because Cargo.toml
# patches hnsw_rs with the copy there.
COPY Cargo.toml Cargo.lock build.rs ./
COPY vendor ./vendor
COPY proto ./proto
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cachet \
    && install -D -m 0755 target/release/cachet /out/cachet

# --- assets: ONNX Runtime, the model, the word list and WordNet, as local setup and CI fetch them
FROM python:3.11-slim-bookworm AS assets
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    CACHET_ASSETS_DIR=/opt/cachet/assets
COPY scripts/setup.sh /src/scripts/setup.sh
RUN bash /src/scripts/setup.sh

# --- runtime --------------------------------------------------------------------------------
# glibc 2.36: the onnxruntime wheel's library is built for manylinux_2_28 (glibc >= 2.28) and
# needs libstdc++ besides.
FROM debian:bookworm-slim AS runtime
# Versions are not pinned: bookworm's security updates replace them, and a pin would break the
# build the day they do. The base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 cachet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/cachet --shell /usr/sbin/nologin cachet \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/cachet
COPY --from=assets /opt/cachet/assets /opt/cachet/assets
COPY --from=build /out/cachet /usr/local/bin/cachet
COPY deploy/container/cachet.toml /etc/cachet/cachet.toml
# CACHET_CONFIG is read by `cachet serve` and `cachet check-config`; CACHET_ASSETS_DIR by the
# embedder. Logs go to stderr as JSON lines, for the cluster's log collector.
# GLIBC_TUNABLES: malloc asks for transparent huge pages (where the node's THP mode is `madvise`
# or `always`) and grows its heap 64 MiB at a time, so the index graphs sit on 2 MiB pages. With
# 1M entries: HNSW search p50 0.96 -> 0.76 ms, p99 1.41 -> 1.11 ms, start-up a little faster;
# 17 MB more resident memory on a small cache (BENCHMARKS.md, "Huge pages").
ENV CACHET_CONFIG=/etc/cachet/cachet.toml \
    CACHET_ASSETS_DIR=/opt/cachet/assets \
    CACHET_LOG_FORMAT=json \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.top_pad=67108864 \
    HOME=/var/lib/cachet
USER 10001:10001
WORKDIR /var/lib/cachet
# sled's database and the index checkpoints (storage.data_dir in the config above).
VOLUME ["/var/lib/cachet"]
# gRPC cache API, gRPC admin API, OpenAI-compatible HTTP, Prometheus metrics.
EXPOSE 50051 50052 50080 9464
# SIGTERM: health turns NOT_SERVING, in-flight calls drain, indexes are checkpointed, sled is flushed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cachet"]
CMD ["serve"]
