"""Baseline: the same tiny model trained with a bare Flower script (legacy API, no FLOps).

Usage: python bench/bare_flower.py --rounds R --learners N [--repo DIR]
Prints one JSON line: {"seconds": wall time from start to the end of the last round, ...}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import ClassVar

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


def _load(repo: str):
    sys.path.insert(0, repo)
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_mm", Path(repo) / "model_manager.py")
    assert spec is not None and spec.loader is not None, repo
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ModelManager()


def client(repo: str, address: str, index: int, count: int) -> None:
    import flwr
    from flwr.compat.client.app import start_client

    from learner_base import LearnerContext, RoundConfig

    manager = _load(repo)
    manager.set_model_data(LearnerContext(learner_index=index, learner_count=count))

    class Client(flwr.client.NumPyClient):
        def get_parameters(self, config):
            return manager.get_model_parameters()

        def fit(self, parameters, config):
            manager.set_model_parameters(parameters)
            n = manager.fit_model(RoundConfig.from_flower(config))
            return manager.get_model_parameters(), n, {}

        def evaluate(self, parameters, config):
            manager.set_model_parameters(parameters)
            loss, acc, n = manager.evaluate_model(RoundConfig.from_flower(config))
            return loss, n, {"accuracy": acc}

    deadline = time.monotonic() + 180  # the server may take long to start on a loaded machine
    while True:
        try:
            start_client(server_address=address, client=Client().to_client(), insecure=True)
            return
        except Exception:  # server not up yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--repo", default=str(Path(__file__).parent / "tiny_repo"))
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    started = time.perf_counter()
    from flwr.common import ndarrays_to_parameters
    from flwr.compat.server.app import start_server
    from flwr.server import ServerConfig
    from flwr.server.strategy import FedAvg

    initial = _load(args.repo).get_model_parameters()
    address = f"127.0.0.1:{args.port}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=client, args=(args.repo, address, i, args.learners))
             for i in range(args.learners)]
    for proc in procs:
        proc.start()
    class TimedFedAvg(FedAvg):
        round_seconds: ClassVar[list[float]] = []
        round_ends: ClassVar[list[float]] = []

        def configure_fit(self, server_round, parameters, client_manager):
            client_manager.wait_for(self.min_available_clients)  # time the round, not the join
            self._t0 = time.perf_counter()
            return super().configure_fit(server_round, parameters, client_manager)

        def aggregate_evaluate(self, server_round, results, failures):
            out = super().aggregate_evaluate(server_round, results, failures)
            self.round_ends.append(time.perf_counter())
            self.round_seconds.append(self.round_ends[-1] - self._t0)
            return out

    strategy = TimedFedAvg(min_fit_clients=args.learners, min_evaluate_clients=args.learners,
                      min_available_clients=args.learners,
                      initial_parameters=ndarrays_to_parameters(initial))
    start_server(server_address=address, config=ServerConfig(num_rounds=args.rounds),
                 strategy=strategy)
    seconds = time.perf_counter() - started
    for proc in procs:
        proc.join(30)
    print(json.dumps({"system": "bare_flower", "rounds": args.rounds,
                      "learners": args.learners, "seconds": seconds,
                      "round_seconds": [round(s, 4) for s in strategy.round_seconds],
                      "round_periods": [round(b - a, 4) for a, b in
                                        itertools.pairwise(strategy.round_ends)]}))


if __name__ == "__main__":
    main()
