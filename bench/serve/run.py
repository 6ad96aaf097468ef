#!/usr/bin/env python3
"""The serving benchmark: `kiln serve` against the MLServer + PyTorch peer, same machine, same run.

Both servers run side by side on 127.0.0.1 and serve the same two models (the MLP 784-512-512-10
and the digits CNN, seeded random weights). Each configuration — model × protocol (HTTP, gRPC) ×
concurrency (1, 8, 32) — is driven closed-loop for --seconds against Kiln and then the peer (the
order alternates per round), --rounds times; ratios are taken per round (paired) and the median
reported. HTTP load: wrk with bench/serve/wrk_infer.lua (JSON bodies); gRPC load: serve_bench
grpc-load (tonic, raw tensors). Kiln's server-side split comes from its /metrics deltas, as
Triton's perf_analyzer reads them: average batch size, queue and compute time.

Stdlib only; bench/serve.sh builds the binaries and the peer's venv, then runs this.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KILN_HTTP, KILN_GRPC = 28000, 28001
PEER_HTTP, PEER_GRPC = 18080, 18081  # bench/serve/peer/settings.json
MODELS = {"mlp": "1,784", "cnn": "1,1,8,8"}
CONCURRENCY = [1, 8, 32]


def wait_ready(port, what, seconds=120):
    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not become ready on port {port}")


def kiln_metrics():
    """Kiln's counters, by (metric, model)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{KILN_HTTP}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^(nv_\w+)\{model="(\w+)",version="\d+"\} (\d+)$', text, re.M):
        out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


def server_split(before, after, model):
    """perf_analyzer's server-side view of one run, from two scrapes of /metrics."""
    d = lambda name: after.get((name, model), 0) - before.get((name, model), 0)
    requests, executions = d("nv_inference_request_success"), d("nv_inference_exec_count")
    if not requests or not executions:
        return None
    return {
        "avg_batch": round(d("nv_inference_count") / executions, 2),
        "request_us": round(d("nv_inference_request_duration_us") / requests, 1),
        "queue_us": round(d("nv_inference_queue_duration_us") / requests, 1),
        "compute_per_batch_us": round(d("nv_inference_compute_infer_duration_us") / executions, 1),
    }


def load(args, proto, port, model, concurrency, body):
    """One closed-loop run; the load generator's JSON line as a dict."""
    if proto == "http":
        threads = 1 if concurrency == 1 else 2
        cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{args.seconds}s", "--latency",
               "-s", os.path.join(HERE, "wrk_infer.lua"),
               f"http://127.0.0.1:{port}/v2/models/{model}/infer"]
        env = dict(os.environ, WRK_BODY=body)
    else:
        cmd = [args.serve_bench, "grpc-load", "--addr", f"127.0.0.1:{port}", "--model", model,
               "--shape", MODELS[model], "--concurrency", str(concurrency),
               "--seconds", str(args.seconds)]
        env = None
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        sys.exit(f"{' '.join(cmd)}: {result['errors']} failed requests")
    return result


