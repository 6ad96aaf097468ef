#!/usr/bin/env python3
"""Renders the performance tables of docs/src/performance.md and the README's summary from the
newest benchmark results in bench/results/, so no number in the docs is typed by hand.

    python3 tools/render_performance.py          # rewrite the generated tables in place
    python3 tools/render_performance.py --check  # exit 1 if they differ from the results (CI)

A generated region sits between two marker lines:

    <!-- generated: NAME (tools/render_performance.py; edit bench/results, not this) -->
    ...
    <!-- end generated: NAME -->

Sources (the newest file of each kind, by the date-time in its name):
  bench/results/compare-<date>-<cpu>.json    bench/compare.sh: Kiln eager vs PyTorch eager
  bench/results/eager-vs-compiled-<date>.json bench/eager_vs_compiled.sh: compile vs eager
  bench/results/jax-vs-kiln-<date>.json      bench/jax_vs_kiln.sh: compile vs JAX jit
  bench/results/serve-<date>-<cpu>.json      bench/serve.sh: kiln serve vs MLServer + PyTorch
  bench/results/onnx-<date>-<cpu>.json       bench/onnx.sh: Kiln vs onnxruntime, same models
"""

import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
TARGETS = {
    "docs/src/performance.md": ["kiln-vs-pytorch", "compiled-vs-eager", "kiln-vs-jax",
                                "kiln-serve-vs-mlserver", "kiln-vs-onnxruntime"],
    "docs/src/serving.md": ["kiln-serve-vs-mlserver"],
    "docs/src/onnx.md": ["kiln-vs-onnxruntime"],
    "docs/src/graph-mode.md": ["compiled-vs-eager", "kiln-vs-jax"],
    "README.md": ["summary"],
}

# What each key of bench/compare.sh measures, in words, and its unit.
KEYS = {
    "matmul_256_gflops": ("matmul 256×256×256", "GFLOPS"),
    "matmul_1024_gflops": ("matmul 1024×1024×1024", "GFLOPS"),
    "matmul_2048_gflops": ("matmul 2048×2048×2048", "GFLOPS"),
    "eager_add16_us_per_op": ("one eager op (16-element add)", "µs"),
    "mlp_train_step_ms": ("MLP 784-512-512-10 train step, batch 128, Adam", "ms"),
    "cnn_train_step_ms": ("CNN train step, 64 × 3×32×32 images, SGD", "ms"),
    "gpt_train_step_ms": ("GPT train step (4 layers, 16 × 128 tokens), AdamW", "ms"),
    "peak_rss_mib": ("peak memory after the training workloads", "MiB"),
    "mlp_infer_b1_us": ("MLP inference, batch 1", "µs"),
}
# The README's summary: the workloads a reader compares first.
SUMMARY_KEYS = ["mlp_train_step_ms", "cnn_train_step_ms", "gpt_train_step_ms",
                "mlp_infer_b1_us", "matmul_1024_gflops", "peak_rss_mib"]
STEP_NAMES = {
    "digits": "digits CNN train step (batch 32, Adam)",
    "mlp": "MLP 784-512-512-10 train step (batch 128, Adam)",
    "gpt": "GPT train step (4 layers, 16 × 128 tokens, AdamW)",
}


def newest(pattern):
    """The newest results file matching `pattern` (names sort by their date-time), or None."""
    files = sorted(glob.glob(os.path.join(RESULTS, pattern)))
    return files[-1] if files else None


def load(path):
    with open(path) as f:
        return json.load(f)


def rel(path):
    return os.path.relpath(path, ROOT)


def num(v, digits=3):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return "%.1f" % v
    return ("%%.%dg" % digits) % v if abs(v) < 1 else "%.2f" % v


def speed_words(key, ratio, higher_is_better):
    """`ratio` (kiln/pytorch) as the factor a reader wants: how much faster or smaller."""
    if ratio is None:
        return "–"
    factor = ratio if higher_is_better else 1 / ratio
    good, bad = ("smaller", "larger") if key == "peak_rss_mib" else ("faster", "slower")
    return "%.2f× %s" % (factor if factor >= 1 else 1 / factor, good if factor >= 1 else bad)


def machine_text(m):
    if isinstance(m, dict):
        return "%s, %s cores, %s" % (m.get("cpu"), m.get("cores"), m.get("isa"))
    return str(m)


def date_from_name(path):
    found = re.search(r"(\d{4}-\d{2}-\d{2})T?(\d{2})(\d{2})?", os.path.basename(path))
    if not found:
        return "unknown date"
    day, hh, mm = found.groups()
    return "%s %s:%s UTC" % (day, hh, mm or "00")


