"""Hot reload under load: clients loop inference requests (tritonclient over HTTP and gRPC)
while versions of the model are added, corrupted and removed in the repository `kiln serve`
watches; not one request may fail. Run by `.ci/run`:

    python reload_check.py HTTP_URL GRPC_URL MODEL REPO ROW

The server serves REPO (version 1 of MODEL, the digits CNN, is there at the start) with the
default version policy (the latest version that loads) and a short --poll-secs. Versions are
moved in and out with renames, as a deployment tool would, so a scan never sees half a file.
"""

import os
import shutil
import sys
import threading
import time

import numpy as np
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

http_url, grpc_url, model, repo, row = sys.argv[1:6]
pixels = np.array([float(v) for v in row.split(",")], dtype=np.float32).reshape(1, 1, 8, 8)
model_dir = os.path.join(repo, model)
staging = os.path.join(repo, ".staging")  # the server ignores names starting with a dot
good_graph = os.path.join(model_dir, "1", "model.kgraph")
os.makedirs(staging, exist_ok=True)
shutil.copy(good_graph, os.path.join(staging, "good.kgraph"))

stop = threading.Event()
lock = threading.Lock()
ok, failures, seen = 0, [], set()


def loop(proto, url):
    global ok
    client = proto.InferenceServerClient(url=url)
    while not stop.is_set():
        inp = proto.InferInput("input", [1, 1, 8, 8], "FP32")
        inp.set_data_from_numpy(pixels)
        try:
            result = client.infer(model, [inp])
            response = result.get_response()
            version = response["model_version"] if isinstance(response, dict) else response.model_version
            assert result.as_numpy("probabilities").shape == (1, 10)
            with lock:
                ok += 1
                seen.add(version)
        except Exception as e:  # every failure is reported at the end
            with lock:
                failures.append(f"{proto.__name__}: {e}")


def add_version(version, graph_bytes=None):
    """Moves a new version directory into the model's directory in one rename."""
    d = os.path.join(staging, str(version))
    os.makedirs(d)
    target = os.path.join(d, "model.kgraph")
    if graph_bytes is None:
        shutil.copy(os.path.join(staging, "good.kgraph"), target)
    else:
        with open(target, "wb") as f:
            f.write(graph_bytes)
    os.rename(d, os.path.join(model_dir, str(version)))


def remove_version(version):
    os.rename(os.path.join(model_dir, str(version)), os.path.join(staging, f"removed-{version}"))


def wait_for(what, predicate, seconds=15):
    end = time.time() + seconds
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def serving(version):
    with lock:
        seen.clear()
    time.sleep(0.3)
    with lock:
        return seen == {str(version)}


def status():
    return requests.get(f"http://{http_url}/v1/models/{model}", timeout=30).json()


threads = [
    threading.Thread(target=loop, args=(httpclient, http_url)),
    threading.Thread(target=loop, args=(httpclient, http_url)),
    threading.Thread(target=loop, args=(grpcclient, grpc_url)),
]
for t in threads:
    t.start()
try:
    wait_for("version 1 answering", lambda: serving(1))
    add_version(2)  # the new version loads, then takes over; version 1 drains and unloads
    wait_for("version 2 to take over", lambda: serving(2))
    add_version(3, b"not a graph")  # corrupt: reported, and version 2 keeps serving
    wait_for(
        "version 3 reported unavailable",
        lambda: any(v["version"] == "3" and v["state"] == "END" for v in status()["model_version_status"]),
    )
    assert serving(2), "version 2 serves while 3 is broken"
    assert not httpclient.InferenceServerClient(url=http_url).is_model_ready(model, "3")
    remove_version(3)
    add_version(4)
    wait_for("version 4 to take over", lambda: serving(4))
    remove_version(4)  # the newest left is 2 again: it loads before 4 goes
    wait_for("version 2 to serve again", lambda: serving(2))
finally:
    stop.set()
    for t in threads:
        t.join()
    shutil.rmtree(staging, ignore_errors=True)

assert not failures, f"{len(failures)} failed requests of {ok + len(failures)}: {failures[:5]}"
assert ok > 100, ok
print(f"hot reload: ok ({ok} requests over 5 version changes, 0 failed)")
