"""The generated CRD schemas, applied as the API server applies them: examples pass, the issue's bad values fail.

Uses the schema admission of tokenfleet.localkube (pruning, defaults, OpenAPI v3.0 checks, CEL rules),
the same code that answers `kubectl apply` in the integration tests and the demo.
"""

from pathlib import Path

import pytest
import yaml

from tokenfleet.crds import render_crds
from tokenfleet.localkube.schema import admit, prune_and_default

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = {
    crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for crd in (yaml.safe_load(t) for t in render_crds().values())
}


def admitted(obj: dict) -> list[tuple[str, str]]:
    schema = SCHEMAS[obj["kind"]]
    return admit(schema, prune_and_default(schema, obj), None)


def example_objects() -> list[dict]:
    docs = []
    for path in [*sorted((REPO / "examples").glob("*.yaml")), *sorted((REPO / "examples").glob("*/*.yaml"))]:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("apiVersion") == "tokenfleet.io/v1alpha1"]
    return docs


@pytest.mark.parametrize("obj", example_objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_example_is_accepted_by_its_crd_schema(obj):
    assert admitted(obj) == []


def tier(**spec) -> dict:
    base = {"model": {"source": "org/m", "parametersB": 8}}
    return {"apiVersion": "tokenfleet.io/v1alpha1", "kind": "ModelTier", "metadata": {"name": "t"}, "spec": {**base, **spec}}


@pytest.mark.parametrize(
    "obj,field",
    [
        (tier(quantization={"weights": "fp4"}), "spec.quantization.weights"),
        (tier(gpu={"count": 0}), "spec.gpu.count"),
        (tier(gpu={"hourlyCostUSD": -0.5}), "spec.gpu.hourlyCostUSD"),
        (tier(scaling={"minReplicas": -1}), "spec.scaling.minReplicas"),
        (tier(replicas=-2), "spec.replicas"),
        (tier(scaling={"minReplicas": 5, "maxReplicas": 2}), "spec.scaling"),
        (tier(engine={"resources": {"limits": {"memory": "64 GB"}}}), "spec.engine.resources.limits[memory]"),
        (tier(model={"source": "org/m", "hfTokenSecretRef": {"name": "HF_Token", "key": "token"}}),
         "spec.model.hfTokenSecretRef.name"),
        (tier(model={"source": "org/m", "hfTokenSecretRef": {"name": "hf", "key": "a key"}}),
         "spec.model.hfTokenSecretRef.key"),
        (tier(gpu={"nodeSelector": {"pool": "gpu pool"}}), "spec.gpu.nodeSelector[pool]"),
        ({"apiVersion": "tokenfleet.io/v1alpha1", "kind": "CachePolicy", "metadata": {"name": "c"},
          "spec": {"semantic": {"similarityThreshold": 1.5}}}, "spec.semantic.similarityThreshold"),
        ({"apiVersion": "tokenfleet.io/v1alpha1", "kind": "InferenceFleet", "metadata": {"name": "f"},
          "spec": {"tiers": ["a"], "routing": {"mode": "random"}}}, "spec.routing.mode"),
    ],
)
def test_bad_values_are_rejected_by_the_schema_naming_the_field(obj, field):
    causes = admitted(obj)
    assert causes and any(f == field for f, _ in causes), causes
