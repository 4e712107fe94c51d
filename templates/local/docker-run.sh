{#- The stack with `docker run`: Redis, the server and the client's demo on one network. -#}
#!/usr/bin/env bash
# Rendered by stackctl from stack.yaml: runs Redis, the server and the client's demo with
# `docker run`. Usage: docker-run.sh [up|down]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
config="$here/../configs/stack.yaml"
network={{ stack.name | sh }}
redis_name={{ n.redis | sh }}
{%- if stack.redis.mode == "managed" %}
redis_image={{ image.redis | sh }}
{%- endif %}
{%- if stack.redis.mode != "cluster" %}
redis_port={{ stack.redis.port | string | sh }}
redis_host={{ (n.redis if stack.redis.mode == "managed" else stack.redis.host) | sh }}
{%- endif %}
key_prefix={{ stack.redis.key_prefix | sh }}
server_name={{ n.server | sh }}
server_image={{ image.server | sh }}
server_port={{ stack.server.port | string | sh }}
metrics_port={{ stack.server.metrics_port | string | sh }}
client_name={{ n.client | sh }}
client_image={{ image.client | sh }}
client_mode={{ stack.client.mode | sh }}
auth={{ ("true" if stack.redis.auth.enabled else "false") | sh }}

down() {
  docker rm -f "$client_name" "$server_name" "$redis_name" >/dev/null 2>&1 || true
}

up() {
  docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
  if [ "$auth" = true ]; then
    : "${TASKMANAGER__REDIS__AUTH__PASSWORD:?set TASKMANAGER__REDIS__AUTH__PASSWORD to the Redis password}"
  fi
{%- if stack.redis.mode == "managed" %}
  password_args=()
  if [ "$auth" = true ]; then
    password_args=(--requirepass "$TASKMANAGER__REDIS__AUTH__PASSWORD")
  fi
  docker run -d --name "$redis_name" --network "$network" \
    -v "$redis_name-data:/data" "$redis_image" \
    redis-server --port "$redis_port" --dir /data --appendonly yes \
    --appendfsync {{ stack.redis.persistence.appendfsync | sh }} --save "" "${password_args[@]}"
{%- endif %}
  docker run -d --name "$server_name" --network "$network" \
    -p "$server_port:$server_port" -p "$metrics_port:$metrics_port" \
{#- On a Redis Cluster the seed nodes come from the mounted stack.yaml. #}
{%- if stack.redis.mode != "cluster" %}
    -e TASKMANAGER__REDIS__MODE=external \
    -e "TASKMANAGER__REDIS__HOST=$redis_host" \
    -e "TASKMANAGER__REDIS__PORT=$redis_port" \
{%- endif %}
    -e "TASKMANAGER__REDIS__KEY_PREFIX=$key_prefix" \
    -e "TASKMANAGER__REDIS__AUTH__ENABLED=$auth" \
    -e TASKMANAGER__REDIS__AUTH__PASSWORD \
    -e TASKMANAGER__OBSERVABILITY__TRACING__ENABLED=false \
    -v "$config:/etc/taskmanager/stack.yaml:ro" \
    "$server_image" --config /etc/taskmanager/stack.yaml
  docker run -d --name "$client_name" --network "$network" \
    -v "$config:/etc/taskmanager/stack.yaml:ro" \
    "$client_image" --config /etc/taskmanager/stack.yaml \
    --address "http://$server_name:$server_port" "$client_mode"
  echo "server: localhost:$server_port (metrics on localhost:$metrics_port)"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
