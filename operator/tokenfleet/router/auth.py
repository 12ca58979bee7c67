"""API keys: ``Authorization: Bearer KEY`` -> tenant, from the KEY=TENANT lines of the keys file."""

from __future__ import annotations

from tokenfleet.router.errors import unauthorized
from tokenfleet.router.settings import DEFAULT_TENANT


def tenant_for(authorization: bytes | None, keys: dict[str, str] | None) -> str:
    """The caller's tenant; an open router (no keys) puts everyone in the default tenant.

    Raises a 401 RouterError for a missing, malformed or unknown key.
    """
    if keys is None:
        return DEFAULT_TENANT
    if not authorization:
        raise unauthorized("no API key: send Authorization: Bearer <key>")
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("malformed Authorization header: expected Bearer <key>")
    tenant = keys.get(token.strip())
    if tenant is None:
        raise unauthorized("unknown API key")
    return tenant
