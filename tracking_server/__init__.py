"""FLOps' MLflow tracking server: ``mlflow server`` with lean, safe defaults.

Run ``python -m tracking_server``; settings are read from ``FLOPS_*`` variables (see
:class:`tracking_server.settings.TrackingServerSettings`).
"""
