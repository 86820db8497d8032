"""Text-only checks over HTTP, recorded in PostgreSQL, driven by an existing load tool on
this machine: requests per second and latency percentiles for

* the baseline: one ``consentry serve`` process, each check committed on its own;
* the fleet set-up: ``consentry serve --workers N`` with group commit
  (``CONSENTRY_BATCH_RECORDS=1``),

printed in the same run, against the goal of at least 1,000 requests/s with p99 under
50 ms. The load tool shares the machine's cores with the servers; the figures say so.

    python bench/bench_http.py [--seconds 30] [--users 32] [--workers 2] [--tool wrk]

``--tool wrk`` (the default; Debian package ``wrk``, ``make bench-deps``) is a load tool
written in C; ``--tool locust`` is the Python one (FastHttpUser). Both keep ``--users``
connections busy with no pause (closed loop), each request a new prompt. On this
machine they measured the same within its noise (the run-to-run spread is about 15%).

Needs CONSENTRY_BENCH_POSTGRES_URL (or CONSENTRY_TEST_POSTGRES_URL): each configuration
gets a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from scratch_db import scratch_postgres

from consentry.access import Scope, create_api_key

GOAL_RPS, GOAL_P99_MS = 1000.0, 50.0
LOCUSTFILE = '''
import itertools, os
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

THINGS = ["lighthouse", "bicycle", "teapot", "sailing boat", "kite", "red barn", "tram",
          "violin", "cactus", "stone bridge", "owl", "paper lantern"]
STYLES = ["a watercolour of a", "a pencil sketch of a", "a photo of a", "an oil painting of a"]
PROMPTS = [f"{s} {t}" for s in STYLES for t in THINGS]
counter = itertools.count()

class Platform(FastHttpUser):
    wait_time = constant(0)

    @task
    def check(self):
        i = next(counter)
        self.client.post("/v1/check/generation", name="check",
                         json={"prompt": PROMPTS[i % len(PROMPTS)],
                               "account": f"acct-{i % 500}"},
                         headers={"Authorization": "Bearer " + os.environ["BENCH_KEY"]})
'''


# wrk: each thread builds its requests from a counter (every request a new prompt) and the
# summary is printed as JSON for this script to read.
WRK_SCRIPT = r'''
local things = {"lighthouse", "bicycle", "teapot", "sailing boat", "kite", "red barn",
                "tram", "violin", "cactus", "stone bridge", "owl", "paper lantern"}
local styles = {"a watercolour of a", "a pencil sketch of a", "a photo of a",
                "an oil painting of a"}
local counter, offset = 0, 0
local key = os.getenv("BENCH_KEY")
local threads = {}
function setup(thread)
  thread:set("offset", #threads * 1000003)
  table.insert(threads, thread)
end
function request()
  counter = counter + 1
  local i = counter + offset
  local prompt = styles[i % #styles + 1] .. " " .. things[i % #things + 1] .. " " .. i
  local body = string.format('{"prompt": "%s", "account": "acct-%d"}', prompt, i % 500)
  return wrk.format("POST", "/v1/check/generation",
                    {["Content-Type"] = "application/json",
                     ["Authorization"] = "Bearer " .. key}, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %f, "p50": %f, "p95": %f, ' ..
    '"p99": %f, "failures": %d}\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, e.connect + e.read + e.write + e.status + e.timeout))
end
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, data: Path, port: int, workers: int, batch: bool,
           log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONSENTRY_DATABASE_URL": url, "CONSENTRY_DATA_DIR": str(data),
           "CONSENTRY_SECRET_KEY": "bench-secret-key-bench-secret-key-0123456789",
           "CONSENTRY_BATCH_RECORDS": "1" if batch else "0"}
    command = [sys.executable, "-m", "consentry", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def _wrk(work: Path, host: str, key: str, seconds: int, users: int) -> dict[str, float]:
    (work / "checks.lua").write_text(WRK_SCRIPT)
    done = subprocess.run(
        ["wrk", "-t", "1", "-c", str(users), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(work / "checks.lua"), host],
        env={**os.environ, "BENCH_KEY": key}, check=True, capture_output=True, text=True,
        timeout=seconds + 60)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"rps": found["requests"] / found["seconds"], "p50": found["p50"],
            "p95": found["p95"], "p99": found["p99"], "requests": found["requests"],
            "failures": found["failures"]}


def _locust(work: Path, host: str, key: str, seconds: int, users: int) -> dict[str, float]:
    (work / "locustfile.py").write_text(LOCUSTFILE)
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(work / "locustfile.py"),
         "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
         "--host", host, "--csv", str(work / "out"), "--only-summary",
         "--loglevel", "WARNING"],
        env={**os.environ, "BENCH_KEY": key}, check=True, capture_output=True,
        timeout=seconds + 120)
    with (work / "out_stats.csv").open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return {"rps": float(row["Requests/s"]), "p50": float(row["50%"]),
            "p95": float(row["95%"]), "p99": float(row["99%"]),
            "requests": float(row["Request Count"]), "failures": float(row["Failure Count"])}


def _run(name: str, base_url: str, *, workers: int, batch: bool, seconds: int,
         users: int, tool: str) -> dict[str, float]:
    with scratch_postgres(base_url) as db, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        _, key = create_api_key(db, "bench", [Scope.CHECK])
        port = _free_port()
        server = _serve(db.url, work, port, workers, batch, work / "server.log")
        try:
            host = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=host, headers={"Authorization": f"Bearer {key}"}) as c:
                for i in range(40):  # warm-up: models loaded in every worker
                    c.post("/v1/check/generation", json={"prompt": f"a cup of tea {i}"},
                           timeout=60)
            result = (_wrk if tool == "wrk" else _locust)(work, host, key, seconds, users)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{name:<44} {result['rps']:>9,.0f} {result['p50']:>7.0f} {result['p95']:>7.0f} "
          f"{result['p99']:>7.0f} {int(result['requests']):>9,} {int(result['failures']):>6}",
          flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tool", choices=["wrk", "locust"], default="wrk")
    args = parser.parse_args()
    if args.tool == "wrk" and shutil.which("wrk") is None:
        sys.exit("wrk is not installed: make bench-deps (or --tool locust)")
    url = (os.environ.get("CONSENTRY_BENCH_POSTGRES_URL")
           or os.environ.get("CONSENTRY_TEST_POSTGRES_URL"))
    if not url:
        sys.exit("set CONSENTRY_BENCH_POSTGRES_URL to a PostgreSQL database")
    print(f"machine: {os.cpu_count()} cores (shared by the servers, PostgreSQL and "
          f"{args.tool}); {args.users} connections, {args.seconds} s each, text-only "
          "checks, PostgreSQL")
    print(f"{'configuration':<44} {'req/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'requests':>9} {'fails':>6}")
    base = _run("baseline: 1 process, one commit a check", url, workers=1, batch=False,
                seconds=args.seconds, users=args.users, tool=args.tool)
    fleet = _run(f"{args.workers} workers, group commit", url, workers=args.workers,
                 batch=True, seconds=args.seconds, users=args.users, tool=args.tool)
    print(f"ratio (fleet / baseline): {fleet['rps'] / base['rps']:.2f}x requests/s, "
          f"p99 {fleet['p99']:.0f} vs {base['p99']:.0f} ms")
    ok = fleet["rps"] >= GOAL_RPS and fleet["p99"] < GOAL_P99_MS and not fleet["failures"]
    print(f"goal: >= {GOAL_RPS:,.0f} req/s with p99 < {GOAL_P99_MS:.0f} ms: "
          f"{'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
