"""Crash test: `kiln train --save-every-epoch` killed with SIGKILL at random moments must
always leave resumable checkpoints, and the next start must recover and clean up.

Usage: python3 crash_resume.py KILN_BINARY [--kills 20] [--seed 20] [--max-delay 2.5]

Each round starts `kiln train` in the same run directory (even rounds: a fresh run of
RUN_EPOCHS epochs over the existing checkpoints; odd rounds: `--resume checkpoints/last` for
RUN_EPOCHS more; far more than fit before the kill, so every kill lands mid-run; an epoch of the mlp on the bundled digits takes ~0.1 s, mostly writing and fsyncing
three checkpoint directories, so most kills land in a save), kills it with SIGKILL after a seeded random delay, then checks:
  1. every checkpoint directory present (last/, best/, epoch-N/) loads the way `--resume`
     reads it (`kiln info DIR` prints its training state; directories unchanged since an
     earlier check are not read again);
  2. a checkpoint moved aside by the kill (`.<name>.old-PID` while `<name>` is missing) is
     counted: the next start must restore it;
  3. after that next start (`kiln train --resume checkpoints/last --epochs <done + 1>`, run
     to completion), no `.tmp-`/`.old-` entry is left anywhere under checkpoints/, every
     directory is resumable again and `last/` exists.
Needs only the Python standard library. Exits non-zero on the first violation.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

STALE = re.compile(r"^\..+\.(tmp|old)-\d+$")
# Epochs a killed run is asked for: far more than fit in --max-delay (an epoch takes 0.05–0.1 s),
# so every kill lands while it trains or saves.
RUN_EPOCHS = 400

EPOCHS_DONE = re.compile(r"training state: (\d+) epochs done")


def fail(msg):
    print(f"crash_resume: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, CI="1"), **kw)


class Checker:
    def __init__(self, kiln, ckpts):
        self.kiln = kiln
        self.ckpts = ckpts
        self.verified = {}  # path -> (inode, mtime) when last read successfully
        self.dirs_checked = 0

    def epochs_done(self, d):
        out = run([self.kiln, "info", d])
        if out.returncode != 0:
            fail(f"{d} is not resumable:\n{out.stdout}{out.stderr}")
        m = EPOCHS_DONE.search(out.stdout)
        if not m:
            fail(f"`kiln info {d}` shows no training state:\n{out.stdout}")
        return int(m.group(1))

    def check_all(self):
        """Reads every visible checkpoint directory that changed since it was last read."""
        if not os.path.isdir(self.ckpts):
            return
        for name in sorted(os.listdir(self.ckpts)):
            d = os.path.join(self.ckpts, name)
            if name.startswith(".") or not os.path.isdir(d):
                continue
            st = os.stat(d)
            key = (st.st_ino, st.st_mtime_ns)
            if self.verified.get(d) == key:
                continue
            self.epochs_done(d)
            self.verified[d] = key
            self.dirs_checked += 1

    def stale(self):
        found = []
        if not os.path.isdir(self.ckpts):
            return found
        for name in os.listdir(self.ckpts):
            p = os.path.join(self.ckpts, name)
            if STALE.match(name):
                found.append(p)
            elif os.path.isdir(p):
                found += [os.path.join(p, n) for n in os.listdir(p) if STALE.match(n)]
        return found

    def moved_aside(self):
        """Names whose directory is missing while a `.<name>.old-PID` holds it."""
        if not os.path.isdir(self.ckpts):
            return []
        names = set(os.listdir(self.ckpts))
        out = []
        for n in names:
            m = re.match(r"^\.(.+)\.old-\d+$", n)
            if m and m.group(1) not in names:
                out.append(m.group(1))
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--max-delay", type=float, default=2.5)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="kiln-crash-")
    out = os.path.join(work, "runs")
    ckpts = os.path.join(out, "crash", "checkpoints")
    last = os.path.join(ckpts, "last")
    base = [args.kiln, "train", "--model", "mlp", "--save-every-epoch", "--threads", "1",
            "--progress", "plain", "--out", out, "--name", "crash"]
    checker = Checker(args.kiln, ckpts)
    start = time.monotonic()
    kills = killed_mid_run = moved_aside = recovered_starts = 0
    stale_after_kill = 0
    for round_ in range(args.kills):
        if round_ % 2 == 1 and os.path.isdir(last):
            cmd = base + ["--resume", last, "--epochs", str(checker.epochs_done(last) + RUN_EPOCHS)]
        else:
            cmd = base + ["--epochs", str(RUN_EPOCHS)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, CI="1"))
        time.sleep(rng.uniform(0.05, args.max_delay))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        proc.wait()
        kills += 1
        stale_after_kill += len(checker.stale())
        aside = checker.moved_aside()
        moved_aside += len(aside)
        checker.check_all()

        # The next start: resume from last/ (recovering it when the kill left it moved aside)
        # and train one more epoch, or (its epoch count unknown until it is recovered) none.
        if os.path.isdir(last) or "last" in aside:
            recovered_starts += "last" in aside
            epochs = checker.epochs_done(last) + 1 if os.path.isdir(last) else 1
            cmd = base + ["--resume", last, "--epochs", str(epochs)]
        else:
            cmd = base + ["--epochs", "1"]
        res = run(cmd, timeout=120)
        if res.returncode != 0:
            fail(f"the start after a kill failed: {cmd}\n{res.stderr}")
        left = checker.stale()
        if left:
            fail(f"temporaries left after the next start: {left}")
        for name in aside:
            if not os.path.isdir(os.path.join(ckpts, name)):
                fail(f"{name}/ was not restored from its .old copy by the next start")
        if not os.path.isdir(last):
            fail("no last/ after a completed start")
        checker.check_all()
    if killed_mid_run < kills:
        fail(f"only {killed_mid_run} of {kills} runs were still training when killed: "
             f"raise RUN_EPOCHS so that a run outlasts --max-delay")
    secs = time.monotonic() - start
    shutil.rmtree(work)
    print(f"crash_resume: OK: {kills} SIGKILLs ({killed_mid_run} mid-run), "
          f"{stale_after_kill} temporaries and {moved_aside} moved-aside checkpoints left by "
          f"kills (all recovered/cleaned by the next start, {recovered_starts} of them last/), "
          f"{checker.dirs_checked} checkpoint directory reads all resumable, {secs:.0f} s")


if __name__ == "__main__":
    main()
