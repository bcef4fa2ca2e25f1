#!/bin/sh
# A stand-in for the node agent (infra-node), for the cluster lab's own tests only: it reads its
# identity from the lab's IMDS the way the contract says (IMDSv2 token), forms a swarm the simple
# way (the first manager to create a directory in the lab's state dir initialises, the others join
# through the peers recorded there) and drains on `target-lifecycle-state = Terminated`.
# It is not the agent: no SSM, no ASG lookups, no dead-node removal.
#
# Environment (set by the lab): INFRA_NODE_IMDS_ENDPOINT, DOCKER_HOST, INFRA_LAB_STATE_DIR,
# INFRA_LAB_ROLE; optional STANDIN_DRAIN_DELAY (seconds to linger while draining),
# STANDIN_SKIP_SWARM=1 (no swarm: only watch the lifecycle state), STANDIN_IGNORE_TERMINATION=1
# (never leave: for the lab's bound on a drain).
# One JSON line per step on stdout. Every loop is bounded.
set -u
[ "${1:-}" = run ] || { echo "usage: standin-agent run" >&2; exit 64; }
EP=$INFRA_NODE_IMDS_ENDPOINT
SHARED=$INFRA_LAB_STATE_DIR/standin
mkdir -p "$SHARED/peers"
log() { printf '{"step":"%s","msg":"%s"}\n' "$1" "$2"; }

# the contract: a GET without a token is refused
code=$(curl -s -o /dev/null -w '%{http_code}' -m 3 "$EP/latest/meta-data/instance-id")
log imds-no-token "$code"
TOKEN=$(curl -sf -m 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$EP/latest/api/token") \
  || { log identity "no IMDS token"; exit 2; }
md() { curl -sf -m 3 -H "X-aws-ec2-metadata-token: $TOKEN" "$EP/latest/meta-data/$1"; }
ID=$(md instance-id) && IP=$(md local-ipv4) && AZ=$(md placement/availability-zone) \
  && REGION=$(md placement/region) || { log identity "IMDS did not answer"; exit 2; }
log identity "$ID $IP $AZ $REGION ${INFRA_LAB_ROLE:-}"

active() { [ "$(docker info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; }

if [ "${STANDIN_SKIP_SWARM:-}" = 1 ]; then
  log swarm skipped
elif ! active; then
  if [ "${INFRA_LAB_ROLE:-}" = swarm-manager ] && mkdir "$SHARED/init" 2>/dev/null; then
    docker swarm init --advertise-addr "$IP" --listen-addr 0.0.0.0:2377 >/dev/null || { log init failed; exit 1; }
    docker swarm join-token -q manager >"$SHARED/manager-token.tmp" && mv "$SHARED/manager-token.tmp" "$SHARED/manager-token"
    docker swarm join-token -q worker >"$SHARED/worker-token.tmp" && mv "$SHARED/worker-token.tmp" "$SHARED/worker-token"
    log init "$IP"
  else
    kind=worker; [ "${INFRA_LAB_ROLE:-}" = swarm-manager ] && kind=manager
    i=0
    while [ ! -s "$SHARED/$kind-token" ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done
    [ -s "$SHARED/$kind-token" ] || { log join "no $kind token"; exit 1; }
    joined=no
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
      for peer in $(ls "$SHARED/peers"); do
        if timeout 20 docker swarm join --token "$(cat "$SHARED/$kind-token")" --advertise-addr "$IP" \
             --listen-addr 0.0.0.0:2377 "$peer:2377" >/dev/null 2>&1; then joined=yes; break 2; fi
      done
      active && { joined=yes; break; }
      sleep 1
    done
    [ $joined = yes ] || { log join "no manager answered"; exit 1; }
    log join "$kind via $peer"
  fi
fi
if [ "${INFRA_LAB_ROLE:-}" = swarm-manager ] && [ "${STANDIN_SKIP_SWARM:-}" != 1 ]; then
  touch "$SHARED/peers/$IP"
  self=$(docker info -f '{{.Swarm.NodeID}}')
  docker node update --label-add "az=$AZ" --label-add "instance=$ID" --label-add role=manager "$self" >/dev/null
fi
log ready "$ID"

# wait for termination (bounded: 2 hours at one check a second)
i=0
while [ $i -lt 7200 ]; do
  state=$(md autoscaling/target-lifecycle-state) || {
    TOKEN=$(curl -sf -m 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$EP/latest/api/token")
    state=unknown
  }
  if [ "$state" = Terminated ] && [ "${STANDIN_IGNORE_TERMINATION:-}" = 1 ]; then
    log ignoring "$state"
  elif [ "$state" = Terminated ]; then
    log draining "$ID"
    rm -f "$SHARED/peers/$IP"
    sleep "${STANDIN_DRAIN_DELAY:-0}"
    if [ "${INFRA_LAB_ROLE:-}" = swarm-manager ]; then
      self=$(docker info -f '{{.Swarm.NodeID}}')
      docker node demote "$self" >/dev/null 2>&1
    fi
    docker swarm leave --force >/dev/null 2>&1
    log left "$ID"
    exit 0
  fi
  sleep 1
  i=$((i+1))
done
exit 3
