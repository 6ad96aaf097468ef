"""Checks a `kiln train` run directory with the real TensorBoard reader.

Usage: python check_train_run.py RUN_DIR

Reads RUN_DIR/tensorboard with tensorboard's EventAccumulator and RUN_DIR/metrics.csv (the
CSV logger's copy of the same per-epoch values), and asserts that every epoch's loss,
accuracy, val_loss, val_accuracy and lr are in the event file at steps 1..E with the CSV's
values (as float32), that per-step train/loss exists for every optimizer step, and that the
checkpoint files exist. Exits non-zero on any mismatch.
"""
import csv
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert rows, "metrics.csv is empty"
    acc = EventAccumulator(os.path.join(run_dir, "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    keys = [k for k in rows[0] if k != "epoch"]
    for key in ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]:
        assert key in keys, f"metrics.csv lacks {key}"
    for key in keys:
        tag = f"epoch/{key}"
        assert tag in tags, f"missing tag {tag}; have {sorted(tags)}"
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        want_steps = [int(r["epoch"]) for r in rows]
        assert steps == want_steps, f"{tag}: steps {steps} != {want_steps}"
        for e, r in zip(events, rows):
            want = float(r[key])
            # TensorBoard stores float32; compare at float32 precision.
            assert abs(e.value - want) <= 1e-6 * max(1.0, abs(want)), f"{tag} step {e.step}: {e.value} != {want}"
    train_loss = acc.Scalars("train/loss")
    assert len(train_loss) >= len(rows), "too few per-step train/loss points"
    assert [e.step for e in train_loss] == list(range(1, len(train_loss) + 1)), "train/loss steps are not 1..N"
    for sub in ["last", "best"]:
        for name in ["model.safetensors", "trainer.safetensors"]:
            p = os.path.join(run_dir, "checkpoints", sub, name)
            assert os.path.isfile(p), f"missing {p}"
    print(
        f"check_train_run: OK — {len(rows)} epochs x {len(keys)} epoch tags and {len(train_loss)} train/loss steps "
        f"match metrics.csv; final val_accuracy {float(rows[-1]['val_accuracy']):.4f}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
