"""Objects the CRD schema never checked (stored under an older CRD, or a CRD applied without its schema):
the operator reports each on its own resource and keeps serving the others, without tracebacks or retries.

This module's cluster registers the CRDs with a schema that accepts anything.
"""

from __future__ import annotations

import pytest
import yaml

from tests.integration.operator.operator_harness import CRDS, Cluster, emulated_cluster, wait_for
from tests.integration.operator.operator_scenarios import (
    API,
    assert_quiet,
    tier_doc,
    wait_reason,
    wait_reconciled,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    """The emulator with the repository's CRDs, their schemas replaced by 'anything goes'."""
    loose = tmp_path_factory.mktemp("loose-crds")
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            version["schema"]["openAPIV3Schema"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        (loose / path.name).write_text(yaml.safe_dump(crd))
    with emulated_cluster(tmp_path_factory.mktemp("operator"), crds=loose) as emulated:
        yield emulated


def doc(kind: str, name: str, spec) -> dict:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, **({} if spec is None else {"spec": spec})}


BROKEN = [
    (doc("ModelTier", "no-spec", None), "spec.model"),
    (doc("ModelTier", "text-spec", "oops"), "spec"),
    (tier_doc("bad-values", quantization={"weights": "fp4"}, scaling={"minReplicas": 5, "maxReplicas": 1}),
     "spec.quantization.weights"),
    # a label key the real CRD schema cannot check either (no CEL rule over map keys)
    (tier_doc("bad-label-key", gpu={"type": "nvidia-l4", "nodeSelector": {"GPU Pool": "a"}}), "spec.gpu.nodeSelector"),
    (doc("InferenceFleet", "text-fleet", "oops"), "spec"),
    (doc("InferenceFleet", "odd-fleet", {"tiers": "fine", "cachePolicyRef": 5}), "spec.tiers"),
    (doc("CachePolicy", "redis-without-url", {"store": {"type": "redis"}}), "spec.store"),
]


def test_objects_the_schema_never_checked_are_invalid_specs_naming_the_field(cluster, ns, operator):
    cluster.apply(ns, [obj for obj, _ in BROKEN] + [tier_doc("fine"), doc("InferenceFleet", "f", {"tiers": ["fine"]})])
    for obj, field in BROKEN:
        ready = wait_reason(cluster, obj["kind"], ns, obj["metadata"]["name"], "InvalidSpec")
        assert f"{obj['kind']} {obj['metadata']['name']}: {field}:" in ready["message"]
        wait_for(lambda o=obj: cluster.events(ns, o["metadata"]["name"], "InvalidSpec"), "the Warning Event")
    wait_reconciled(cluster, "ModelTier", ns, "fine")  # the fine ones are served meanwhile
    wait_reconciled(cluster, "InferenceFleet", ns, "f")
    wait_for(lambda: cluster.get("InferenceFleet", ns, "f")["status"].get("readyTiers") == 1, "the fleet's ready tier")
    assert_quiet(cluster, ns)  # nothing retried
    assert operator.alive() and "Traceback" not in operator.log_tail(200_000)