def cpu():
    info = open("/proc/cpuinfo").read()
    name = re.search(r"model name\s*:\s*(.*)", info).group(1).strip()
    isa = "AVX-512" if "avx512f" in info else ("AVX2" if "avx2" in info else "no AVX2")
    return name, isa


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--serve-bench", required=True)
    ap.add_argument("--peer-venv", required=True)
    ap.add_argument("--seconds", type=int, default=5)  # wrk takes whole seconds
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="kiln-serve-bench.")
    repo = os.path.join(work, "repo")
    subprocess.run([args.serve_bench, "models", "--out", repo], check=True)
    bodies = {}
    for model, shape in MODELS.items():
        bodies[model] = os.path.join(work, f"{model}.json")
        subprocess.run([sys.executable, os.path.join(HERE, "make_body.py"), "--name", "input__0",
                        "--shape", shape, "--out", bodies[model]], check=True,
                       stdout=subprocess.DEVNULL)

    logs = open(os.path.join(work, "servers.log"), "w")
    kiln = subprocess.Popen([args.kiln, "serve", "--model-repository", repo, "--http-port",
                             str(KILN_HTTP), "--grpc-port", str(KILN_GRPC), "--poll-secs", "0"],
                            stdout=logs, stderr=logs)
    peer = subprocess.Popen([os.path.join(args.peer_venv, "bin", "mlserver"), "start",
                             os.path.join(HERE, "peer")], stdout=logs, stderr=logs)
    rows = []
    try:
        wait_ready(KILN_HTTP, "kiln serve")
        wait_ready(PEER_HTTP, "MLServer")
        servers = {"kiln": (KILN_HTTP, KILN_GRPC), "peer": (PEER_HTTP, PEER_GRPC)}
        for model in MODELS:  # warm both up: first requests load lazily
            for name, (http, grpc) in servers.items():
                load(args, "http", http, model, 1, bodies[model])
        for r in range(args.rounds):
            order = ["kiln", "peer"] if r % 2 == 0 else ["peer", "kiln"]
            for model in MODELS:
                for proto in ("http", "grpc"):
                    for c in CONCURRENCY:
                        row = {"round": r, "model": model, "protocol": proto, "concurrency": c}
                        for name in order:
                            http, grpc = servers[name]
                            before = kiln_metrics() if name == "kiln" else None
                            result = load(args, proto, http if proto == "http" else grpc,
                                          model, c, bodies[model])
                            if name == "kiln":
                                result["server"] = server_split(before, kiln_metrics(), model)
                            row[name] = result
                        rows.append(row)
                        print(f"round {r} {model} {proto} c{c}: kiln {row['kiln']['rps']:.0f}/s "
                              f"p50 {row['kiln']['p50_us']} µs; peer {row['peer']['rps']:.0f}/s "
                              f"p50 {row['peer']['p50_us']} µs", flush=True)
    finally:
        for p in (kiln, peer):
            p.terminate()
        for p in (kiln, peer):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    summary = summarize(rows)
    name, isa = cpu()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "crates"],
                             cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if changed:
        commit += "-dirty"  # the code measured is not exactly that commit's
    result = {
        "benchmark": "serve",
        "date": time.strftime("%Y-%m-%dT%H:%M", time.gmtime()),
        "commit": commit,
        "machine": {"cpu": name, "isa": isa, "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "method": {"seconds": args.seconds, "rounds": args.rounds,
                   "http_load": "wrk + bench/serve/wrk_infer.lua (JSON tensors)",
                   "grpc_load": "serve_bench grpc-load (tonic, raw_input_contents)",
                   "peer": "MLServer + PyTorch eager (bench/serve/peer)"},
        "summary": summary,
        "rounds": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")


def summarize(rows):
    """Medians over rounds per configuration, paired ratios, and the acceptance figures."""
    configs = {}
    for row in rows:
        configs.setdefault((row["model"], row["protocol"], row["concurrency"]), []).append(row)
    table = []
    for (model, proto, c), rs in sorted(configs.items()):
        med = lambda side, key: statistics.median(r[side][key] for r in rs)
        splits = [r["kiln"]["server"] for r in rs if r["kiln"].get("server")]
        split = {k: statistics.median(s[k] for s in splits) for k in splits[0]} if splits else None
        table.append({
            "model": model, "protocol": proto, "concurrency": c,
            "kiln_rps": round(med("kiln", "rps")), "peer_rps": round(med("peer", "rps")),
            "kiln_p50_us": med("kiln", "p50_us"), "peer_p50_us": med("peer", "p50_us"),
            "kiln_p99_us": med("kiln", "p99_us"), "peer_p99_us": med("peer", "p99_us"),
            "rps_ratio": round(statistics.median(r["kiln"]["rps"] / r["peer"]["rps"] for r in rs), 2),
            "p50_ratio": round(statistics.median(r["kiln"]["p50_us"] / r["peer"]["p50_us"] for r in rs), 3),
            "kiln_server": split,
        })
    find = lambda m, p, c: next(t for t in table if (t["model"], t["protocol"], t["concurrency"]) == (m, p, c))
    acceptance = {}
    for proto in ("http", "grpc"):
        c1, c32 = find("mlp", proto, 1), find("mlp", proto, 32)
        compute = c1["kiln_server"]["compute_per_batch_us"] if c1["kiln_server"] else None
        acceptance[proto] = {
            "mlp_c32_over_c1_rps": round(c32["kiln_rps"] / c1["kiln_rps"], 2),
            "mlp_c32_avg_batch": c32["kiln_server"]["avg_batch"] if c32["kiln_server"] else None,
            "mlp_c1_p50_vs_peer": c1["p50_ratio"],
            "mlp_c32_rps_vs_peer": c32["rps_ratio"],
            "mlp_c1_overhead_us": round(c1["kiln_p50_us"] - compute, 1) if compute else None,
        }
    return {"table": table, "acceptance": acceptance}


if __name__ == "__main__":
    main()
