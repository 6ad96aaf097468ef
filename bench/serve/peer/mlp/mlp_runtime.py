# MLServer custom runtime for the serving benchmark's MLP peer: the way a PyTorch
# team would put an nn.Module behind the Open Inference Protocol v2 today.
# The module is named mlp_runtime (not model.py) because with parallel_workers 0
# every model loads into one process, and two "model" modules would collide.
import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

INPUT, OUTPUT = "input__0", "output__0"


class TorchMLP(MLModel):
    async def load(self) -> bool:
        # Two threads: the benchmark machine has 2 cores, and Kiln gets the same.
        torch.set_num_threads(2)
        torch.manual_seed(0)  # fixed weights so answers are reproducible across runs
        self.net = torch.nn.Sequential(
            torch.nn.Linear(784, 512), torch.nn.ReLU(),
            torch.nn.Linear(512, 512), torch.nn.ReLU(),
            torch.nn.Linear(512, 10),
        ).eval()
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = next((i for i in payload.inputs if i.name == INPUT), None)
        if inp is None:
            raise InferenceError(f"expected an input named {INPUT}")
        # JSON-decoded arrays can be read-only; torch wants a writable buffer.
        x = np.array(NumpyCodec.decode_input(inp), dtype=np.float32)
        with torch.inference_mode():
            y = self.net(torch.from_numpy(x)).numpy()
        return InferenceResponse(
            model_name=self.name, model_version=self.version,
            outputs=[NumpyCodec.encode_output(OUTPUT, y)],
        )
