#!/bin/sh
# Runs on the Packer builder instance (image/node.pkr.hcl), as root, with AGENT_SOURCE,
# AGENT_PATH, UNIT_SOURCE, UNIT_PATH and UNIT_NAME from the template.
set -eu
: "${AGENT_SOURCE:?}" "${AGENT_PATH:?}" "${UNIT_SOURCE:?}" "${UNIT_PATH:?}" "${UNIT_NAME:?}"

# the Docker engine (Debian's package) and what the unit's ExecCondition uses (pgrep)
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends docker.io procps ca-certificates
systemctl enable docker.service

# the node agent, at the path the launch templates' user data runs
install -o root -g root -m 0755 "$AGENT_SOURCE" "$AGENT_PATH"
"$AGENT_PATH" --version

# Elasticsearch (a swarm service on a manager) refuses to start below this map count
# (its bootstrap check); every node gets it so the service can be placed on any of them
echo "vm.max_map_count = 262144" > /etc/sysctl.d/99-elasticsearch.conf

# its boot unit
install -o root -g root -m 0644 "$UNIT_SOURCE" "$UNIT_PATH"
systemctl daemon-reload
systemctl enable "$UNIT_NAME"

# no trace of the builder instance in the image: instances start with a clean cloud-init state
rm -f "$AGENT_SOURCE" "$UNIT_SOURCE"
apt-get clean
cloud-init clean --logs
