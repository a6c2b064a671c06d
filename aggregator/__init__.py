"""The FLOps aggregator: Flower server side, MLflow tracking, classic and hierarchical roles."""
