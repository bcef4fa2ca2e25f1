#!/usr/bin/env bash
# Time `docker stack deploy` of N trivial services on the local single-node swarm.
#
#   bench/peer/swarm-stack.sh [--runs R] [--host-network] [--wait] [--name NAME] [N]   (N: 20)
#
# Each service: the local test image by ID, `sleep 1000000`, 1 replica, init: true, no ports.
# Measures, per run:
#   stack_deploy_seconds     wall time of `docker stack deploy` itself (it returns once the
#                            network and service specs are submitted; it waits for no task)
#   stack_converged_seconds  from the start of `docker stack deploy` until every one of the N
#                            services shows 1/1 in `docker service ls` (a Running task each)
#   stack_removed_seconds    from the start of `docker stack rm` until the stack's services, its
#                            network and its containers are gone (not part of the comparison)
# With --runs R: R runs on fresh names NAME-rI, medians printed. By default the stack gets its
# `<name>_default` overlay network, as stack deploy always does; --host-network attaches the
# services to the predefined `host` network instead, so no overlay network is created.
# --wait deploys with `--detach=false`: the CLI then watches the services one after the other,
# each until its tasks have been stable for its monitor period (5 s by default).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=20 RUNS=1 HOSTNET=0 NAME="" DEPLOY_ARGS=()
TIMEOUT=${SWARM_BENCH_TIMEOUT:-180}
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --name) [ $# -ge 2 ] || usage; NAME=$2; shift 2 ;;
    --host-network) HOSTNET=1; shift ;;
    --wait) DEPLOY_ARGS=(--detach=false); shift ;;   # CLI >= 26; older ones always detach
    -h|--help) usage ;;
    -*) echo "swarm-stack.sh: unknown option $1" >&2; usage ;;
    *) N=$1; shift ;;
  esac
done
[[ "$N" =~ ^[1-9][0-9]*$ && "$RUNS" =~ ^[1-9][0-9]*$ ]] || usage
NAME=${NAME:-peerswarm$$}
[[ "$NAME" =~ ^[a-z0-9][a-z0-9_-]{0,40}$ ]] || { echo "swarm-stack.sh: bad stack name $NAME" >&2; exit 2; }

log() { echo "swarm-stack.sh: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# swarm mode + the FROM-scratch test image (built by .ci/setup-swarm when missing)
ID_FILE=${INFRA_TEST_IMAGE_FILE:-/tmp/infra-test-image-id}
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ] || [ ! -s "$ID_FILE" ] \
   || ! docker image inspect "$(cat "$ID_FILE")" >/dev/null 2>&1; then
  log "running .ci/setup-swarm"
  "$REPO/.ci/setup-swarm" >/dev/null
fi
IMAGE=$(cat "$ID_FILE")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/peer-swarm.XXXXXX")
CURRENT=""
# services, containers and the network of stack $1 still present?
leftovers() {
  docker service ls -q --filter "label=com.docker.stack.namespace=$1"
  docker ps -aq --filter "label=com.docker.stack.namespace=$1"
  docker network ls -q --filter "label=com.docker.stack.namespace=$1"
}
remove_stack() { # name -> sets REMOVED (seconds)
  local t0; t0=$(now)
  docker stack rm "$1" >/dev/null
  local deadline=$((SECONDS + TIMEOUT))
  while [ -n "$(leftovers "$1")" ]; do
    [ $SECONDS -lt $deadline ] || { log "stack $1 not gone after ${TIMEOUT}s"; return 1; }
    # stack rm drops the network only if no container is attached any more; retry it
    if [ -z "$(docker service ls -q --filter "label=com.docker.stack.namespace=$1")" ] \
       && [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$1")" ]; then
      docker network ls -q --filter "label=com.docker.stack.namespace=$1" | xargs -r docker network rm >/dev/null 2>&1 || true
    fi
    sleep 0.2
  done
  REMOVED=$(since "$t0")
}
cleanup() {
  local rc=$?
  if [ -n "$CURRENT" ]; then log "removing stack $CURRENT"; remove_stack "$CURRENT" || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

write_compose() { # file
  {
    echo 'version: "3.8"'
    echo 'services:'
    for i in $(seq -w 1 "$N"); do
      cat <<EOF
  s$i:
    image: "$IMAGE"
    command: ["sleep", "1000000"]
    init: true
    deploy:
      replicas: 1
EOF
      [ "$HOSTNET" = 0 ] || printf '    networks: [hostnet]\n'
    done
    if [ "$HOSTNET" = 1 ]; then
      printf 'networks:\n  hostnet:\n    external: true\n    name: host\n'
    fi
  } >"$1"
}

DEPLOYS=() CONVERGED=() REMOVES=()
write_compose "$WORK/stack.yml"
for r in $(seq 1 "$RUNS"); do
  if [ "$RUNS" -gt 1 ]; then name="$NAME-r$r"; else name="$NAME"; fi
  [ -z "$(leftovers "$name")" ] || { log "stack $name already exists; pick another --name"; exit 1; }
  CURRENT=$name
  t0=$(now)
  docker stack deploy "${DEPLOY_ARGS[@]}" --resolve-image never -c "$WORK/stack.yml" "$name" >"$WORK/deploy.log" 2>&1 \
    || { log "docker stack deploy failed:"; cat "$WORK/deploy.log" >&2; exit 1; }
  deploy=$(since "$t0")
  deadline=$((SECONDS + TIMEOUT))
  while :; do
    ready=$(docker service ls --filter "label=com.docker.stack.namespace=$name" --format '{{.Replicas}}' | grep -c '^1/1' || true)
    [ "$ready" -lt "$N" ] || break
    [ $SECONDS -lt $deadline ] || { log "only $ready/$N services at 1/1 after ${TIMEOUT}s"; docker service ls --filter "label=com.docker.stack.namespace=$name" >&2; exit 1; }
    sleep 0.1
  done
  converged=$(since "$t0")
  remove_stack "$name"
  CURRENT=""
  log "$name: deploy ${deploy}s, all $N services 1/1 at ${converged}s, removed in ${REMOVED}s"
  DEPLOYS+=("$deploy") CONVERGED+=("$converged") REMOVES+=("$REMOVED")
done

[ "$RUNS" -eq 1 ] || log "deploy: ${DEPLOYS[*]}; converged: ${CONVERGED[*]}; removed: ${REMOVES[*]}"
echo "stack_deploy_seconds=$(printf '%s\n' "${DEPLOYS[@]}" | median)"
echo "stack_converged_seconds=$(printf '%s\n' "${CONVERGED[@]}" | median)"
echo "stack_removed_seconds=$(printf '%s\n' "${REMOVES[@]}" | median)"
