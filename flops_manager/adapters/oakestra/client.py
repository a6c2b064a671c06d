"""HTTP client of the Oakestra root orchestrator (system manager, port 10000).

Authentication: logs in on first use with the configured credentials, refreshes the access
token ``token_refresh_margin_s`` before it expires (``exp`` claim, else 10 min), logs in again
when refreshing fails, and on a 401 (or a flask-jwt-extended 422 ``{"msg"}``) logs in once more
and repeats the request.

Transient failures are retried with capped exponential backoff (``backoff_s * 2**n``, at most
``backoff_max_s``, ``retries`` extra attempts): 502/503/504 answers and connections that could
not be opened, for every method; 500 answers to GET (the system manager answers 500 for any
unhandled error, e.g. a database hiccup; a read changes nothing); read timeouts and dropped
connections only for GET, PUT and DELETE (a POST may have been processed). A 500 to other
methods is not repeated here (it may mean "already deleted"): it becomes a temporary error.
Every request has a (connect, read) timeout. Failures become :class:`OakestraTemporaryError`
(5xx, 429, timeouts) or :class:`OakestraPermanentError` (other 4xx, malformed answers) with
method, URL, status and a body excerpt.

Quirks handled (see the reference §2.6): double-encoded JSON, ``null`` from
``GET /api/application/<id>``, always-200 deploy/undeploy answers, the three error shapes,
500 when deleting a service twice and 501 when deleting an application twice, and (Appendix C)
v0.4.400's service listing that is not filtered by application.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from flops_contracts.backoff import backoff_delay
from flops_manager.adapters.oakestra import models
from flops_manager.adapters.oakestra.errors import (
    OakestraAuthError,
    OakestraConflictError,
    OakestraPermanentError,
    OakestraTemporaryError,
)
from flops_manager.adapters.oakestra.settings import OakestraSettings

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_READ_STATUSES = RETRY_STATUSES | {500}
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
DEFAULT_TOKEN_LIFETIME_S = 600.0


def token_expiry(token: str) -> float | None:
    """Return the ``exp`` claim of a JWT (seconds since the epoch), unverified."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _unsent(exc: requests.RequestException) -> bool:
    """Whether the request surely never reached the server (safe to repeat a POST)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout):
        text = str(exc)
        return "NewConnectionError" in text or "Connection refused" in text
    return False


class RootOrchestratorClient:
    """Typed calls to the root orchestrator's addon-facing API.

    Parameters
    ----------
    settings
        Base URL, credentials, timeouts, retry and TLS settings.
    session_factory
        Builds the HTTP session (on first use).
    sleep, clock
        Injected for tests (``clock`` is wall-clock seconds, as JWT ``exp``).
    """

    def __init__(
        self,
        settings: OakestraSettings,
        *,
        session_factory: Callable[[], requests.Session] = requests.Session,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._sleep = sleep
        self._clock = clock
        self._session: requests.Session | None = None
        self._access: str | None = None
        self._refresh: str | None = None
        self._expires_at = 0.0
        self._user_object_id: str | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ transport

    @property
    def base_url(self) -> str:
        """The root orchestrator's base URL."""
        return self._settings.base_url.rstrip("/")

    def _http(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                self._session = self._session_factory()
            return self._session

    def _backoff(self, attempt: int) -> float:
        s = self._settings
        return backoff_delay(attempt, base_s=s.backoff_s, cap_s=s.backoff_max_s)

    def _raw(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        token: str | None = None,
    ) -> requests.Response:
        """Send once-with-retries on transient failures; no authentication logic."""
        s = self._settings
        attempt = 0
        while True:
            headers = {"Accept": "application/json"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = self._http().request(
                    method,
                    url,
                    json=body,
                    headers=headers,
                    timeout=(s.connect_timeout_s, s.read_timeout_s),
                    verify=s.verify,
                )
            except requests.RequestException as exc:
                retryable = method in IDEMPOTENT or _unsent(exc)
                if retryable and attempt < s.retries:
                    delay = self._backoff(attempt)
                    logger.info("Oakestra %s %s failed (%s); retry in %.1f s",
                                method, url, type(exc).__name__, delay)
                    self._sleep(delay)
                    attempt += 1
                    continue
                reason = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                raise OakestraTemporaryError(
                    method=method, url=url, status=None, body=str(exc), reason=reason
                ) from None
            retry = RETRY_READ_STATUSES if method == "GET" else RETRY_STATUSES
            if response.status_code in retry and attempt < s.retries:
                delay = self._backoff(attempt)
                logger.info("Oakestra %s %s answered %s; retry in %.1f s",
                            method, url, response.status_code, delay)
                self._sleep(delay)
                attempt += 1
                continue
            return response

    def _request(self, method: str, path: str, *, body: Any = None) -> requests.Response:
        """Send an authenticated request; log in again once on an authentication failure."""
        url = self.base_url + path
        token = self._token()
        response = self._raw(method, url, body=body, token=token)
        if self._auth_failed(response):
            logger.info("Oakestra rejected the token on %s %s; logging in again", method, path)
            self._invalidate(token)
            response = self._raw(method, url, body=body, token=self._token())
            if self._auth_failed(response):
                raise self._error(method, url, response, "the fresh token was rejected too")
        return response

    @staticmethod
    def _auth_failed(response: requests.Response) -> bool:
        if response.status_code == 401:
            return True
        return response.status_code == 422 and models.parse_error(response.text).kind == "jwt"

    @staticmethod
    def _error(
        method: str, url: str, response: requests.Response, reason: str
    ) -> OakestraTemporaryError | OakestraPermanentError:
        status = response.status_code
        shape = models.parse_error(response.text)
        detail = f"{reason} [{shape.kind}: {shape.text}]" if shape.text else reason
        kwargs: dict[str, Any] = {"method": method, "url": url, "status": status,
                                  "body": response.text, "reason": detail}
        if status >= 500 or status == 429:
            return OakestraTemporaryError(**kwargs)
        if status in (401, 403) or (status == 422 and shape.kind == "jwt"):
            return OakestraAuthError(**kwargs)
        if status == 409:
            return OakestraConflictError(**kwargs)
        return OakestraPermanentError(**kwargs)

    def _decode(self, method: str, url: str, response: requests.Response) -> Any:
        try:
            return models.decode(response.text)
        except models.MalformedAnswerError as exc:
            raise OakestraPermanentError(
                method=method, url=url, status=response.status_code, body=response.text,
                reason=str(exc),
            ) from None

    def _parse(
        self, method: str, path: str, response: requests.Response,
        parser: Callable[[Any], Any],
    ) -> Any:
        url = self.base_url + path
        try:
            return parser(self._decode(method, url, response))
        except models.MalformedAnswerError as exc:
            raise OakestraPermanentError(
                method=method, url=url, status=response.status_code, body=response.text,
                reason=f"unexpected answer: {exc}",
            ) from None

    def _expect(self, method: str, path: str, response: requests.Response, *ok: int) -> None:
        if response.status_code not in (ok or (200,)):
            raise self._error(method, self.base_url + path, response, "unexpected status")

    # ------------------------------------------------------------------ tokens

    def _token(self) -> str:
        with self._lock:
            margin = self._settings.token_refresh_margin_s
            if self._access is not None and self._clock() < self._expires_at - margin:
                return self._access
            if self._access is not None and self._refresh is not None:
                try:
                    return self._refresh_token()
                except OakestraPermanentError:
                    logger.info("Oakestra token refresh was refused; logging in again")
            return self._login()

    def _invalidate(self, token: str) -> None:
        with self._lock:
            if self._access == token:
                self._access = None
                self._refresh = None

    def _store(self, access: str, refresh: str | None) -> str:
        now = self._clock()
        expiry = token_expiry(access)
        self._access = access
        if refresh is not None:
            self._refresh = refresh
        self._expires_at = expiry if expiry is not None else now + DEFAULT_TOKEN_LIFETIME_S
        return access

    def _login(self) -> str:
        s = self._settings
        path = "/api/auth/login"
        url = self.base_url + path
        body: dict[str, str] = {"username": s.username, "password": s.password.get_secret_value()}
        if s.organization:
            body["organization_name"] = s.organization
        response = self._raw("POST", url, body=body)
        if response.status_code in (401, 403):
            raise OakestraAuthError(method="POST", url=url, status=response.status_code,
                                    body=response.text,
                                    reason=f"Oakestra refused the credentials of {s.username!r}")
        if response.status_code == 404:
            raise OakestraAuthError(method="POST", url=url, status=404, body=response.text,
                                    reason=f"unknown organization {s.organization!r}")
        self._expect("POST", path, response)
        tokens = self._parse("POST", path, response, models.parse_tokens)
        logger.info("logged in to Oakestra at %s as %s", self.base_url, s.username)
        return self._store(tokens.access, tokens.refresh)

    def _refresh_token(self) -> str:
        path = "/api/auth/refresh"
        if self._refresh is None:
            raise OakestraAuthError(method="POST", url=self.base_url + path, status=401,
                                    body="", reason="no refresh token: log in first")
        response = self._raw("POST", self.base_url + path, token=self._refresh)
        self._expect("POST", path, response)
        tokens = self._parse("POST", path, response, models.parse_tokens)
        return self._store(tokens.access, None)

    def login(self) -> None:
        """Log in now (normally done on first use)."""
        with self._lock:
            self._login()

    # ------------------------------------------------------------------ applications

    def create_application(self, sla: Mapping[str, Any]) -> list[models.Application]:
        """Create the application(s) of ``sla``; return every application of the caller.

        Raises
        ------
        OakestraConflictError
            If an application of that name and namespace exists (409).
        """
        path = "/api/application/"
        response = self._request("POST", path, body=sla)
        self._expect("POST", path, response)
        result: list[models.Application] = self._parse(
            "POST", path, response, models.parse_applications
        )
        return result

    def _user_id(self) -> str:
        if self._user_object_id is None:
            path = f"/api/user/{quote(self._settings.username, safe='')}"
            response = self._request("GET", path)
            self._expect("GET", path, response)
            doc = self._decode("GET", self.base_url + path, response)
            user_id = models.object_id(doc.get("_id")) if isinstance(doc, dict) else ""
            if not user_id:
                raise OakestraPermanentError(method="GET", url=self.base_url + path,
                                             status=200, body=response.text,
                                             reason="user document without _id")
            self._user_object_id = user_id
        return self._user_object_id

    def list_applications(self) -> list[models.Application]:
        """Return the caller's applications.

        Uses the admin listing and falls back to ``/api/applications/<user id>`` for
        non-admin users (403).
        """
        path = "/api/applications/"
        response = self._request("GET", path)
        if response.status_code == 403:
            path = f"/api/applications/{self._user_id()}"
            response = self._request("GET", path)
        self._expect("GET", path, response)
        apps: list[models.Application] = self._parse(
            "GET", path, response, models.parse_applications
        )
        user = self._settings.username
        return [a for a in apps if a.user_id in (None, user)]

    def delete_application(self, app_id: str) -> bool:
        """Delete the application and all its services; return whether it existed."""
        path = f"/api/application/{quote(app_id, safe='')}"
        response = self._request("DELETE", path)
        if response.status_code in (404, 501):
            return False
        self._expect("DELETE", path, response)
        return True

    # ------------------------------------------------------------------ services

    def append_services(self, sla: Mapping[str, Any]) -> models.AppendResult:
        """Add the microservices of ``sla`` to its (existing) application.

        Oakestra answers 200 even when it dropped a service again: check ``failed``.

        Raises
        ------
        OakestraPermanentError
            On 400 (invalid SLA, unknown application, ...).
        """
        path = "/api/service/"
        response = self._request("POST", path, body=sla)
        self._expect("POST", path, response)
        result: models.AppendResult = self._parse(
            "POST", path, response, models.parse_append_result
        )
        return result

    def list_services(self, app_id: str) -> list[models.Service] | None:
        """Return the services of application ``app_id`` (``None`` if it does not exist).

        v0.4.400 answers with the services of every application (its resource abstractor
        ignores the application filter, reference Appendix C item 2), so the listing is
        filtered here by each service's ``applicationID``.
        """
        path = f"/api/services/{quote(app_id, safe='')}"
        response = self._request("GET", path)
        if response.status_code == 404:
            return None
        self._expect("GET", path, response)
        services: list[models.Service] = self._parse(
            "GET", path, response, models.parse_services
        )
        return models.services_of(services, app_id)

    def get_service(self, service_id: str) -> models.Service | None:
        """Return service ``service_id`` (``None`` if it does not exist)."""
        path = f"/api/service/{quote(service_id, safe='')}"
        response = self._request("GET", path)
        if response.status_code == 404:
            return None
        self._expect("GET", path, response)
        service: models.Service = self._parse("GET", path, response, models.parse_service)
        return service

    def deploy_instance(self, service_id: str) -> None:
        """Ask for one more instance (Oakestra answers 200 whatever happens)."""
        path = f"/api/service/{quote(service_id, safe='')}/instance"
        response = self._request("POST", path)
        self._expect("POST", path, response)

    def deploy_instances(self, service_id: str, count: int) -> None:
        """Ask for ``count`` more instances."""
        for _ in range(count):
            self.deploy_instance(service_id)

    def undeploy_instance(self, service_id: str, instance_number: int) -> None:
        """Stop instance ``instance_number`` (Oakestra answers 200 whatever happens)."""
        path = f"/api/service/{quote(service_id, safe='')}/instance/{int(instance_number)}"
        response = self._request("DELETE", path)
        self._expect("DELETE", path, response)

    def delete_service(self, service_id: str) -> bool:
        """Undeploy every instance and delete the service; return whether it existed.

        Oakestra answers 500 for an unknown service; the service is then read to tell
        "already gone" from a real failure.
        """
        path = f"/api/service/{quote(service_id, safe='')}"
        response = self._request("DELETE", path)
        if response.status_code == 200:
            return True
        if response.status_code in (404, 500) and self.get_service(service_id) is None:
            return False
        raise self._error("DELETE", self.base_url + path, response, "service not deleted")

    # ------------------------------------------------------------------ clusters

    def list_clusters(self, *, active_only: bool = True) -> list[models.ClusterInfo]:
        """Return the registered clusters (only those that reported recently by default)."""
        path = "/api/clusters/active" if active_only else "/api/clusters/"
        response = self._raw("GET", self.base_url + path)
        self._expect("GET", path, response)
        clusters: list[models.ClusterInfo] = self._parse(
            "GET", path, response,
            lambda raw: models.parse_clusters(raw, default_active=active_only),
        )
        return clusters

    def close(self) -> None:
        """Close the HTTP session."""
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
