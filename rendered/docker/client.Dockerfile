# syntax=docker/dockerfile:1
# Rendered by stackctl from stack.yaml. Build from the repository root:
#   docker build -f rendered/docker/client.Dockerfile -t 'localhost:5000/taskmanager-client:0.1.0' .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Dependencies and build outputs stay in BuildKit caches between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p taskmanager-client \
    && cp target/release/taskmanager-client /usr/local/bin/taskmanager-client

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/taskmanager-client /usr/local/bin/taskmanager-client
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/taskmanager-client"]
CMD ["--config", "/etc/taskmanager/stack.yaml", "demo"]
