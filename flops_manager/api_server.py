"""The HTTP server the manager's API runs on: waitress, a production WSGI server.

One I/O thread accepts connections and keeps them alive between requests; a fixed pool of
worker threads runs the Flask app. The API thus stays responsive with hundreds of polling
clients on a loaded machine, where a thread per connection (Werkzeug's development server)
spends its time starting threads. Each open event stream (SSE) holds one worker thread for
at most ``FLOPS_SSE_MAX_S``.
"""

from __future__ import annotations

import logging
from typing import Any

from waitress.server import create_server

LISTEN_BACKLOG = 2048
CONNECTION_LIMIT = 1000


class ApiServer:
    """Serve a WSGI ``app`` on ``host:port`` (0: a free port) with ``threads`` workers."""

    def __init__(self, app: Any, *, host: str, port: int, threads: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.threads = threads
        self._server: Any = None

    def bind(self) -> int:
        """Open the listening socket; return the port.

        Raises
        ------
        OSError
            If the address cannot be bound.
        """
        # waitress warns at every queued request once all workers are busy: the API's own
        # Server-Timing header and the request log tell more, without flooding the log
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self._server = create_server(
            self.app, host=self.host, port=self.port, threads=self.threads,
            backlog=LISTEN_BACKLOG, connection_limit=CONNECTION_LIMIT, ident="flops-manager",
            channel_timeout=120, clear_untrusted_proxy_headers=True,
        )
        self.port = int(self._server.effective_port)
        return self.port

    def close(self) -> None:
        """Stop accepting connections and stop the worker threads (waits up to 5 s)."""
        if self._server is not None:
            self._server.close()
            self._server.task_dispatcher.shutdown(timeout=5)

    def serve(self) -> None:
        """Serve until ``SystemExit`` or ``KeyboardInterrupt`` reaches this (main) thread."""
        if self._server is None:
            self.bind()
        self._server.run()
