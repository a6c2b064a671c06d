"""Join a Flower aggregator over gRPC and answer its instructions (the transport half).

:func:`serve` opens ``FlowerService.Join``, a bidirectional stream, decodes each
``ServerMessage`` (:mod:`learner_base.flower_protocol`), hands it to a handler and sends the
handler's answer, until the server ends the session with ``ReconnectIns``. grpcio is its only
dependency: the wire bytes are the ones Flower's own client sends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import grpc

from learner_base.flower_protocol import (
    SERVICE_METHOD,
    ClientMessage,
    DisconnectRes,
    ReconnectIns,
    ServerMessage,
    decode_server_message,
    encode_client_message,
)

__all__ = ["MAX_MESSAGE_LENGTH", "Handler", "SessionEndedError", "serve"]

MAX_MESSAGE_LENGTH = 536_870_912
"""Flower's limit (``GRPC_MAX_MESSAGE_LENGTH``) on both sides: 512 MB of parameters."""
GOODBYE_TIMEOUT_S = 10.0
"""How long writing the goodbye (``DisconnectRes``) may take before the stream is cancelled."""

Handler = Callable[[ServerMessage], ClientMessage]


class SessionEndedError(ConnectionError):
    """The server closed the stream without ending the session (``ReconnectIns``)."""


def _channel(server_address: str, root_certificates: bytes | None) -> grpc.Channel:
    options = [("grpc.max_send_message_length", MAX_MESSAGE_LENGTH),
               ("grpc.max_receive_message_length", MAX_MESSAGE_LENGTH)]
    if root_certificates is None:
        return grpc.insecure_channel(server_address, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates)
    return grpc.secure_channel(server_address, credentials, options=options)


def serve(server_address: str, handler: Handler, *,
          root_certificates: bytes | None = None) -> None:
    """Answer the server at ``server_address`` until it ends the session.

    Parameters
    ----------
    server_address
        ``host:port`` (``[v6]:port``) of the aggregator's Flower server.
    handler
        Turns each instruction (fit, evaluate, get parameters) into its answer.
    root_certificates
        PEM roots for TLS; ``None`` connects without TLS.

    Raises
    ------
    grpc.RpcError
        If the server cannot be reached or the stream breaks.
    SessionEndedError
        If the server closes the stream without saying goodbye.
    Exception
        Whatever ``handler`` raises (the stream is cancelled first).
    """
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    flushed = threading.Event()

    def requests() -> Iterator[bytes]:
        while (item := outbox.get()) is not None:
            yield item
        flushed.set()  # gRPC asks for the next message only once the previous one is written

    channel = _channel(server_address, root_certificates)
    call = channel.stream_stream(SERVICE_METHOD)(requests())
    try:
        for raw in call:
            instruction = decode_server_message(raw)
            if isinstance(instruction, ReconnectIns):
                # as Flower's client: say goodbye, then close (the server keeps the stream)
                outbox.put(encode_client_message(DisconnectRes()))
                outbox.put(None)
                flushed.wait(GOODBYE_TIMEOUT_S)
                return
            outbox.put(encode_client_message(handler(instruction)))
        raise SessionEndedError(f"the server at {server_address} closed the connection "
                                "without ending the session")
    finally:
        outbox.put(None)
        call.cancel()
        channel.close()
