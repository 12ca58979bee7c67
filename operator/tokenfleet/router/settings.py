"""Router settings, read once: a RouterConfig (file or flags), the API keys, and where to listen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenfleet.api.routerconfig import RouterConfig, TierEndpoint

DEFAULT_TENANT = "default"


class SettingsError(ValueError):
    """A flag, config file or keys file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class RouterSettings:
    """Everything the router app needs, resolved from the command line."""

    config: RouterConfig
    api_keys: dict[str, str] | None = None  # key -> tenant; None: open router
    host: str = "127.0.0.1"
    port: int = 8080
    classifier: str | None = None  # "module:function" overriding routing.complexity.classifier


def parse_tier(text: str) -> TierEndpoint:
    """``NAME=URL`` (the served model name is NAME); the URL gets ``/v1`` appended if it lacks it."""
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise SettingsError(f"--tier {text!r}: expected NAME=URL, e.g. small=http://127.0.0.1:8001/v1")
    url = url.rstrip("/")
    if not url.startswith("http://"):
        raise SettingsError(f"--tier {text!r}: URL must start with http:// (tiers are in-cluster services; "
                            "the router does not speak TLS to them)")
    if not url.endswith("/v1"):
        url += "/v1"
    return TierEndpoint(name=name, url=url, served_model=name)


def load_api_keys(path: str | Path) -> dict[str, str]:
    """Lines ``KEY=TENANT`` (blank lines and ``#`` comments ignored) -> {key: tenant}."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise SettingsError(f"--api-keys {path}: {err.strerror or err}") from None
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, tenant = line.partition("=")
        if not sep or not key.strip() or not tenant.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=TENANT")
        keys[key.strip()] = tenant.strip()
    if not keys:
        raise SettingsError(f"{path}: no KEY=TENANT lines (omit --api-keys for an open router)")
    return keys


def build_config(*, config_file: str | None = None, tiers: list[str] | None = None, cache_url: str | None = None,
                 api_keys_file: str | None = None, mode: str | None = None, fleet: str | None = None,
                 local_cache_entries: int | None = None, coalescing: bool | None = None) -> RouterConfig:
    """A RouterConfig from a file and/or flags; flags win over the file."""
    data: dict = {}
    if config_file:
        try:
            data = RouterConfig.load(config_file).model_dump(by_alias=True, exclude_none=True)
        except OSError as err:
            raise SettingsError(f"--config {config_file}: {err.strerror or err}") from None
        except ValueError as err:  # pydantic ValidationError and YAML errors
            raise SettingsError(f"--config {config_file}: {err}") from None
    if tiers:
        data["tiers"] = [parse_tier(t).model_dump(by_alias=True) for t in tiers]
    if not data.get("tiers"):
        raise SettingsError("no tiers: give --config FILE or at least one --tier NAME=URL")
    routing = data.setdefault("routing", {})
    if mode:
        routing["mode"] = mode
    elif not config_file:
        routing["mode"] = "cascade" if len(data["tiers"]) > 1 else "fixed"
    cache = data.setdefault("cache", {})
    if cache_url is not None:
        cache["url"] = cache_url or None
    if local_cache_entries is not None:
        cache["localEntries"] = local_cache_entries
    if coalescing is not None:
        data.setdefault("coalescing", {})["enabled"] = coalescing
    if api_keys_file is not None:
        data["apiKeysFile"] = api_keys_file
    if fleet:
        data["fleet"] = fleet
    try:
        return RouterConfig.model_validate(data)
    except ValueError as err:
        raise SettingsError(str(err)) from None


def build_settings(config: RouterConfig, *, host: str = "127.0.0.1", port: int = 8080,
                   classifier: str | None = None) -> RouterSettings:
    """Resolve the keys file named by the config; the result is what ``app.build_app`` takes."""
    keys = load_api_keys(config.api_keys_file) if config.api_keys_file else None
    return RouterSettings(config=config, api_keys=keys, host=host, port=port, classifier=classifier)
