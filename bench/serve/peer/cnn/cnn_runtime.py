# MLServer custom runtime for the serving benchmark's small CNN peer (8x8 digits,
# as in sklearn's load_digits). Same serving path as mlp_runtime.py; only the net differs.
# Flatten + Linear (no pooling) keeps the op set to conv/relu/linear, which Kiln
# must mirror exactly for the comparison to be like for like.
import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

INPUT, OUTPUT = "input__0", "output__0"


class TorchCNN(MLModel):
    async def load(self) -> bool:
        torch.set_num_threads(2)  # match the 2-core benchmark machine
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(32 * 8 * 8, 10),
        ).eval()
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = next((i for i in payload.inputs if i.name == INPUT), None)
        if inp is None:
            raise InferenceError(f"expected an input named {INPUT}")
        x = np.array(NumpyCodec.decode_input(inp), dtype=np.float32)  # writable copy
        with torch.inference_mode():
            y = self.net(torch.from_numpy(x)).numpy()
        return InferenceResponse(
            model_name=self.name, model_version=self.version,
            outputs=[NumpyCodec.encode_output(OUTPUT, y)],
        )
