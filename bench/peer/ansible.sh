#!/usr/bin/env bash
# Time Ansible (amazon.aws) converging bench/peer/stack.yml against moto: a create run, then a
# no-op re-run on the same stack name, which must report changed=0.
#
#   bench/peer/ansible.sh [--runs N] [--keep] [STACK_NAME]
#
# Prints (stdout)  ansible_create_seconds=<float>
#                  ansible_noop_seconds=<float>
# With --runs N: N create+no-op pairs, each on a fresh name STACK_NAME-rI, and the medians.
# Per-run figures (wall, user+sys CPU, load average) go to stderr, the ansible logs to $LOG_DIR.
# Wall time is measured around each ansible-playbook process (interpreter start-up, playbook
# parse and every module call included).
# After each pair bench/peer/cleanup.yml removes the stack (not timed); --keep leaves it in moto.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNS=1
KEEP=0
NAME=""
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    -*) echo "ansible.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$NAME" ] || usage; NAME=$1; shift ;;
  esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "ansible.sh: --runs wants a positive integer" >&2; exit 2; }
# a fresh default name: moto is shared and never reset, so names must not repeat
NAME=${NAME:-peer-$(date +%s)-$$}
[[ "$NAME" =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,40}$ ]] \
  || { echo "ansible.sh: STACK_NAME must be [A-Za-z0-9-], at most 41 chars (it prefixes AWS names)" >&2; exit 2; }

log() { echo "ansible.sh: $*" >&2; }

eval "$("$HERE/setup")"          # venv + moto; prints the AWS_* exports
PLAYBOOK=("$INFRA_ANSIBLE_VENV/bin/ansible-playbook" -i localhost, -c local)
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_DEPRECATION_WARNINGS=false \
       ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
       ANSIBLE_RETRY_FILES_ENABLED=false ANSIBLE_PYTHON_INTERPRETER="$INFRA_ANSIBLE_VENV/bin/python"
LOG_DIR=${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/peer-ansible.XXXXXX")}
mkdir -p "$LOG_DIR"
log "logs in $LOG_DIR"

now() { date +%s.%N; }
# user+sys CPU seconds of all waited-for children so far (ansible-playbook and its module processes)
child_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($14 + $15) / hz }' "/proc/$$/stat"; }
# run_play NAME LOGFILE -> sets ELAPSED and CHANGED/OK from the PLAY RECAP line
run_play() {
  local name=$1 out=$2 t0 t1 c0 recap rc=0
  c0=$(child_cpu)
  t0=$(now)
  "${PLAYBOOK[@]}" "$HERE/stack.yml" -e "stack_name=$name" >"$out" 2>&1 || rc=$?
  t1=$(now)
  ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  CPU=$(awk -v a="$c0" -v b="$(child_cpu)" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" -ne 0 ]; then
    log "ansible-playbook failed (exit $rc) for $name; tail of $out:"; tail -n 30 "$out" >&2; exit 1
  fi
  recap=$(grep -E '^localhost +: ' "$out" | tail -n 1) \
    || { log "no PLAY RECAP in $out"; tail -n 30 "$out" >&2; exit 1; }
  CHANGED=$(sed -E 's/.* changed=([0-9]+).*/\1/' <<<"$recap")
  OK=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$recap")
  FAILED=$(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$recap")
  [ "$FAILED" = 0 ] || { log "failed=$FAILED in $out"; exit 1; }
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

CREATES=() NOOPS=()
for i in $(seq 1 "$RUNS"); do
  if [ "$RUNS" -gt 1 ]; then name="$NAME-r$i"; else name="$NAME"; fi
  run_play "$name" "$LOG_DIR/$name.create.log"
  create=$ELAPSED
  if [ "$CHANGED" = 0 ]; then
    log "FAIL: the create run of $name changed nothing: the stack name was not fresh"; exit 1
  fi
  log "$name: create ${create}s wall, ${CPU}s cpu (ok=$OK changed=$CHANGED), load $(cut -d" " -f1 /proc/loadavg)"
  run_play "$name" "$LOG_DIR/$name.noop.log"
  noop=$ELAPSED
  if [ "$CHANGED" != 0 ]; then
    log "FAIL: the re-run of $name is not a no-op: changed=$CHANGED (expected 0). Changed tasks:"
    grep -B1 -E '^changed:' "$LOG_DIR/$name.noop.log" >&2 || true
    exit 1
  fi
  log "$name: no-op ${noop}s wall, ${CPU}s cpu (ok=$OK changed=0), load $(cut -d" " -f1 /proc/loadavg)"
  CREATES+=("$create") NOOPS+=("$noop")
  if [ "$KEEP" = 0 ]; then
    "${PLAYBOOK[@]}" "$HERE/cleanup.yml" -e "stack_name=$name" >"$LOG_DIR/$name.cleanup.log" 2>&1 \
      || { log "cleanup of $name failed (see $LOG_DIR/$name.cleanup.log); continuing"; }
  fi
done

[ "$RUNS" -eq 1 ] || log "create runs: ${CREATES[*]}; no-op runs: ${NOOPS[*]}"
echo "ansible_create_seconds=$(printf '%s\n' "${CREATES[@]}" | median)"
echo "ansible_noop_seconds=$(printf '%s\n' "${NOOPS[@]}" | median)"
