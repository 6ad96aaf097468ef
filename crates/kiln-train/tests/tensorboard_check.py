#!/usr/bin/env python3
"""Check Kiln's TensorBoard event files with the real `tensorboard` package.

Usage: tensorboard_check.py LOG_DIR

LOG_DIR is written by `cargo run -p kiln-train --example tensorboard_demo -- LOG_DIR`
(see that file for the contents; keep the two in sync). The check:

1. reads every event file record by record with tensorboard's own TFRecord reader, which
   verifies both masked CRC-32Cs, and parses each record as a `tensorboard` `Event` proto;
2. loads each run with `EventAccumulator` (what TensorBoard's backend uses) and asserts the
   exact tags, steps, wall times and values of the scalars and the texts;
3. loads each run again with the plugin `EventAccumulator` that the TensorBoard server uses
   (scalars migrated to tensors of the `scalars` plugin) and asserts the same data;
4. loads LOG_DIR with `EventMultiplexer` and asserts the runs TensorBoard discovers.

Prints a short summary; exits non-zero on any mismatch.
"""

import math
import os
import re
import struct
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.util import tensor_util
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

STEPS = 25
T0 = 1_700_000_000.0
EDGE_TIME = 1_800_000_000.0
CONFIG_TEXT = (
    "| key | value |\n|-----|-------|\n| lr | 0.001 |\n| model | Mlp \u2192 10 |"
)
# Keep everything: the default size guidance samples (e.g. only 10 tensors per tag).
ALL = {"scalars": 0, "tensors": 0, "images": 0, "audio": 0, "histograms": 0,
       "compressedHistograms": 0}
FILE_NAME = re.compile(r"^events\.out\.tfevents\.(\d{10})\.[^/]+$")

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def f32(x):
    """x rounded to float32, as stored in Summary.Value.simple_value."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def step_time(s):
    return T0 + s + 0.5


def expected_runs():
    """run name -> {scalar tag: [(wall_time, step, value)]}, {text tag: [(wall_time, step, text)]}."""
    steps = range(STEPS)
    loss = {s: 1.0 / (s + 1) for s in steps}
    main_scalars = {
        "loss/train": [(step_time(s), s, f32(loss[s])) for s in steps],
        "accuracy": [(step_time(s), s, f32(s / STEPS)) for s in steps],
        "edge": [(EDGE_TIME, -7, f32(1e-3)), (EDGE_TIME, 1 << 40, f32(-2.5))],
    }
    main_texts = {
        "notes/text_summary": [
            (step_time(s), s, "step {}: **loss** {:.4f}".format(s, loss[s])) for s in steps
        ],
        "config/text_summary": [(step_time(0), 0, CONFIG_TEXT)],
    }
    return {
        ".": (main_scalars, main_texts),
        "loss_train": ({"loss": [(step_time(s), s, f32(loss[s])) for s in steps]}, {}),
        "loss_val": ({"loss": [(step_time(s), s, f32(1.25 / (s + 1))) for s in steps]}, {}),
    }


def read_records_strictly(path):
    """All records of an event file via tensorboard's reader (CRCs checked), as Events."""
    reader = PyRecordReader_New(path)
    events = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            break
        except errors.DataLossError as e:  # CRC mismatch or truncated record
            check(False, f"{path}: record {len(events)}: {e.message}")
            break
        data = reader.record()
        event = event_pb2.Event()
        event.ParseFromString(data)
        # Canonical encoding: re-serializing gives the same bytes (no unknown fields).
        check(event.SerializeToString() == data, f"{path}: non-canonical Event encoding")
        events.append(event)
    return events


def check_files(run_dir, run):
    names = sorted(n for n in os.listdir(run_dir) if "tfevents" in n)
    if not check(len(names) == 1, f"run {run}: expected one event file, found {names}"):
        return 0
    m = FILE_NAME.match(names[0])
    check(m is not None, f"run {run}: bad event file name {names[0]!r}")
    if m:
        check(m.group(1) == "1700000000", f"run {run}: file name time {m.group(1)}")
    events = read_records_strictly(os.path.join(run_dir, names[0]))
    check(len(events) > 0 and events[0].file_version == "brain.Event:2",
          f"run {run}: first event is not file_version brain.Event:2")
    check(all(e.HasField("summary") for e in events[1:]),
          f"run {run}: events after the first must all be summaries")
    return len(events)


