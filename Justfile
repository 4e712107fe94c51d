# Thin recipes over cargo and stackctl. Values (image names, tags, hosts) are read from
# stack.yaml through `stackctl get`, never repeated here.

set shell := ["bash", "-euo", "pipefail", "-c"]

stackctl := "cargo run --quiet --locked -p stackctl --"

# List the recipes.
default:
    @just --list

# Run the stack locally (the README's first command).
up:
    scripts/up

# Run every test, exactly as CI does (the README's second command).
ci:
    .ci/run

# Benchmark the task manager beside the Redis ceiling, BullMQ and a 3-master Redis Cluster,
# in one run (docs/benchmarks.md), e.g. `just bench --runs 3` or `just bench --scaling`.
bench *args:
    scripts/bench {{args}}

# Inject faults against real processes (Redis restart, SIGSTOP, DEBUG SLEEP, half-open
# connections, kill -9 of a server) and check that no task or stream is lost. CI runs it.
chaos:
    cargo test --locked -p taskmanager-server --test chaos -- --nocapture

# Measure idle status streams (release build): Redis commands while idle and server memory.
idle-streams streams="10000":
    IDLE_STREAMS={{streams}} cargo test --locked --release -p taskmanager-server --test idle_streams -- --nocapture

# Fuzz stack.yaml loading, validation and the render filters (cargo fuzz, nightly), for
# SECONDS per target; CI runs 20 s each.
fuzz seconds="600":
    scripts/fuzz {{seconds}}

# Run the server from stack.yaml, e.g. `just server --env local`.
server *args:
    cargo run --quiet --locked -p taskmanager-server -- {{args}}

# Run the client, e.g. `just client --env local submit --number1 2 --number2 3`.
client *args:
    cargo run --quiet --locked -p taskmanager-client -- {{args}}

# Render manifests, configs, Dockerfiles and the docker run script into rendered/.
render *args:
    {{stackctl}} render {{args}}

# Apply the rendered manifests to the current kubectl context.
deploy: render
    kubectl apply -k rendered/k8s

# Build the server and client images, named and tagged from stack.yaml.
build: render
    docker build -f rendered/docker/server.Dockerfile -t "$({{stackctl}} get derived.images.server)" .
    docker build -f rendered/docker/client.Dockerfile -t "$({{stackctl}} get derived.images.client)" .

# Push the images built by `just build`.
push:
    docker push "$({{stackctl}} get derived.images.server)"
    docker push "$({{stackctl}} get derived.images.client)"

# Run the stack with `docker run` (Redis, server, client demo); `just docker-run down` stops it.
docker-run action="up": render
    rendered/local/docker-run.sh {{action}}

# Validate stack.yaml in every environment.
check *args:
    {{stackctl}} check {{args}}

# Print one resolved value, e.g. `just get derived.images.server`.
get key *args:
    {{stackctl}} get {{key}} {{args}}

# Print the fully resolved configuration (secrets redacted).
config *args:
    {{stackctl}} config {{args}}

# Regenerate docs/stack.schema.json from the model.
schema:
    {{stackctl}} schema > docs/stack.schema.json

# Format the code.
fmt:
    cargo fmt --all
