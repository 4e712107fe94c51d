"""The benchmark behind `scripts/bench`: the task manager beside the Redis ceiling and beside
BullMQ, on the same machine, the same redis-server, in the same run.

Every number is measured here and printed with the machine and the settings. Redis time per
task comes from `INFO commandstats` (the time Redis spent in commands, scripts included)
and Redis CPU from `INFO cpu`; process CPU from /proc/<pid>/stat. Each process this starts
is stopped when it ends, whatever happens.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / os.environ.get("BENCH_PROFILE", "release")
PEER = ROOT / "scripts" / "lib" / "bullmq"
TICK = os.sysconf("SC_CLK_TCK")


def free_port(bus=False):
    """A port nobody listens on; with `bus`, one whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not bus:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                    return port
                except OSError:
                    pass
    raise SystemExit("bench: no free port")


class Processes:
    """Every process started, stopped on exit."""

    def __init__(self):
        self.children = []

    def start(self, args, **kwargs):
        child = subprocess.Popen(args, **kwargs)
        self.children.append(child)
        return child

    def stop(self, child, timeout=10):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def stop_all(self):
        for child in reversed(self.children):
            self.stop(child)


def wait_until(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: timed out waiting for {what}")


def cli(port, *words):
    return subprocess.run(
        ["redis-cli", "-p", str(port), *map(str, words)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout


def info(port, section):
    fields = {}
    for line in cli(port, "INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def redis_usage(port):
    """(µs in scripts, seconds of CPU) of one Redis so far. The commands a script calls are
    counted in commandstats both on their own and in the script's time, so only the
    scripts are summed; the CPU counts everything (networking and parsing too)."""
    usec = 0
    for key, value in info(port, "commandstats").items():
        if key in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall"):
            stats = dict(part.split("=", 1) for part in value.split(","))
            usec += int(stats["usec"])
    cpu = info(port, "cpu")
    return usec, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def process_cpu(pid):
    """Seconds of CPU of a process (user + system) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Redis:
    """A redis-server on a free port, without persistence unless asked for."""

    def __init__(self, procs, work, aof=False, cluster=False):
        self.port = free_port(bus=cluster)
        self.dir = Path(work) / f"redis-{self.port}"
        self.dir.mkdir()
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--save", "", "--loglevel", "warning",
                "--appendonly", "yes" if aof else "no"]
        if aof:
            args += ["--appendfsync", "everysec"]
        if cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        self.process = procs.start(args, stdout=subprocess.DEVNULL)
        wait_until("redis-server", self.ping)

    def ping(self):
        try:
            return cli(self.port, "PING").strip() == "PONG"
        except subprocess.CalledProcessError:
            return False

    def reset(self):
        cli(self.port, "FLUSHALL")
        cli(self.port, "CONFIG", "RESETSTAT")


def start_cluster(procs, work, masters):
    nodes = [Redis(procs, work, cluster=True) for _ in range(masters)]
    subprocess.run(
        ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
         "--cluster-yes"],
        capture_output=True, check=True, timeout=60,
    )
    wait_until("the cluster", lambda: all(
        "cluster_state:ok" in cli(n.port, "CLUSTER", "INFO") for n in nodes))
    return nodes


class Server:
    """A taskmanager-server process on `sets`."""

    def __init__(self, procs, work, sets):
        self.procs = procs
        self.metrics = free_port()
        config = Path(work) / "stack.yaml"
        config.write_text("# benchmark: every setting comes from --set\n")
        self.out = Path(work) / f"server-{self.metrics}.out"
        args = [str(BIN / "taskmanager-server"), "--config", str(config),
                "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{self.metrics}"]
        for s in sets:
            args += ["--set", s]
        with open(self.out, "w") as out:
            self.process = procs.start(args, stdout=out, stderr=subprocess.STDOUT)
        wait_until("the server to listen", lambda: "listening on" in self.out.read_text())
        line = next(l for l in self.out.read_text().splitlines() if "listening on" in l)
        self.address = "http://" + line.rsplit(" ", 1)[1]
        wait_until("the server to be ready", self.ready)

    def ready(self):
        try:
            url = f"http://127.0.0.1:{self.metrics}/readyz"
            with urllib.request.urlopen(url, timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self):
        self.procs.stop(self.process)


def server_sets(redis_sets, workers, extra=()):
    return [*redis_sets, "redis.auth.enabled=false", "server.simulation.duration=0s",
            "server.simulation.failure_rate=0", f"server.workers.concurrency={workers}",
            "server.log.level=warn", "observability.tracing.enabled=false",
            "server.limits.max_streams=200000", "server.limits.max_in_flight=100000",
            *extra]


def standalone_sets(redis):
    return ["redis.mode=external", "redis.host=127.0.0.1", f"redis.port={redis.port}"]


def cluster_sets(nodes, shards):
    seeds = ", ".join(f"127.0.0.1:{n.port}" for n in nodes)
    return ["redis.mode=cluster", f"redis.cluster.nodes=[{seeds}]",
            f"redis.cluster.shards={shards}"]


def load(work, address, tasks, producers, *flags):
    """One `taskmanager-client load` run: its JSON report."""
    config = Path(work) / "stack.yaml"
    # Tracing off, as for the server: otherwise the client would trace every call (and
    # send the trace context with it) to a Tempo that is not there.
    args = [str(BIN / "taskmanager-client"), "--json", "--config", str(config),
            "--set", "observability.tracing.enabled=false",
            "--address", address, "load", "--tasks", str(tasks),
            "--concurrency", str(producers), *flags]
    out = subprocess.run(args, capture_output=True, text=True, timeout=900).stdout
    reports = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not reports:
        raise SystemExit(f"bench: the load client printed no report:\n{out}")
    return reports[-1]


def measured(servers, redises, run):
    """Runs `run()` and returns its result with Redis and process usage over it."""
    before_redis = [redis_usage(r.port) for r in redises]
    before_cpu = [process_cpu(p.pid) for p in servers]
    result = run()
    after_redis = [redis_usage(r.port) for r in redises]
    after_cpu = [process_cpu(p.pid) for p in servers]
    usage = {
        "redis_usec": [a[0] - b[0] for a, b in zip(after_redis, before_redis)],
        "redis_cpu_s": [a[1] - b[1] for a, b in zip(after_redis, before_redis)],
        "process_cpu_s": [a - b for a, b in zip(after_cpu, before_cpu)],
    }
    return result, usage


def ours(procs, work, redises, redis_sets, args, servers=1, workers=None, rate=None,
         tasks=None, producers=None):
    """The task manager on `redises`: `servers` processes, producers split between them,
    every task streamed to its end. Returns one row of numbers."""
    workers = workers or args.workers
    tasks = tasks or args.tasks
    producers = producers or args.producers
    for r in redises:
        r.reset()
    started = [Server(procs, work, server_sets(redis_sets, workers)) for _ in range(servers)]
    # One priority, as the peer's jobs have none: priority then FIFO makes a mixed load's
    # low tasks wait behind every high one.
    flags = ["--detach", "--priority", "medium"] + (
        ["--rate", str(rate / servers)] if rate else [])
    share = tasks // servers
    begun = time.monotonic()

    def run():
        with ThreadPoolExecutor(servers) as pool:
            runs = [pool.submit(load, work, s.address, share, max(1, producers // servers),
                                *flags) for s in started]
            return [r.result() for r in runs]

    reports, usage = measured([s.process for s in started], redises, run)
    wall = time.monotonic() - begun
    for s in started:
        s.stop()
    done = sum(r["completed"] for r in reports)
    failed = sum(r["failed"] + r["rejected"] for r in reports)
    if done != share * servers or failed:
        raise SystemExit(f"bench: {done} of {share * servers} tasks completed, {failed} failed")
    latency = reports[0]["end_to_end_latency_ms"] or {}
    return {
        "tasks": done, "failed": failed,
        "tasks_per_s": done / max(r["elapsed_s"] for r in reports),
        "wall_s": wall,
        "p50_ms": latency.get("p50"), "p99_ms": latency.get("p99"),
        "redis_usec_per_task": [u / max(done, 1) for u in usage["redis_usec"]],
        "redis_cpu_usec_per_task": [c * 1e6 / max(done, 1) for c in usage["redis_cpu_s"]],
        "server_cpu_usec_per_task": sum(usage["process_cpu_s"]) * 1e6 / max(done, 1),
    }


def install_peer(cache):
    """BullMQ, pinned by scripts/lib/bullmq/package-lock.json, in `cache` (outside the
    repository); the path of its folder."""
    lock = (PEER / "package-lock.json").read_text()
    folder = cache / "bullmq"
    stamp = folder / ".lock"
    if stamp.exists() and stamp.read_text() == lock:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in ("package.json", "package-lock.json", "producer.mjs", "worker.mjs"):
        shutil.copy(PEER / name, folder / name)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--silent"],
                   cwd=folder, check=True, timeout=600)
    stamp.write_text(lock)
    return folder


def peer_row(procs, work, redis, folder, args):
    redis.reset()
    worker = procs.start(["node", "worker.mjs", str(redis.port), str(args.tasks),
                          str(args.workers)], cwd=folder, stdout=subprocess.PIPE, text=True)
    if worker.stdout.readline().strip() != "ready":
        raise SystemExit("bench: the BullMQ worker did not start")
    before_redis = redis_usage(redis.port)
    before_worker = process_cpu(worker.pid)
    producer = procs.start(
        ["node", "producer.mjs", str(redis.port), str(args.tasks), str(args.producers)],
        cwd=folder, stdout=subprocess.PIPE, text=True)
    # The worker's CPU is read before it exits, once it has printed its summary.
    summary = json.loads(worker.stdout.readline())
    worker_cpu = process_cpu(worker.pid) - before_worker
    produced_line = producer.stdout.readline()
    producer_cpu = process_cpu(producer.pid)
    produced = json.loads(produced_line)
    after_redis = redis_usage(redis.port)
    procs.stop(producer)
    procs.stop(worker)
    done = summary["completed"]
    if done != args.tasks:
        raise SystemExit(f"bench: BullMQ completed {done} of {args.tasks} jobs")
    wall = (summary["last_completed_ms"] - produced["started_ms"]) / 1000
    return {
        "tasks": done, "failed": summary["failed"],
        "tasks_per_s": done / wall, "wall_s": wall,
        "p50_ms": summary["latency_ms"]["p50"], "p99_ms": summary["latency_ms"]["p99"],
        "redis_usec_per_task": [(after_redis[0] - before_redis[0]) / max(done, 1)],
        "redis_cpu_usec_per_task": [(after_redis[1] - before_redis[1]) * 1e6 / max(done, 1)],
        "server_cpu_usec_per_task": worker_cpu * 1e6 / max(done, 1),
        "producer_cpu_usec_per_task": producer_cpu * 1e6 / max(done, 1),
    }


def fmt_row(name, row):
    redis_us = sum(row["redis_usec_per_task"])
    redis_cpu = sum(row["redis_cpu_usec_per_task"])
    p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}"
    p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}"
    return (f"| {name} | {row['tasks_per_s']:,.0f} | {p50} | {p99} | {redis_us:.1f} | "
            f"{redis_cpu:.1f} | {row['server_cpu_usec_per_task']:.0f} |"
            + ("" if row["failed"] == 0 else f" {row['failed']} failed"))


HEADER = ("| system | tasks/s | p50 ms | p99 ms | Redis µs/task in scripts | "
          "Redis CPU µs/task | server CPU µs/task (BullMQ: its worker) |\n"
          "|---|---|---|---|---|---|---|")


def ceiling(redis, producers, requests):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(redis.port), "-q", "-n", str(requests),
         "-c", str(producers), "EVAL",
         "redis.call('INCR', KEYS[1]); redis.call('RPUSH', KEYS[2], ARGV[1]); "
         "return redis.call('PUBLISH', KEYS[3], ARGV[1])",
         "3", "bench:n", "bench:list", "bench:chan", "x"],
        capture_output=True, text=True, check=True, timeout=300).stdout
    line = [l for l in out.replace("\r", "\n").splitlines() if "requests per second" in l][-1]
    return float(line.rsplit(" requests per second", 1)[0].rsplit(" ", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1, help="rounds of ours and the peer")
    parser.add_argument("--no-peer", action="store_true", help="skip BullMQ")
    parser.add_argument("--no-cluster", action="store_true", help="skip the Redis Cluster")
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--scaling", action="store_true",
                        help="also 1/2/4 servers and worker concurrency 8/50/200")
    parser.add_argument("--latency-tasks", type=int, default=5000)
    parser.add_argument("--cache", type=Path, default=Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskmanager-bench")
    args = parser.parse_args()

    procs = Processes()
    work = tempfile.mkdtemp(prefix="taskmanager-bench-")
    try:
        run(procs, work, args)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def run(procs, work, args):
    redis = Redis(procs, work)
    version = info(redis.port, "server")["redis_version"]
    folder = None
    if not args.no_peer:
        folder = install_peer(args.cache)
    print("== machine")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown")
    print(f"cpu: {cpu} ({os.cpu_count()} cores)")
    memory = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    print(f"memory: {int(memory) / 1024 / 1024:.1f} GiB")
    print(f"redis: {version}, no persistence")
    if folder:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
        peer = json.loads((folder / "node_modules/bullmq/package.json").read_text())["version"]
        print(f"peer: BullMQ {peer} on Node.js {node.strip()}")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    print(f"commit: {commit}, {BIN.name} build"
          + ("" if BIN.name == "release" else " (numbers not comparable: a check only)"))
    print(f"workload: {args.tasks} no-op tasks of one priority, {args.producers} concurrent "
          "producers "
          f"each submitting one task per call, worker concurrency {args.workers}; wall time from "
          "the first submission to the last completion; ours streams every task to "
          "COMPLETED")
    sys.stdout.flush()

    print("\n== Redis ceiling (redis-benchmark, one script of INCR+RPUSH+PUBLISH)")
    eval_rps = ceiling(redis, args.producers, max(20000, args.tasks * 5))
    print(f"{eval_rps:,.0f} scripts/s: {eval_rps / 3:,.0f} task lifecycles/s at 3 scripts each")
    sys.stdout.flush()

    print(f"\n== throughput, one Redis ({args.runs} round(s), alternating)")
    print(HEADER)
    rows = {"ours": [], "peer": []}
    for _ in range(args.runs):
        row = ours(procs, work, [redis], standalone_sets(redis), args)
        rows["ours"].append(row)
        print(fmt_row("task manager, one server", row))
        sys.stdout.flush()
        if folder:
            row = peer_row(procs, work, redis, folder, args)
            rows["peer"].append(row)
            print(fmt_row("BullMQ (producer + worker process)", row))
            sys.stdout.flush()
    if rows["peer"]:
        ours_median = statistics.median(r["tasks_per_s"] for r in rows["ours"])
        peer_median = statistics.median(r["tasks_per_s"] for r in rows["peer"])
        print(f"ratio (median tasks/s, ours / BullMQ): {ours_median / peer_median:.2f}")

    print("\n== latency (one server, every task streamed to COMPLETED)")
    row = ours(procs, work, [redis], standalone_sets(redis), args, rate=1000,
               tasks=args.latency_tasks)
    print(f"offered 1,000 tasks/s ({args.latency_tasks} tasks): p50 {row['p50_ms']:.2f} ms, "
          f"p99 {row['p99_ms']:.2f} ms")
    row = ours(procs, work, [redis], standalone_sets(redis), args, tasks=300, producers=1)
    print(f"one task at a time on an idle server (300 tasks): p50 {row['p50_ms']:.2f} ms, "
          f"p99 {row['p99_ms']:.2f} ms")
    sys.stdout.flush()

    if not args.no_cluster:
        print(f"\n== Redis Cluster: {args.masters} masters on this machine, "
              f"{args.shards} shards, one server")
        nodes = start_cluster(procs, work, args.masters)
        row = ours(procs, work, nodes, cluster_sets(nodes, args.shards), args)
        print(HEADER)
        print(fmt_row(f"task manager, {args.masters}-master cluster", row))
        single = statistics.median(sum(r["redis_cpu_usec_per_task"]) for r in rows["ours"])
        per_node = row["redis_cpu_usec_per_task"]
        print("Redis CPU µs/task per node: " + ", ".join(f"{c:.1f}" for c in per_node)
              + f" (sum {sum(per_node):.1f}; one Redis: {single:.1f})")
        total = sum(per_node)
        print("projection, Redis-bound, a core per master: "
              + ", ".join(f"{n} masters {n * 1e6 / total:,.0f} tasks/s" for n in (1, 3, 6, 12)))
        for n in nodes:
            procs.stop(n.process)
        sys.stdout.flush()

    if args.scaling:
        print("\n== scaling on one Redis")
        print(HEADER)
        for servers in (1, 2, 4):
            row = ours(procs, work, [redis], standalone_sets(redis), args, servers=servers)
            print(fmt_row(f"{servers} server process(es), {args.workers} workers each", row))
            sys.stdout.flush()
        for workers in (8, 50, 200):
            row = ours(procs, work, [redis], standalone_sets(redis), args, workers=workers)
            print(fmt_row(f"one server, worker concurrency {workers}", row))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
