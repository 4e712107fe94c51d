{#- The server image. Build from the repository root. -#}
# syntax=docker/dockerfile:1
# Rendered by stackctl from stack.yaml. Build from the repository root:
#   docker build -f rendered/docker/server.Dockerfile -t {{ image.server | sh }} .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Dependencies and build outputs stay in BuildKit caches between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p taskmanager-server \
    && cp target/release/taskmanager-server /usr/local/bin/taskmanager-server

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/taskmanager-server /usr/local/bin/taskmanager-server
USER 10001:10001
EXPOSE {{ stack.server.port }} {{ stack.server.metrics_port }}
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["/usr/local/bin/taskmanager-server", "probe", "--url", "http://127.0.0.1:{{ stack.server.metrics_port }}/healthz"]
ENTRYPOINT ["/usr/local/bin/taskmanager-server"]
CMD ["--config", "/etc/taskmanager/stack.yaml"]
