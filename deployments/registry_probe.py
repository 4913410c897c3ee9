"""Can a container image be pulled without credentials? Asked of the registry itself.

RunPod pulls a pod's image with the registry credential named in the create request, or
anonymously. An image that cannot be pulled anonymously and has no credential leaves the pod
retrying the pull, billed, until someone notices; the worker asks first. The question is the
Docker Registry HTTP API v2's (the OCI distribution spec): `GET /v2/<repo>/manifests/<ref>`,
and when that answers 401 with a `Bearer` challenge, the same request with an anonymous token
from the challenge's realm. Docker Hub answers 401 both for a private repository and for one
that does not exist, so "needs credentials" means "not pullable anonymously".

Loopback registries (`localhost:5000/...`, `127.0.0.1:...`) are spoken to over plain HTTP, as
Docker itself does; every other registry over HTTPS.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import re
from dataclasses import dataclass

import httpx

logger = logging.getLogger(__name__)

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class Access(enum.Enum):
    PUBLIC = "public"  # pullable without credentials
    NEEDS_CREDENTIALS = "needs credentials"  # private, or does not exist
    NOT_FOUND = "not found"  # the registry says the tag or repository does not exist
    UNKNOWN = "unknown"  # the registry could not be asked (network, odd answer)


@dataclass(frozen=True)
class ImageRef:
    """`[registry/]repository[:tag][@digest]`, with Docker's defaults filled in."""

    registry: str
    repository: str
    reference: str  # a tag or a digest

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        rest, _, digest = image.partition("@")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
        name, colon, tag = path.rpartition(":")
        if not colon or "/" in tag:
            name, tag = path, "latest"
        if registry == DOCKER_HUB and "/" not in name:
            name = f"library/{name}"
        return cls(registry, name, digest or tag)

    @property
    def api_base(self) -> str:
        host = DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry
        scheme = "http" if _is_loopback(host.rsplit(":", 1)[0].strip("[]")) else "https"
        return f"{scheme}://{host}/v2"

    @property
    def manifest_url(self) -> str:
        return f"{self.api_base}/{self.repository}/manifests/{self.reference}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def anonymous_access(image: str, timeout_s: float = 10.0) -> tuple[Access, str]:
    """Whether `image` can be pulled without credentials, and what the registry said."""
    ref = ImageRef.parse(image)
    headers = {"Accept": MANIFEST_TYPES}
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as http:
            response = await http.get(ref.manifest_url, headers=headers)
            if response.status_code == 401:
                token = await _anonymous_token(http, response, ref)
                if token is None:
                    return Access.NEEDS_CREDENTIALS, "the registry grants no anonymous token"
                headers["Authorization"] = f"Bearer {token}"
                response = await http.get(ref.manifest_url, headers=headers)
    except httpx.HTTPError as exc:
        return Access.UNKNOWN, f"registry {ref.registry} not reachable ({type(exc).__name__})"
    status = response.status_code
    if status == 200:
        return Access.PUBLIC, "anonymous pull allowed"
    if status in (401, 403):
        return Access.NEEDS_CREDENTIALS, f"anonymous pull refused ({status})"
    if status == 404:
        return Access.NOT_FOUND, f"{ref.repository}:{ref.reference} does not exist (404)"
    return Access.UNKNOWN, f"registry {ref.registry} answered {status}"


async def _anonymous_token(
    http: httpx.AsyncClient, challenge: httpx.Response, ref: ImageRef
) -> str | None:
    """A token from the `WWW-Authenticate: Bearer realm=...` challenge, asked without
    credentials; None when the challenge is not Bearer or no token is granted."""
    header = challenge.headers.get("WWW-Authenticate", "")
    if not header.lower().startswith("bearer"):
        return None
    params = dict(CHALLENGE_PARAM.findall(header))
    realm = params.pop("realm", None)
    if not realm:
        return None
    params.setdefault("scope", f"repository:{ref.repository}:pull")
    response = await http.get(realm, params=params)
    if response.status_code != 200:
        return None
    body = response.json()
    return body.get("token") or body.get("access_token")
