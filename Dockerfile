# Multi-stage build: librdkafka is compiled into the binary (rdkafka's cmake-free default build,
# with OpenSSL for TLS and SASL PLAIN/SCRAM, and zstd, lz4, snappy and gzip codecs; zstd is
# linked statically); the runtime image carries only the binary, the shared libraries it links
# (OpenSSL, zlib) and CA certificates, and runs as a non-root user.
#
#   docker build -t lagwatch:0.1.0 --build-arg LAGWATCH_REVISION="$(git rev-parse --short HEAD)" .
#
# Base images are pinned to exact versions (a floating tag such as `rust:1` or `latest` would
# change the toolchain or the C libraries under an unchanged Dockerfile). To pin harder, append
# the digest your registry reports: `FROM rust:1.95.0-bookworm@sha256:…`. tests/dockerfile.rs
# checks the pins, the layer order below, the labels and the user.

FROM rust:1.95.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, in a layer of their own: only the manifest and the lock file are copied,
# with empty stand-ins for every target Cargo.toml declares, so librdkafka and every other crate
# are compiled here and this layer is reused until Cargo.toml or Cargo.lock change. A change to
# src/ starts below it.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/scale.rs \
 && cargo build --release --locked --bin lagwatch \
 && rm -rf src target/release/lagwatch target/release/deps/lagwatch-* \
      target/release/deps/liblagwatch-* target/release/.fingerprint/lagwatch-*

# lagwatch itself. The revision is declared only now, so a new commit does not rebuild the
# dependencies either.
COPY src ./src
ARG LAGWATCH_REVISION=unknown
ENV LAGWATCH_REVISION=${LAGWATCH_REVISION}
RUN cargo build --release --locked --bin lagwatch \
 && strip target/release/lagwatch

FROM debian:12.11-slim
ARG LAGWATCH_VERSION=0.1.0
ARG LAGWATCH_REVISION=unknown
LABEL org.opencontainers.image.title="lagwatch" \
      org.opencontainers.image.description="Kafka consumer-lag exporter for Prometheus: lag in messages and seconds, retention-eviction risk, commit skew" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${LAGWATCH_VERSION}" \
      org.opencontainers.image.revision="${LAGWATCH_REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.11-slim"
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin lagwatch
COPY --from=build /src/target/release/lagwatch /usr/local/bin/lagwatch
COPY config/example.yaml /etc/lagwatch/example.yaml
USER 65532:65532
EXPOSE 9308
ENTRYPOINT ["/usr/local/bin/lagwatch"]
CMD ["--config", "/etc/lagwatch/lagwatch.yaml"]
