"""A small PyTorch network on scikit-learn's bundled digits data set, federated with FLOps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from data import load_partition
from torch import nn

from learner_base import LearnerContext, RoundConfig
from learner_base import ModelManager as BaseModelManager


def build_network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


class ModelManager(BaseModelManager):
    mlflow_flavor = "pytorch"

    def __init__(self) -> None:
        torch.set_num_threads(1)
        self.model = build_network()
        self.loss_fn = nn.CrossEntropyLoss()
        self.train_data: tuple[torch.Tensor, torch.Tensor] | None = None
        self.test_data: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_model_data(self, context: LearnerContext) -> None:
        x_train, y_train, x_test, y_test = load_partition(context)
        self.train_data = (torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train))
        self.test_data = (torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test))

    def get_model(self) -> Any:
        return self.model

    def get_model_parameters(self) -> list[np.ndarray]:
        return [v.detach().cpu().numpy().copy() for v in self.model.state_dict().values()]

    def set_model_parameters(self, parameters: Sequence[np.ndarray]) -> None:
        keys = list(self.model.state_dict().keys())
        state = {k: torch.tensor(np.asarray(v)) for k, v in zip(keys, parameters, strict=True)}
        self.model.load_state_dict(state, strict=True)

    def fit_model(self, config: RoundConfig) -> int:
        assert self.train_data is not None
        x, y = self.train_data
        optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate or 0.01)
        global_params = [p.detach().clone() for p in self.model.parameters()]
        generator = torch.Generator().manual_seed(config.server_round)
        self.model.train()
        for _ in range(config.local_epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                loss = self.loss_fn(self.model(x[batch]), y[batch])
                if config.proximal_mu:  # FedProx: stay close to the global model
                    proximal = sum(
                        ((p - g) ** 2).sum()
                        for p, g in zip(self.model.parameters(), global_params, strict=True)
                    )
                    loss = loss + config.proximal_mu / 2 * proximal
                loss.backward()
                optimizer.step()
        return len(x)

    def evaluate_model(self, config: RoundConfig) -> tuple[float, float, int]:
        assert self.test_data is not None
        x, y = self.test_data
        self.model.eval()
        with torch.no_grad():
            logits = self.model(x)
            loss = float(self.loss_fn(logits, y))
            accuracy = float((logits.argmax(dim=1) == y).float().mean())
        return loss, accuracy, len(x)

    def input_example(self) -> Any:
        return np.zeros((2, 64), dtype=np.float32)