def same_float(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def check_run(logdir, run, want_scalars, want_texts):
    run_dir = os.path.join(logdir, run)
    n_records = check_files(run_dir, run)

    acc = EventAccumulator(run_dir, size_guidance=ALL)
    acc.Reload()
    check(acc.file_version == 2.0, f"run {run}: file_version {acc.file_version}")
    tags = acc.Tags()
    check(sorted(tags["scalars"]) == sorted(want_scalars),
          f"run {run}: scalar tags {sorted(tags['scalars'])} != {sorted(want_scalars)}")
    check(sorted(tags["tensors"]) == sorted(want_texts),
          f"run {run}: tensor tags {sorted(tags['tensors'])} != {sorted(want_texts)}")

    counts = {}
    for tag, want in want_scalars.items():
        if tag not in tags["scalars"]:
            continue
        got = [(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]
        counts[tag] = len(got)
        if check(len(got) == len(want), f"run {run} {tag}: {len(got)} points, want {len(want)}"):
            for g, w in zip(got, want):
                check(g[0] == w[0] and g[1] == w[1] and same_float(g[2], w[2]),
                      f"run {run} {tag}: got (wall_time, step, value) {g}, want {w}")

    text_content = acc.PluginTagToContent("text") if want_texts else {}
    for tag, want in want_texts.items():
        if tag not in tags["tensors"]:
            continue
        check(tag in text_content, f"run {run} {tag}: not registered with the text plugin")
        got = []
        for e in acc.Tensors(tag):
            t = e.tensor_proto
            ok = (t.dtype == 7 and [d.size for d in t.tensor_shape.dim] == [1]
                  and len(t.string_val) == 1)
            check(ok, f"run {run} {tag}: not a DT_STRING tensor of shape [1]: {t}")
            got.append((e.wall_time, e.step, t.string_val[0].decode("utf-8") if ok else None))
        counts[tag] = len(got)
        if check(len(got) == len(want), f"run {run} {tag}: {len(got)} texts, want {len(want)}"):
            for g, w in zip(got, want):
                check(g == w, f"run {run} {tag}: got {g!r}, want {w!r}")

    # Every record is accounted for: the version event plus one per value.
    check(n_records == 1 + sum(counts.values()),
          f"run {run}: {n_records} records, want {1 + sum(counts.values())}")
    check_run_as_served(run_dir, run, want_scalars, want_texts)
    summary = f"  run {run!r}: {n_records} records; scalars "
    summary += ", ".join(f"{t} x{counts.get(t, 0)}" for t in sorted(want_scalars))
    if want_texts:
        summary += "; texts " + ", ".join(f"{t} x{counts.get(t, 0)}" for t in sorted(want_texts))
    print(summary)


def check_run_as_served(run_dir, run, want_scalars, want_texts):
    """The same data through the plugin EventAccumulator behind `tensorboard --logdir`."""
    acc = plugin_event_accumulator.EventAccumulator(run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    for plugin, want in (("scalars", want_scalars), ("text", want_texts)):
        got = sorted(acc.PluginTagToContent(plugin)) if want else []
        check(got == sorted(want), f"run {run}: {plugin} plugin tags {got} != {sorted(want)}")
    for tag, want in want_scalars.items():
        got = [(e.wall_time, e.step, float(tensor_util.make_ndarray(e.tensor_proto).item()))
               for e in acc.Tensors(tag)] if tag in acc.Tags()["tensors"] else []
        check(len(got) == len(want) and all(
            g[:2] == w[:2] and same_float(g[2], w[2]) for g, w in zip(got, want)),
            f"run {run} {tag}: served scalars differ: {got[:3]}... != {want[:3]}...")
    for tag, want in want_texts.items():
        got = [(e.wall_time, e.step,
                tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8"))
               for e in acc.Tensors(tag)] if tag in acc.Tags()["tensors"] else []
        check(got == want, f"run {run} {tag}: served texts differ: {got[:2]} != {want[:2]}")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    logdir = sys.argv[1]
    runs = expected_runs()

    mux = EventMultiplexer(size_guidance=ALL).AddRunsFromDirectory(logdir)
    mux.Reload()
    got_runs = sorted(mux.Runs())
    check(got_runs == sorted(runs), f"runs {got_runs} != {sorted(runs)}")
    # add_scalars: every series is a run with the same tag, so TensorBoard draws one chart.
    for run in ("loss_train", "loss_val"):
        if run in mux.Runs():
            check(mux.Runs()[run]["scalars"] == ["loss"],
                  f"run {run}: tags {mux.Runs()[run]['scalars']}")

    print(f"tensorboard_check: {logdir}: runs {got_runs}")
    for run, (scalars, texts) in runs.items():
        check_run(logdir, run, scalars, texts)

    if failures:
        for f in failures[:50]:
            print("MISMATCH:", f)
        print(f"tensorboard_check: FAILED ({len(failures)} mismatches)")
        return 1
    print("tensorboard_check: OK (tags, steps, wall times, values and texts match)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
