#!/usr/bin/env python3
"""Exports the import-coverage models from PyTorch and writes onnxruntime's outputs beside them,
in the ONNX test layout that `onnx_suite` runs: DIR/<model>-<exporter>/model.onnx and
test_data_set_0/{input,output}_<i>.pb.

Models (random weights, seeded; nothing is downloaded): the classification models torchvision
ships, Hugging Face transformers encoders and decoders built from small configs, each exported
with the TorchScript exporter (`dynamo=False`) and the dynamo exporter (`dynamo=True`), with a
symbolic batch dim. Inputs are random at batch 3 (not the export batch, 2), so the check also
runs the symbolic batch.

usage: export_models.py DIR [--only NAME,...] [--exporters torchscript,dynamo] [--image PIXELS]
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from onnx import numpy_helper

EXPORT_BATCH, TEST_BATCH, IMAGE = 2, 3, 64


def vision(name, build, size=None):
    return name, build, lambda b: [torch.randn(b, 3, size or IMAGE, size or IMAGE)], ["input"]


def small_vit():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=IMAGE, patch_size=16, num_layers=2, num_heads=4,
                             hidden_dim=128, mlp_dim=256, num_classes=10)


def bert():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=64)
    return TupleOutput(BertModel(cfg), "last_hidden_state")


def gpt2():
    from transformers import GPT2Config, GPT2Model
    cfg = GPT2Config(vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                     use_cache=False)
    return TupleOutput(GPT2Model(cfg), "last_hidden_state")


class TupleOutput(torch.nn.Module):
    """A transformers model returning one tensor (its `field`) instead of a ModelOutput."""

    def __init__(self, model, field):
        super().__init__()
        self.model, self.field = model, field

    def forward(self, input_ids, attention_mask):
        return getattr(self.model(input_ids=input_ids, attention_mask=attention_mask), self.field)


SEQ = 16


def tokens(b):
    g = torch.Generator().manual_seed(b)
    ids = torch.randint(0, 1000, (b, SEQ), generator=g)
    mask = torch.ones(b, SEQ, dtype=torch.int64)
    mask[0, SEQ // 2:] = 0
    return [ids, mask]


MODELS = [
    vision("resnet18", lambda: torchvision.models.resnet18(num_classes=10)),
    vision("mobilenet_v2", lambda: torchvision.models.mobilenet_v2(num_classes=10)),
    vision("mobilenet_v3_small", lambda: torchvision.models.mobilenet_v3_small(num_classes=10)),
    vision("efficientnet_b0", lambda: torchvision.models.efficientnet_b0(num_classes=10)),
    vision("densenet121", lambda: torchvision.models.densenet121(num_classes=10)),
    vision("squeezenet1_1", lambda: torchvision.models.squeezenet1_1(num_classes=10)),
    vision("shufflenet_v2_x0_5", lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=10)),
    # VGG's classifier reads a 7×7 map: 224 pixels (its adaptive pool exports only as a factor).
    vision("vgg11_bn", lambda: torchvision.models.vgg11_bn(num_classes=10), size=224),
    vision("googlenet", lambda: torchvision.models.googlenet(num_classes=10, aux_logits=False,
                                                             init_weights=True)),
    vision("convnext_tiny", lambda: torchvision.models.convnext_tiny(num_classes=10)),
    vision("vit", small_vit),
    ("bert", bert, tokens, ["input_ids", "attention_mask"]),
    ("gpt2", gpt2, tokens, ["input_ids", "attention_mask"]),
]


def export(model, args, names, path, exporter):
    batch = {0: "batch"}
    if exporter == "torchscript":
        torch.onnx.export(model, tuple(args), str(path), dynamo=False, opset_version=17,
                          input_names=names, output_names=["output"],
                          dynamic_axes={**{n: batch for n in names}, "output": batch})
    else:
        b = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(model, tuple(args), str(path), dynamo=True, opset_version=18,
                          input_names=names, output_names=["output"],
                          dynamic_shapes=tuple({0: b} for _ in names), external_data=False)


def write_case(d, model_path, inputs, names):
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    feed = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), inputs)}
    outs = sess.run(None, feed)
    s = d / "test_data_set_0"
    s.mkdir(exist_ok=True)
    for i, x in enumerate(inputs):
        (s / f"input_{i}.pb").write_bytes(numpy_helper.from_array(x.numpy(), names[i]).SerializeToString())
    for i, y in enumerate(outs):
        (s / f"output_{i}.pb").write_bytes(numpy_helper.from_array(np.asarray(y), f"output_{i}").SerializeToString())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--only", default="")
    p.add_argument("--exporters", default="torchscript,dynamo")
    p.add_argument("--image", type=int, default=64, help="image size of the vision models")
    a = p.parse_args()
    global IMAGE
    IMAGE = a.image
    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    # nn.MultiheadAttention's fused inference path has no TorchScript ONNX export.
    torch.backends.mha.set_fastpath_enabled(False)
    for name, build, make_inputs, names in MODELS:
        if only and name not in only:
            continue
        torch.manual_seed(0)
        model = build().eval()
        for exporter in a.exporters.split(","):
            d = out / f"{name}-{exporter}"
            d.mkdir(exist_ok=True)
            t = time.time()
            with torch.no_grad():
                export(model, make_inputs(EXPORT_BATCH), names, d / "model.onnx", exporter)
            torch.manual_seed(1)
            write_case(d, d / "model.onnx", make_inputs(TEST_BATCH), names)
            print(f"export_models: {d.name}: {time.time() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
