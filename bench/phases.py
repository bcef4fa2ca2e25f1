#!/usr/bin/env python3
"""The production stack's two phases, created from nothing and destroyed, as a user runs them.

    bench/phases.py PRODUCTION_BINARY --runs R

Needs AWS_ENDPOINT_URL at a private moto (reset before each run, its pid in BENCH_MOTO_PID),
the local Docker engine in swarm mode with the test images (.ci/test-env), and the node image
registered in moto (.ci/moto-node-image, run here after each reset, then one untimed plan of the
AWS phase that warms moto's backends), and the Lambda zips built
(`cargo run --example build-functions`; taken from target/lambda as prebuilt, INFRA_LAMBDA_DIR). Each step is one process of
the deploy program, `--target live --only aws|swarm apply|destroy --auto-approve --json`:
wall time, the process's CPU time (rusage), moto's and dockerd's CPU time over the step (from
/proc), and the API calls (the plan's reads and the apply's, from the JSON). One JSON line per
step and run on stdout.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

STEPS = [("create", "aws"), ("create", "swarm"), ("destroy", "swarm"), ("destroy", "aws")]


def cpu_ms(pid):
    """user + system CPU time of a process, ms; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in rest[11:13]) * 1000.0 / tick


def pid_of(name):
    out = subprocess.run(["pidof", name], capture_output=True, text=True).stdout.split()
    return out[0] if out else None


def reset_moto(endpoint):
    req = urllib.request.Request(endpoint + "/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=30).read()


def step(binary, stack, phase, only, env):
    verb = "apply" if phase == "create" else "destroy"
    args = [binary, "--target", "live", "--stack", stack, "--only", only, verb, "--auto-approve", "--json"]
    if verb == "destroy" and only == "aws":
        args += ["--allow-destroy", "aws_vpc.main"]  # the stack protects its VPC (as tests/infra/live.rs)
    moto, dockerd = os.environ.get("BENCH_MOTO_PID"), pid_of("dockerd")
    m0, d0 = cpu_ms(moto) if moto else None, cpu_ms(dockerd) if dockerd else None
    t = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate(timeout=900)
    wall = (time.monotonic() - t) * 1000.0
    # the child's rusage: Popen waited for it; os.times() accumulates waited-for children
    m1, d1 = cpu_ms(moto) if moto else None, cpu_ms(dockerd) if dockerd else None
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-4000:])
        raise SystemExit(f"phases.py: {' '.join(args[1:])} exited {proc.returncode}")
    doc = json.loads(out)
    plan, report = doc.get("plan", {}), doc.get("report", {})
    reads = sum(r.get("api_calls", 0) for r in plan.get("reads", []))
    applied = sum(report.get("api_calls", {}).values())
    summary = plan.get("summary", {})
    return {
        "phase": phase, "only": only, "wall_ms": wall,
        "changes": summary.get("add", 0) + summary.get("change", 0) + summary.get("destroy", 0),
        "read_calls": reads, "apply_calls": applied, "api_calls": reads + applied,
        "reconcile_ms": report.get("duration_ms"),
        "moto_cpu_ms": None if m0 is None or m1 is None else m1 - m0,
        "dockerd_cpu_ms": None if d0 is None or d1 is None else d1 - d0,
    }


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("INFRA_TARGET", "INFRA_ENV")}
    # The Lambda zips, built beforehand (`cargo run --example build-functions`), taken as prebuilt:
    # each process would otherwise run cargo's up-to-date check of the functions' build.
    env["INFRA_LAMBDA_DIR"] = os.path.join(repo, "target", "lambda")
    for run in range(1, runs + 1):
        reset_moto(endpoint)
        subprocess.run([os.path.join(repo, ".ci", "moto-node-image")], check=True, stdout=subprocess.DEVNULL)
        stack = f"ph{os.getpid() % 10000}r{run}"
        # untimed: after a reset moto builds each service's backend on its first request (a cost
        # of the test endpoint, not of the deploy); the AWS phase's plan makes them
        subprocess.run([binary, "--target", "live", "--stack", stack, "--only", "aws", "plan"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for phase, only in STEPS:
            before = os.times()
            line = step(binary, stack, phase, only, env)
            after = os.times()
            line["client_cpu_ms"] = ((after.children_user - before.children_user)
                                     + (after.children_system - before.children_system)) * 1000.0
            line["run"] = run
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
