"""The operator's child diff: only fields it sets are compared; nothing to change means no patch."""

import json

import pytest
import yaml

from tokenfleet.kube import LAST_APPLIED, last_applied, with_last_applied, without_paths
from tokenfleet.patching import covers, merge_patch, scalar_equal
from tokenfleet.render import Meta, build_modeltier
from tokenfleet.api.v1alpha1 import ModelTierSpec

SPEC = ModelTierSpec.model_validate({"model": {"source": "hf://m/x", "parametersB": 1}})


@pytest.mark.parametrize(
    "desired, live, equal",
    [
        (1, 1, True),
        (1, "1", True),  # the API serves quantities as strings
        ("500m", "500m", True),
        (1, 2, False),
        (True, True, True),
        (True, "true", False),
        (True, 1, False),
        (0.9, 0.9, True),
        ("a", "b", False),
        ("1", 1.0, False),
    ],
)
def test_scalar_equality_tolerates_quantities_served_as_strings(desired, live, equal):
    assert scalar_equal(desired, live) is equal


CASES = [
    # (name, desired, live, last, expected patch)
    ("identical", {"a": 1}, {"a": 1}, None, None),
    ("server defaults are ignored", {"spec": {"ports": [{"port": 80}]}},
     {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}}, None, None),
    ("a changed scalar patches only that field", {"spec": {"a": 1, "b": 2}}, {"spec": {"a": 1, "b": 3}}, None,
     {"spec": {"b": 2}}),
    ("a missing field is added", {"metadata": {"labels": {"x": "1"}}}, {"metadata": {}}, None,
     {"metadata": {"labels": {"x": "1"}}}),
    ("a list that differs is replaced whole", {"args": ["--a", "--b"]}, {"args": ["--a"]}, None,
     {"args": ["--a", "--b"]}),
    ("a longer live list is replaced", {"env": [{"name": "A"}]}, {"env": [{"name": "A"}, {"name": "B"}]}, None,
     {"env": [{"name": "A"}]}),
    ("other actors' keys are kept", {"metadata": {"annotations": {"ours": "1"}}},
     {"metadata": {"annotations": {"ours": "1", "theirs": "2"}}}, {"metadata": {"annotations": {"ours": "1"}}},
     None),
    ("a key we set last time and no longer set is removed", {"nodeSelector": {"new": "1"}},
     {"nodeSelector": {"old": "1", "new": "1"}}, {"nodeSelector": {"old": "1"}}, {"nodeSelector": {"old": None}}),
    ("a list whose element lost a field is replaced", {"env": [{"name": "A", "value": "1"}]},
     {"env": [{"name": "A", "value": "1", "valueFrom": {"x": 1}}]},
     {"env": [{"name": "A", "value": "1", "valueFrom": {"x": 1}}]}, {"env": [{"name": "A", "value": "1"}]}),
    ("a type change replaces the value", {"a": {"b": 1}}, {"a": "text"}, None, {"a": {"b": 1}}),
    ("None in desired means not ours", {"a": None}, {"a": 5}, None, None),
]


@pytest.mark.parametrize("name, desired, live, last, expected", CASES, ids=[c[0] for c in CASES])
def test_merge_patch_holds_only_what_differs(name, desired, live, last, expected):
    assert merge_patch(desired, live, last) == expected


def test_covers_means_every_desired_field_is_live():
    assert covers({"a": [{"b": 1}]}, {"a": [{"b": 1, "c": 2}], "d": 3})
    assert not covers({"a": [{"b": 1}]}, {"a": [{"b": 2}]})


def served(obj: dict) -> dict:
    """What an API server might serve back: defaults added, quantities as strings."""
    live = json.loads(json.dumps(obj))
    live["metadata"].update(uid="u1", resourceVersion="7", generation=1, creationTimestamp="2026-01-01T00:00:00Z")
    live["spec"]["progressDeadlineSeconds"] = 600
    pod = live["spec"]["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    for c in pod["containers"]:
        c.update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
        c["resources"] = {k: {r: str(q) for r, q in v.items()} for k, v in c["resources"].items()}
        for p in c["ports"]:
            p.setdefault("protocol", "TCP")
    live["status"] = {"replicas": 1}
    return live


def test_a_rendered_engine_deployment_served_back_needs_no_patch():
    desired = build_modeltier(Meta("t", "ns", "uid-1"), SPEC)[0]
    owned = without_paths(desired, (("spec", "replicas"),))
    live = served(with_last_applied(desired, owned))
    live["spec"]["replicas"] = 5  # the autoscaler's
    assert merge_patch(with_last_applied(owned, owned), live, last_applied(live)) is None


def test_a_spec_change_patches_the_args_and_the_record_but_not_replicas():
    before = build_modeltier(Meta("t", "ns", "uid-1"), SPEC)[0]
    keep = (("spec", "replicas"),)
    live = served(with_last_applied(before, without_paths(before, keep)))
    live["spec"]["replicas"] = 5
    changed = SPEC.model_copy(update={"engine": SPEC.engine.model_copy(update={"max_num_seqs": 64})})
    after = without_paths(build_modeltier(Meta("t", "ns", "uid-1"), changed)[0], keep)
    patch = merge_patch(with_last_applied(after, after), live, last_applied(live))
    assert set(patch) == {"metadata", "spec"}
    assert set(patch["metadata"]) == {"annotations"} and LAST_APPLIED in patch["metadata"]["annotations"]
    assert "replicas" not in patch["spec"]
    assert "--max-num-seqs" in patch["spec"]["template"]["spec"]["containers"][0]["args"]


def test_without_paths_copies_and_ignores_absent_paths():
    obj = {"spec": {"replicas": 2, "x": 1}}
    assert without_paths(obj, (("spec", "replicas"), ("status", "a"))) == {"spec": {"x": 1}}
    assert obj["spec"]["replicas"] == 2


def test_last_applied_reads_back_what_was_recorded_and_tolerates_garbage():
    stamped = with_last_applied({"metadata": {"name": "a"}}, {"k": 1})
    assert last_applied(stamped) == {"k": 1}
    assert last_applied({"metadata": {"annotations": {LAST_APPLIED: "not json"}}}) is None
    assert last_applied({"metadata": {}}) is None
    assert yaml.safe_load(stamped["metadata"]["annotations"][LAST_APPLIED]) == {"k": 1}
