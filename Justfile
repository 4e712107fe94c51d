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

# Benchmark the server against a local redis-server, with the Redis ceiling for comparison.
bench tasks="5000" concurrency="32":
    scripts/bench {{tasks}} {{concurrency}}

# Run the server from stack.yaml, e.g. `just server --env local`.
server *args:
    cargo run --quiet --locked -p taskmanager-server -- {{args}}

# Run the client, e.g. `just client --env local submit --number1 2 --number2 3`.
client *args:
    cargo run --quiet --locked -p taskmanager-client -- {{args}}

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