def kiln_vs_pytorch(path, keys=None, compact=False):
    r = load(path)
    rows = []
    for key, v in r["keys"].items():
        if key not in KEYS or (keys and key not in keys):
            continue
        what, unit = KEYS[key]
        ratio = v.get("kiln_over_pytorch")
        rows.append((what, unit, v.get("kiln"), v.get("pytorch"), ratio,
                     speed_words(key, ratio, v.get("higher_is_better", False))))
    if keys:
        order = {KEYS[k][0]: i for i, k in enumerate(keys)}
        rows.sort(key=lambda row: order[row[0]])
    out = ["| workload | unit | Kiln | PyTorch | Kiln vs PyTorch |", "|---|---|---:|---:|---|"]
    for what, unit, k, t, ratio, words in rows:
        out.append("| %s | %s | %s | %s | %s |" % (what, unit, num(k), num(t), words))
    source = ("%s; PyTorch %s eager, both at the same threads; %d alternating rounds, medians; "
              "the last column from the median of paired per-round ratios. Commit `%s`, %s, "
              "`%s` (%s)." % (machine_text(r["machine"]), r.get("pytorch", "?"), r["rounds"],
                             r["commit"], r["date"], r["command"].strip(), rel(path)))
    if compact:
        source = "%s, PyTorch %s, %s (`%s`)." % (machine_text(r["machine"]), r.get("pytorch"),
                                                r["date"], rel(path))
    return out + ["", source]


def compiled_vs_eager(path):
    r = load(path)
    out = ["| workload | compiled / eager, quiet | beside a busy process |", "|---|---:|---:|"]
    for name, step in r["train_steps"].items():
        if name == "rounds":
            continue
        out.append("| %s | %s | %s |" % (STEP_NAMES.get(name, name),
                                         num(step["quiet"]["compiled_over_eager"]),
                                         num(step["contended"]["compiled_over_eager"])))
    run = r.get("kiln_train_digits_12_epochs")
    if run:
        out.append("| `kiln train --compile`, bundled digits, 12 epochs | %s | %s |"
                   % (num(run["quiet"]["compiled_over_eager"]),
                      num(run["contended"]["compiled_over_eager"])))
    out += ["", "%s; commit `%s`, %s; `%s` (%s): median of %d paired rounds in one process "
            "(train steps) and of alternating runs (`kiln train`)."
            % (machine_text(r["machine"]), r["commit"], date_from_name(path), r["command"],
               rel(path), r["train_steps"].get("rounds", 0))]
    return out


def kiln_vs_jax(path):
    r = load(path)
    out = ["| workload | Kiln `compile` | JAX `jit` | Kiln / JAX |", "|---|---:|---:|---:|",
           "| MLP 784-512-512-10 train step, batch 128, SGD | %s ms | %s ms | %s |"
           % (num(r["kiln_compiled_mlp_sgd_step_ms"]), num(r["jax_jit_mlp_sgd_step_ms"]),
              num(r["kiln_over_jax"])),
           "", "%s; JAX %s; commit `%s`, %s; `%s` (%s): alternating processes, median of %d "
           "paired ratios." % (machine_text(r["machine"]), r.get("jax"), r["commit"],
                               date_from_name(path), r["command"], rel(path),
                               len(r.get("rounds", [])))]
    return out


