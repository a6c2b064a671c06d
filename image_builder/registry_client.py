"""Ask an OCI registry (Distribution API v2) which platforms an image tag has, and their digests.

This is the cache check and the source of each platform variant's digest reference: no pull,
one or two small HTTP requests per image. Handles basic auth
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


def digest_reference(ref: str, digest: str) -> str:
    """Return ``host/path@digest`` for the image ``digest`` of ``ref`` (``host/path:tag``)."""
    host, path, _ = split_reference(ref)
    return f"{host}/{path}@{digest}"


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
        found = self.variants(ref)
        return None if found is None else set(found)

    def variants(self, ref: str) -> dict[str, str] | None:
        """Return platform -> manifest digest of each image ``ref`` holds (``None``: no tag).

        A manifest list yields one entry per platform; a single image yields its platform and
        the digest the registry reports for it (``Docker-Content-Digest``).

        Raises
        ------
        BuildError
            If the registry cannot be reached or answers with an error other than 404.
        """
        host, path, tag = split_reference(ref)
        return self._variants_at(host, path, tag)

    def variants_at(self, ref: str, digest: str) -> dict[str, str] | None:
        """:meth:`variants` of the manifest ``digest`` in ``ref``'s repository (not its tag)."""
        host, path, _ = split_reference(ref)
        return self._variants_at(host, path, digest)

    def _variants_at(self, host: str, path: str, reference: str) -> dict[str, str] | None:
        found = self._get_json(host, f"/v2/{path}/manifests/{reference}", MANIFEST_TYPES)
        if found is None:
            return None
        manifest, digest = found
        entries = manifest.get("manifests")
        if isinstance(entries, list):
            return {platform_of(e.get("platform", {})): str(e.get("digest", ""))
                    for e in entries if isinstance(e, dict)}
        config_digest = manifest.get("config", {}).get("digest")
        if not config_digest:
            return {}
        config = self._get_json(host, f"/v2/{path}/blobs/{config_digest}", "*/*")
        return {platform_of(config[0]): digest} if config else {}

    def _get_json(self, host: str, path: str,
                  accept: str) -> tuple[dict[str, Any], str] | None:
        """Return the JSON object at ``path`` and its ``Docker-Content-Digest`` (``None``: 404)."""
        response = self._request(host, path, accept)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise BuildError(f"registry {host}: GET {path} answered {response.status_code}: "
                             f"{response.text[:300]}")
        data = response.json()
        if not isinstance(data, dict):
            return None
        return data, response.headers.get("Docker-Content-Digest", "")

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
