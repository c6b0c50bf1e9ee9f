# Multi-stage build: librdkafka is compiled into the binary (rdkafka's cmake-free default build,
# with OpenSSL for TLS and SASL PLAIN/SCRAM, and zstd, lz4, snappy and gzip codecs; zstd is
# linked statically); the runtime image carries only the binary, the
# shared libraries it links (OpenSSL, zlib) and CA certificates, and runs as a non-root user.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
ARG LAGWATCH_REVISION=unknown
ENV LAGWATCH_REVISION=${LAGWATCH_REVISION}
RUN cargo build --release --locked --bin lagwatch \
 && strip target/release/lagwatch

FROM debian:bookworm-slim
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
