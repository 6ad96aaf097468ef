#!/usr/bin/env python3
"""Kiln against onnxruntime on the same models, same machine, same run, 2 threads each.

Kiln exports the models (`onnx_bench export`); onnxruntime runs those ONNX files, Kiln runs
its own compiled graph of the same weights (`onnx_bench time`, a fresh process per
measurement). With torch installed, torchvision's ResNet-50 and MobileNetV2 are exported by
PyTorch, and both run that file (Kiln through its importer). Each round times every (model, batch) on both, alternating which goes first;
the ratio Kiln / onnxruntime is taken per round and the median reported. Timing rule on both
sides: 3 warm-up calls, then calls until 2 s have passed (10 to 200), the median.

    run.py --onnx-bench target/release/onnx_bench --rounds 3 --out bench/results/onnx-….json
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort

CASES = [("mlp", 1), ("mlp", 8), ("encoder", 1), ("encoder", 8)]
FEATURES = {"mlp": [784], "encoder": [128, 256]}
# Models PyTorch exports (torchvision, random weights, TorchScript exporter): Kiln imports
# the same file onnxruntime runs. Timed when torch is installed.
IMPORTED = {"resnet50": [3, 224, 224], "mobilenet_v2": [3, 224, 224]}


def export_imported(work):
    """Exports the IMPORTED models into `work`; their names, or none without torch."""
    try:
        import torch
        import torchvision
    except ImportError:
        print("torch/torchvision not installed: imported models skipped")
        return []
    torch.manual_seed(0)
    for name, features in IMPORTED.items():
        model = getattr(torchvision.models, name)().eval()
        torch.onnx.export(model, (torch.randn(1, *features),), os.path.join(work, f"{name}.onnx"),
                          dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"},
                                                                 "output": {0: "batch"}})
    return list(IMPORTED)


def ort_median_us(session, x):
    feed = {session.get_inputs()[0].name: x}
    for _ in range(3):
        session.run(None, feed)
    samples, started = [], time.perf_counter()
    while len(samples) < 10 or (len(samples) < 200 and time.perf_counter() - started < 2.0):
        t = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    return samples[len(samples) // 2]


def kiln_median_us(binary, model, batch, work):
    if model in IMPORTED:
        what = ["--file", os.path.join(work, f"{model}.onnx"),
                "--shape", ",".join(map(str, IMPORTED[model]))]
    else:
        what = ["--model", model]
    out = subprocess.run([binary, "time", *what, "--batch", str(batch)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_us"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx-bench", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kiln-onnx-bench.")
    subprocess.run([args.onnx_bench, "export", "--out", work], check=True)
    imported = export_imported(work)
    cases = CASES + [(m, b) for m in imported for b in (1, 8)]
    shapes = {**FEATURES, **IMPORTED}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    sessions = {m: ort.InferenceSession(os.path.join(work, f"{m}.onnx"), options,
                                        providers=["CPUExecutionProvider"])
                for m in list(FEATURES) + imported}
    rng = np.random.default_rng(0)
    rows = []
    for r in range(args.rounds):
        for model, batch in cases:
            x = rng.standard_normal([batch] + shapes[model]).astype(np.float32)
            if r % 2 == 0:
                k = kiln_median_us(args.onnx_bench, model, batch, work)
                o = ort_median_us(sessions[model], x)
            else:
                o = ort_median_us(sessions[model], x)
                k = kiln_median_us(args.onnx_bench, model, batch, work)
            rows.append({"round": r, "model": model, "batch": batch, "kiln_us": k, "ort_us": o})
            print(f"round {r} {model} b{batch}: Kiln {k:.0f} µs, onnxruntime {o:.0f} µs, "
                  f"ratio {k / o:.3f}", flush=True)
    summary = []
    for model, batch in cases:
        rs = [x for x in rows if (x["model"], x["batch"]) == (model, batch)]
        summary.append({
            "model": model, "batch": batch,
            "kiln_us": statistics.median(x["kiln_us"] for x in rs),
            "ort_us": statistics.median(x["ort_us"] for x in rs),
            "kiln_over_ort": round(statistics.median(x["kiln_us"] / x["ort_us"] for x in rs), 3),
        })
    info = open("/proc/cpuinfo").read()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "crates"],
                      capture_output=True, text=True).stdout.strip():
        commit += "-dirty"  # the code measured is not exactly that commit's
    result = {
        "benchmark": "onnx",
        "date": time.strftime("%Y-%m-%dT%H:%M", time.gmtime()),
        "commit": commit,
        "machine": {"cpu": re.search(r"model name\s*:\s*(.*)", info).group(1).strip(),
                    "isa": "AVX-512" if "avx512f" in info else "AVX2",
                    "cores": os.cpu_count()},
        "onnxruntime": ort.__version__,
        "threads": 2,
        "rounds": args.rounds,
        "summary": summary,
        "runs": rows,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
