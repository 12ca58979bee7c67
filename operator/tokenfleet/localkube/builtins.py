"""Defaults and validation of the built-in kinds the project creates (Deployment, Service, Namespace, Secret)."""

from __future__ import annotations

import base64
import random
from typing import Any

from tokenfleet.localkube import quantity
from tokenfleet.localkube.resources import Resource


def _pod_spec_defaults(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("resources", {})
        quantity.canonical_resources(container["resources"])
        for env in container.get("env") or []:
            field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
            if isinstance(field_ref, dict):
                field_ref.setdefault("apiVersion", "v1")
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
        for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if isinstance(probe, dict):
                for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                                   ("failureThreshold", 3)):
                    probe.setdefault(key, value)
                if isinstance(probe.get("httpGet"), dict):
                    probe["httpGet"].setdefault("scheme", "HTTP")


def _deployment_defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template_defaults(obj)


def _template_defaults(obj: dict) -> None:
    template_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec")
    if isinstance(template_spec, dict):
        _pod_spec_defaults(template_spec)


def _service_defaults(obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    if spec.get("clusterIP") != "None":
        ip = old_spec.get("clusterIP") or spec.get("clusterIP") or \
            f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    obj.setdefault("status", {"loadBalancer": {}})


def _secret_defaults(obj: dict) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def default(res: Resource, obj: dict, old: dict | None) -> None:
    """Fill the defaults the real API server's defaulting functions would (a useful subset)."""
    if res.custom or res.group not in ("", "apps"):
        return
    if res.plural == "deployments":
        _deployment_defaults(obj)
    elif res.plural == "statefulsets":
        _template_defaults(obj)
    elif res.plural == "pods" and isinstance(obj.get("spec"), dict):
        _pod_spec_defaults(obj["spec"])
    elif res.plural == "services":
        _service_defaults(obj, old)
    elif res.plural == "secrets":
        _secret_defaults(obj)
    elif res.plural == "namespaces":
        name = obj["metadata"].get("name", "")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")


def _required(value: Any, field: str) -> list[tuple[str, str]]:
    return [] if value not in (None, "", [], {}) else [(field, f"{field}: Required value")]


def _validate_containers(spec: dict, field: str) -> list[tuple[str, str]]:
    containers = spec.get("containers")
    causes = _required(containers, f"{field}.containers")
    for n, container in enumerate(containers or []):
        where = f"{field}.containers[{n}]"
        if not isinstance(container, dict):
            causes.append((where, f"{where}: Invalid value: must be an object"))
            continue
        causes += _required(container.get("name"), f"{where}.name")
        causes += _required(container.get("image"), f"{where}.image")
    return causes


def _validate_deployment(obj: dict) -> list[tuple[str, str]]:
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    causes = _required(spec.get("selector"), "spec.selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        causes.append(("spec.template.metadata.labels", f"spec.template.metadata.labels: Invalid value: "
                       f"{labels}: `selector` does not match template `labels`"))
    if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        causes.append(("spec.replicas", f"spec.replicas: Invalid value: {spec['replicas']}: must be greater "
                       "than or equal to 0"))
    return causes + _validate_containers((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")


def _validate_service(obj: dict) -> list[tuple[str, str]]:
    causes = []
    for n, port in enumerate((obj.get("spec") or {}).get("ports") or []):
        if not isinstance(port, dict) or not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
            causes.append((f"spec.ports[{n}].port", f"spec.ports[{n}].port: Invalid value: "
                           f"{(port or {}).get('port')}: must be between 1 and 65535, inclusive"))
    return causes


def _validate_crd(obj: dict) -> list[tuple[str, str]]:
    spec, name = obj.get("spec") or {}, obj["metadata"].get("name", "")
    names = spec.get("names") or {}
    if not spec.get("group") or not names.get("plural") or not names.get("kind"):
        return [("spec", "spec: Required value: group, names.plural and names.kind are required")]
    causes = []
    if name != f"{names['plural']}.{spec['group']}":
        causes.append(("metadata.name", f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+'
                       "spec.group"))
    if sum(1 for v in spec.get("versions") or [] if v.get("storage")) != 1:
        causes.append(("spec.versions", "spec.versions: Invalid value: must have exactly one version marked as "
                       "storage version"))
    return causes


def validate(res: Resource, obj: dict) -> list[tuple[str, str]]:
    """(field, message) pairs for what the real API server's validation of these kinds would refuse."""
    if res.group == "apiextensions.k8s.io":
        return _validate_crd(obj)
    if res.group == "apps" and res.plural == "deployments":
        return _validate_deployment(obj)
    if res.group == "" and res.plural == "services":
        return _validate_service(obj)
    if res.group == "" and res.plural == "pods":
        return _validate_containers(obj.get("spec") or {}, "spec")
    return []
