# syntax=docker/dockerfile:1
# Build stage: the same toolchain as development and CI.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# nasm assembles libjpeg-turbo's SIMD (the mozjpeg crate): JPEG variants are built in bands by it.
RUN apt-get update && apt-get install -y --no-install-recommends nasm && rm -rf /var/lib/apt/lists/*
# The workspace: the reference app (src, its migrations and templates) and the library (shoebox/).
COPY Cargo.toml Cargo.lock askama.toml ./
COPY src src
COPY migrations migrations
COPY templates templates
COPY shoebox shoebox
RUN cargo build --release --locked --bin shoebox

# Runtime stage: a slim image with only the binary and CA certificates (for S3 and Postgres TLS).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data --create-home shoebox
COPY --from=build /src/target/release/shoebox /usr/local/bin/shoebox
USER shoebox
WORKDIR /data
ENV PORT=3000 SHOEBOX_DATA_DIR=/data
EXPOSE 3000
CMD ["shoebox", "serve"]
