"""Ask an OCI registry (Distribution API v2) which platforms an image tag has.

This is the cache check: no pull, one or two small HTTP requests per image. Handles basic auth
and the bearer-token challenge of Docker-style registries; ``tls_verify=False`` also allows plain
HTTP (as buildah's ``--tls-verify=false`` does).
"""

from __future__ import annotations

import re
from typing import Any

import requests

from image_builder.outcome import BuildError

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def split_reference(ref: str) -> tuple[str, str, str]:
    """Split ``host[:port]/path:tag`` into ``(host, path, tag)``.

    Raises
    ------
    BuildError
        If the reference has no registry host or no tag.
    """
    host, _, rest = ref.partition("/")
    path, _, tag = rest.rpartition(":")
    if not host or not path or not tag or "/" in tag:
        raise BuildError(f"image reference {ref!r} is not host/path:tag")
    return host, path, tag


def platform_of(entry: dict[str, Any]) -> str:
    """Return ``os/arch[/variant]`` of a manifest-list entry or an image config."""
    parts = [str(entry.get("os", "")), str(entry.get("architecture", ""))]
    variant = entry.get("variant")
    if variant and not (parts[1] == "arm64" and variant == "v8"):
        parts.append(str(variant))
    return "/".join(parts)


class RegistryClient:
    """Reads manifests from one registry.

    Parameters
    ----------
    tls_verify
        Verify TLS certificates; ``False`` allows self-signed certificates and plain HTTP.
    credentials
        ``(username, password)`` or ``None`` for anonymous access.
    timeout
        Seconds per HTTP request.
    """

    def __init__(self, *, tls_verify: bool, credentials: tuple[str, str] | None,
                 timeout: float = 30.0) -> None:
        self.tls_verify = tls_verify
        self.credentials = credentials
        self.timeout = timeout
        self.session = requests.Session()
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def platforms(self, ref: str) -> set[str] | None:
        """Return the platforms ``ref`` exists for, or ``None`` if the tag does not exist.

        Raises
        ------
        BuildError
            If the registry cannot be reached or answers with an error other than 404.
        """
        host, path, tag = split_reference(ref)
        manifest = self._get_json(host, f"/v2/{path}/manifests/{tag}", MANIFEST_TYPES)
        if manifest is None:
            return None
        entries = manifest.get("manifests")
        if isinstance(entries, list):
            return {platform_of(e.get("platform", {})) for e in entries if isinstance(e, dict)}
        digest = manifest.get("config", {}).get("digest")
        if not digest:
            return set()
        config = self._get_json(host, f"/v2/{path}/blobs/{digest}", "*/*")
        return {platform_of(config)} if config else set()

    def _get_json(self, host: str, path: str, accept: str) -> dict[str, Any] | None:
        response = self._request(host, path, accept)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise BuildError(f"registry {host}: GET {path} answered {response.status_code}: "
                             f"{response.text[:300]}")
        data = response.json()
        return data if isinstance(data, dict) else None

    def _request(self, host: str, path: str, accept: str) -> requests.Response:
        schemes = ("https",) if self.tls_verify else ("https", "http")
        last: Exception | None = None
        for scheme in schemes:
            url = f"{scheme}://{host}{path}"
            try:
                response = self._get(url, host, accept)
            except requests.exceptions.SSLError as exc:
                last = exc
                continue
            except requests.exceptions.ConnectionError as exc:
                last = exc
                continue
            if response.status_code == 401:
                response = self._authenticate_and_retry(response, url, host, accept)
            return response
        raise BuildError(f"registry {host} is not reachable: {last}")

    def _get(self, url: str, host: str, accept: str) -> requests.Response:
        headers = {"Accept": accept}
        token = self._tokens.get(host)
        auth = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.credentials:
            auth = self.credentials
        return self.session.get(url, headers=headers, auth=auth, timeout=self.timeout,
                                verify=self.tls_verify, allow_redirects=True)

    def _authenticate_and_retry(self, response: requests.Response, url: str, host: str,
                                accept: str) -> requests.Response:
        challenge = response.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer"):
            return response
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm:
            return response
        token_response = self.session.get(realm, params=params, auth=self.credentials,
                                          timeout=self.timeout, verify=self.tls_verify)
        if token_response.status_code >= 400:
            raise BuildError(f"registry {host}: token request answered "
                             f"{token_response.status_code}; check the registry credentials")
        body = token_response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            return response
        self._tokens[host] = str(token)
        return self._get(url, host, accept)
