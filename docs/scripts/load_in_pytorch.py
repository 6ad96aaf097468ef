"""Loads a checkpoint written by `kiln train` (the digits CNN) into PyTorch and evaluates it
on all 1,797 bundled digits. Run from the repository root:

    python docs/scripts/load_in_pytorch.py runs/digits-cnn/checkpoints/best/model.safetensors

Needs torch, numpy and safetensors. The guide's chapter "Checkpoints and PyTorch interop"
shows its output.
"""

import gzip
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

# The same layers, in the same order, as `kiln train --model cnn` builds for 1×8×8 inputs.
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1),
    nn.ReLU(),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(64 * 4 * 4, 128),
    nn.ReLU(),
    nn.Dropout(0.25),
    nn.Linear(128, 10),
)
state = load_file(sys.argv[1])
model.load_state_dict(state)  # strict: every key and shape must match
model.eval()

# The digits Kiln bundles: 64 pixel values (0..16) and the label per row.
with gzip.open("crates/kiln-data/data/digits.csv.gz", "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
images = torch.from_numpy(rows[:, :64] / 16.0).reshape(-1, 1, 8, 8)
labels = torch.from_numpy(rows[:, 64]).long()

with torch.no_grad():
    logits = model(images)
accuracy = (logits.argmax(1) == labels).float().mean().item()
print(f"{len(state)} tensors loaded; accuracy on all {len(labels)} digits: {accuracy:.4f}")
print("probabilities of the first digit:", torch.softmax(logits[0], 0).numpy().round(4))
