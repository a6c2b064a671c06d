"""The Authenticator port: turn a bearer token into a user name."""

from __future__ import annotations

import abc


class Authenticator(abc.ABC):
    """Verifies bearer tokens.

    Constraints
    -----------
    * ``authenticate`` MUST raise ``UnauthorizedError`` for a bad token and
      ``BackendUnavailableError`` when the identity provider cannot be reached.
    """

    @abc.abstractmethod
    def authenticate(self, token: str, *, header: str) -> str:
        """Return the user name ``token`` belongs to.

        Parameters
        ----------
        token
            The bearer token.
        header
            The full ``Authorization`` header (forwarded to identity providers).
        """
