"""kopf wiring of the operator: one module per kind, each with ``register(registry, config)``.

``build_registry`` imports the modules listed in MODULES and lets each register its handlers on
one explicit ``kopf.OperatorRegistry`` (no import-time side effects on kopf's global registry).
``kopf_settings`` holds every kopf setting the operator relies on.
"""

from __future__ import annotations

import importlib
import logging
import random

import kopf

from tokenfleet.config import OperatorConfig

MODULES = ("modeltier", "cachepolicy", "fleet", "children", "autoscaler")
PREFIX = "tokenfleet.io"


def build_registry(config: OperatorConfig, registry: kopf.OperatorRegistry | None = None) -> kopf.OperatorRegistry:
    """A registry with every handler module's handlers, and a login through the kubernetes client."""
    registry = registry if registry is not None else kopf.OperatorRegistry()

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs) -> kopf.ConnectionInfo | None:
        """In-cluster service account, else $KUBECONFIG: the same credentials as tokenfleet.kube."""
        return kopf.login_via_client(**kwargs)

    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").register(registry, config)
    return registry


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    """kopf's settings for tokenfleet (see docs/operator.md, "kopf settings")."""
    from tokenfleet.handlers.children import SELECTOR, WATCHED

    settings = kopf.OperatorSettings()
    # Handler progress and the last-handled spec live in annotations, never in status: status is
    # the users' view (conditions), and GitOps tools that diff status stay quiet.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{PREFIX}/finalizer"  # only used if a handler needs one (none do)
    # Events: only those we post deliberately (Warnings about problems), never one per log line.
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "tokenfleet-operator"
    # Children: watch only ours, filtered by the API server.
    for selector in WATCHED:
        settings.watching.label_selectors[selector] = SELECTOR
    settings.watching.server_timeout = 300  # restart long watches now and then (proxies drop idle streams)
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    # Peering: several replicas share one peering name and only the highest-priority one acts.
    # Without a name: standalone (no peering objects read or written).
    settings.peering.standalone = not config.peering
    if config.peering:
        settings.peering.name = config.peering
        settings.peering.mandatory = True  # fail loudly if the KopfPeering CRD/object is missing
        # Peers of equal priority all freeze (kopf's rule), so each replica draws its own:
        # one acts, the others stand by until it disappears.
        settings.peering.priority = random.randint(1, 2**31 - 1)
    settings.peering.clusterwide = config.clusterwide
    return settings
