#!/usr/bin/env bash
# The `docker stack deploy` side of the 20-service benchmark (see examples/twenty_services.rs):
# the same 20 services (image by ID, `sleep 100000`, init, 1 s stop grace, 1 replica).
# Prints the time `docker stack deploy` takes to return (with the default --detach=true it
# waits for nothing but the API accepting each service; DETACH=false makes the CLI wait too) and the time until all 20 services have their task running
# (measured here by polling `docker service ls`), then removes the stack.
set -euo pipefail
stack=${1:-sd20}
image=${INFRA_TEST_IMAGE:-$(cat /tmp/infra-test-image-id)}
file=$(mktemp --suffix=.yml)
{
  echo 'version: "3.8"'
  echo 'services:'
  for i in $(seq -w 0 19); do
    cat <<YAML
  svc$i:
    image: $image
    command: ["sleep", "100000"]
    init: true
    stop_grace_period: 1s
    deploy:
      replicas: 1
YAML
  done
} >"$file"
now() { date +%s.%N; }
t0=$(now)
docker stack deploy --detach="${DETACH:-true}" --resolve-image never -c "$file" "$stack" >/dev/null 2>&1
t1=$(now)
until [ "$(docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Replicas}}' | grep -c '^1/1')" = 20 ]; do
  sleep 0.1
done
t2=$(now)
printf 'docker stack deploy returned after %.2fs; all 20 tasks running after %.2fs\n' \
  "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)"
docker stack rm "$stack" >/dev/null
until [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$stack")" ]; do sleep 0.2; done
rm -f "$file"