def serve_vs_mlserver(path):
    r = load(path)
    out = ["| model | protocol | clients | Kiln infer/s | MLServer infer/s | Kiln p50 / p99 µs "
           "| MLServer p50 / p99 µs | Kiln batch · queue · compute µs |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    names = {"mlp": "MLP 784-512-512-10", "cnn": "digits CNN"}
    whole = lambda v: "{:,}".format(round(v))
    order = lambda t: (list(names).index(t["model"]), t["protocol"] != "http", t["concurrency"])
    for t in sorted(r["summary"]["table"], key=order):
        split = t["kiln_server"]
        out.append("| %s | %s | %d | %s | %s | %s / %s | %s / %s | %s |" % (
            names.get(t["model"], t["model"]), "HTTP" if t["protocol"] == "http" else "gRPC",
            t["concurrency"], whole(t["kiln_rps"]), whole(t["peer_rps"]),
            whole(t["kiln_p50_us"]), whole(t["kiln_p99_us"]), whole(t["peer_p50_us"]),
            whole(t["peer_p99_us"]),
            "%.2f · %s · %s" % (split["avg_batch"], whole(split["queue_us"]),
                                whole(split["compute_per_batch_us"])) if split else "–"))
    a = r["summary"]["acceptance"]["http"]
    out += ["", "At concurrency 1 over HTTP, Kiln's median latency is %s× MLServer's and its "
            "server overhead (p50 minus the model's compute, from `/metrics`) %s µs; at "
            "concurrency 32 it serves %s× MLServer's requests per second, %s× its own at "
            "concurrency 1, with batches of %s on average." % (
                num(a["mlp_c1_p50_vs_peer"]), whole(a["mlp_c1_overhead_us"]),
                num(a["mlp_c32_rps_vs_peer"]), num(a["mlp_c32_over_c1_rps"]),
                num(a["mlp_c32_avg_batch"])),
            "", "%s; commit `%s`, %s; `bench/serve.sh` (%s): closed loops of %d s, %s rounds "
            "alternating Kiln and MLServer, medians (ratios: median of paired rounds). HTTP: "
            "%s; gRPC: %s. Batch, queue and compute: Kiln's `/metrics` over each run."
            % (machine_text(r["machine"]), r["commit"], date_from_name(path), rel(path),
               r["method"]["seconds"], r["method"]["rounds"], r["method"]["http_load"],
               r["method"]["grpc_load"])]
    return out


def kiln_vs_onnxruntime(path):
    r = load(path)
    names = {"mlp": "MLP 784-512-512-10", "encoder": "BERT-like encoder (4 layers, d 256, seq 128)",
             "resnet50": "ResNet-50, 224² (imported)", "mobilenet_v2": "MobileNetV2, 224² (imported)"}
    out = ["| model | batch | Kiln µs | onnxruntime µs | Kiln / onnxruntime |",
           "|---|---:|---:|---:|---:|"]
    for t in r["summary"]:
        out.append("| %s | %d | %s | %s | %s |" % (names.get(t["model"], t["model"]), t["batch"],
                                                   num(t["kiln_us"]), num(t["ort_us"]),
                                                   num(t["kiln_over_ort"])))
    out += ["", "%s; onnxruntime %s; %d threads each; commit `%s`, %s; `bench/onnx.sh` (%s): "
            "onnxruntime runs the ONNX files Kiln exported, Kiln its compiled graph of the same "
            "weights (imported models: both run the file PyTorch exported, Kiln through "
            "`kiln::onnx::load`); median call time, %d rounds alternating which goes first, median of the "
            "paired ratios." % (machine_text(r["machine"]), r["onnxruntime"], r["threads"],
                                r["commit"], date_from_name(path), rel(path), r["rounds"])]
    return out


def summary(compare, compiled, jax):
    out = kiln_vs_pytorch(compare, SUMMARY_KEYS, compact=True)
    extra = []
    if compiled:
        r = load(compiled)["train_steps"]
        extra.append("`compile` runs the same train steps in %s–%s of eager time"
                     % (num(min(s["quiet"]["compiled_over_eager"] for k, s in r.items()
                                if k != "rounds")),
                        num(max(s["quiet"]["compiled_over_eager"] for k, s in r.items()
                                if k != "rounds"))))
    if jax:
        extra.append("the compiled MLP step takes %s× the time of JAX `jit`'s"
                     % num(load(jax)["kiln_over_jax"]))
    if extra:
        sentence = "; ".join(extra)
        out += ["", sentence[0].upper() + sentence[1:] + ". Details, method and more: "
                "[Performance](docs/src/performance.md)."]
    return out


def render():
    compare = newest("compare-*.json")
    compiled = newest("eager-vs-compiled-*.json")
    jax = newest("jax-vs-kiln-*.json")
    serve = newest("serve-*.json")
    onnx = newest("onnx-*.json")
    blocks = {}
    if onnx:
        blocks["kiln-vs-onnxruntime"] = kiln_vs_onnxruntime(onnx)
    if serve:
        blocks["kiln-serve-vs-mlserver"] = serve_vs_mlserver(serve)
    if compare:
        blocks["kiln-vs-pytorch"] = kiln_vs_pytorch(compare)
        blocks["summary"] = summary(compare, compiled, jax)
    if compiled:
        blocks["compiled-vs-eager"] = compiled_vs_eager(compiled)
    if jax:
        blocks["kiln-vs-jax"] = kiln_vs_jax(jax)
    return blocks


def replace(text, name, lines, path):
    begin = re.compile(r"^<!-- generated: %s .*-->$" % re.escape(name), re.M)
    end = "<!-- end generated: %s -->" % name
    b = begin.search(text)
    e = text.find(end)
    if not b or e < b.end():
        sys.exit("%s: no generated region `%s` (markers missing or out of order)" % (path, name))
    return text[:b.end()] + "\n" + "\n".join(lines) + "\n" + text[e:]


def main():
    check = "--check" in sys.argv[1:]
    blocks = render()
    stale = []
    for path, names in TARGETS.items():
        full = os.path.join(ROOT, path)
        with open(full) as f:
            text = f.read()
        new = text
        for name in names:
            if name not in blocks:
                sys.exit("no results in bench/results for the `%s` table of %s" % (name, path))
            new = replace(new, name, blocks[name], path)
        if new != text:
            stale.append(path)
            if not check:
                with open(full + ".tmp", "w") as f:
                    f.write(new)
                os.replace(full + ".tmp", full)
    if check and stale:
        sys.exit("performance tables out of date with bench/results in: %s; run "
                 "python3 tools/render_performance.py" % ", ".join(stale))
    print(("up to date" if check else "rendered") + ": " + ", ".join(TARGETS))


if __name__ == "__main__":
    main()
