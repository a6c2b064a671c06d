"""The generic model FLOps logs when a flavor cannot save a trained model.

Kept free of FLOps imports: the class is pickled by value into the logged model, so loading it
needs only MLflow, cloudpickle and the model's own libraries.
"""

from __future__ import annotations

from typing import Any

from mlflow.pyfunc.model import PythonModel


class PickledModel(PythonModel):
    """A pyfunc model around any Python model object.

    ``predict`` calls the model's ``predict`` if it has one; a PyTorch module is called on a
    float32 tensor of the input (gradients off) and its output returned as a NumPy array.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    # No type hints on purpose: MLflow reads them as an input schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Predict for ``model_input`` (array or DataFrame)."""
        if hasattr(self.model, "predict"):
            return self.model.predict(model_input)
        import numpy as np
        import torch

        values = np.asarray(model_input, dtype=np.float32)
        with torch.no_grad():
            return self.model(torch.from_numpy(values)).numpy()
