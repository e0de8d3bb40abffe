"""MLServer's custom runtime for `make bench-serve`: the same exported model folder and the same
forward pass as `bountytree serve` (bountytree.models.inference.Predictor: the checked
safetensors loader, the spec's layers, one torch thread), so that the comparison measures the
servers and nothing else.

Runs only inside MLServer's own environment (.bench-mlserver/), started by bench/mlserver.py
with this repository on PYTHONPATH; the product never imports it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

from bountytree.models.inference import Predictor
from bountytree.models.spec import load_spec


class BountytreeRuntime(MLModel):
    """Answers with the outputs `serve` gives: FP32 logits and INT64 classes."""

    async def load(self) -> bool:
        torch.set_num_threads(1)  # as `serve --threads 1`, its default
        folder = Path(await get_model_uri(self._settings))
        spec = load_spec((folder / "config.json").read_bytes())
        self._predictor = Predictor.from_weights((folder / "model.safetensors").read_bytes(), spec)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        prediction = self._predictor.predict(NumpyCodec.decode_input(payload.inputs[0]))
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output("logits", prediction.logits),
                NumpyCodec.encode_output("class", prediction.classes),
            ],
        )
