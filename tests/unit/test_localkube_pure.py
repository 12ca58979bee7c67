"""The emulator's pure parts, table-tested: selectors, patches, JSONPath, schema checks, ages, watch translation."""

from __future__ import annotations

import pytest

from tokenfleet.localkube import jsonpath, patching, schema, selectors, tables
from tokenfleet.localkube.errors import KubeError
from tokenfleet.localkube.resources import Resource
from tokenfleet.localkube.store import Event
from tokenfleet.localkube.watch import Watcher

LABELS = {"app": "web", "tier": "gold", "env": "prod"}


@pytest.mark.parametrize(("selector", "matches"), [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app!=web", False),
    ("app=api", False),
    ("missing!=x", True),
    ("tier in (gold,silver)", True),
    ("tier in (silver)", False),
    ("tier notin (silver, bronze)", True),
    ("missing notin (x)", True),
    ("tier", True),
    ("!tier", False),
    ("!missing", True),
    ("app=web,tier in (gold),!missing,env", True),
    ("app=web,env=dev", False),
])
def test_label_selectors_match_like_the_api_server(selector, matches):
    requirements = selectors.parse_label_selector(selector)
    assert selectors.labels_match(requirements, {"metadata": {"labels": LABELS}}) is matches


@pytest.mark.parametrize("selector", ["a in (", "a in ()", "=x", "a b"])
def test_malformed_label_selectors_are_bad_requests(selector):
    with pytest.raises(KubeError) as err:
        selectors.parse_label_selector(selector)
    assert err.value.code == 400


@pytest.mark.parametrize(("selector", "matches"), [
    ("metadata.name=a", True), ("metadata.name!=a", False), ("metadata.namespace=ns", True),
    ("metadata.name=a,metadata.namespace=other", False),
])
def test_field_selectors_match_name_and_namespace(selector, matches):
    reqs = selectors.parse_field_selector(selector, "configmaps")
    assert selectors.fields_match(reqs, {"metadata": {"name": "a", "namespace": "ns"}}) is matches


@pytest.mark.parametrize(("doc", "patch", "expected"), [
    ({"a": 1, "b": {"c": 2}}, {"b": {"d": 3}}, {"a": 1, "b": {"c": 2, "d": 3}}),
    ({"a": 1, "b": 2}, {"a": None}, {"b": 2}),
    ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
    ({"a": {"b": 1}}, {"a": "x"}, {"a": "x"}),
])
def test_merge_patch_follows_rfc_7386(doc, patch, expected):
    assert patching.apply_merge_patch(doc, patch) == expected


@pytest.mark.parametrize(("ops", "expected"), [
    ([{"op": "add", "path": "/b", "value": 2}], {"a": [1], "b": 2}),
    ([{"op": "add", "path": "/a/-", "value": 2}], {"a": [1, 2]}),
    ([{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1]}),
    ([{"op": "remove", "path": "/a/0"}], {"a": []}),
    ([{"op": "replace", "path": "/a", "value": "x"}], {"a": "x"}),
    ([{"op": "move", "from": "/a", "path": "/b"}], {"b": [1]}),
    ([{"op": "copy", "from": "/a", "path": "/b"}], {"a": [1], "b": [1]}),
    ([{"op": "test", "path": "/a", "value": [1]}, {"op": "remove", "path": "/a"}], {}),
])
def test_json_patch_operations(ops, expected):
    assert patching.apply_json_patch({"a": [1]}, ops) == expected


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/a", "value": [2]}],
    [{"op": "remove", "path": "/missing"}],
    [{"op": "replace", "path": "/missing", "value": 1}],
    [{"op": "add", "path": "/x/y", "value": 1}],
])
def test_json_patch_failures_are_422(ops):
    with pytest.raises(KubeError) as err:
        patching.apply_json_patch({"a": [1]}, ops)
    assert err.value.code == 422


@pytest.mark.parametrize(("doc", "patch", "expected"), [
    ({"containers": [{"name": "a", "image": "1"}]}, {"containers": [{"name": "a", "image": "2"}]},
     {"containers": [{"name": "a", "image": "2"}]}),
    ({"containers": [{"name": "a"}]}, {"containers": [{"name": "b"}]}, {"containers": [{"name": "a"}, {"name": "b"}]}),
    ({"containers": [{"name": "a"}, {"name": "b"}]}, {"containers": [{"name": "a", "$patch": "delete"}]},
     {"containers": [{"name": "b"}]}),
    ({"env": [{"name": "X", "value": "1"}]}, {"env": [{"name": "X", "value": None}]}, {"env": [{"name": "X"}]}),
    ({"ports": [{"containerPort": 80}]}, {"ports": [{"containerPort": 80, "name": "http"}]},
     {"ports": [{"containerPort": 80, "name": "http"}]}),
    ({"ports": [{"port": 80}, {"port": 81}]}, {"ports": [{"port": 81, "targetPort": 9}]},
     {"ports": [{"port": 80}, {"port": 81, "targetPort": 9}]}),
    ({"volumeMounts": [{"mountPath": "/a", "name": "v"}]}, {"volumeMounts": [{"mountPath": "/b", "name": "v"}]},
     {"volumeMounts": [{"mountPath": "/a", "name": "v"}, {"mountPath": "/b", "name": "v"}]}),
    ({"args": ["a", "b"]}, {"args": ["c"]}, {"args": ["c"]}),
    ({"finalizers": ["a"]}, {"finalizers": ["b"]}, {"finalizers": ["a", "b"]}),
    ({"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "c": 3}}, {"spec": {"c": 3}}),
    ({"containers": [{"name": "a"}, {"name": "b"}]},
     {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}, {"containers": [{"name": "b"}, {"name": "a"}]}),
    ({"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]}, {"finalizers": ["b"]}),
    ({"conditions": [{"type": "A", "status": "True"}]}, {"conditions": [{"type": "B", "status": "False"}]},
     {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]}),
])
def test_strategic_merge_patch_uses_merge_keys_and_directives(doc, patch, expected):
    assert patching.strategic_merge(doc, patch) == expected


OBJ = {"metadata": {"name": "x", "labels": {"a.b/c": "v"}},
       "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "False"}],
                  "replicas": 3, "ports": [{"n": 1}, {"n": 2}, {"n": 3}]}}


@pytest.mark.parametrize(("path", "expected"), [
    (".status.replicas", [3]),
    ("{.status.replicas}", [3]),
    ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
    (".status.conditions[?(@.type=='Degraded')].status", ["False"]),
    (".status.conditions[?(@.status!=\"True\")].type", ["Degraded"]),
    (".status.ports[?(@.n>1)].n", [2, 3]),
    (".status.conditions[*].type", ["Ready", "Degraded"]),
    (".status.conditions[0].type", ["Ready"]),
    (".status.ports[-1].n", [3]),
    (".status.ports[1:].n", [2, 3]),
    (".metadata.labels['a.b/c']", ["v"]),
    ("..type", ["Ready", "Degraded"]),
    (".status.missing", []),
])
def test_jsonpath_subset_of_printer_columns(path, expected):
    assert jsonpath.find(OBJ, path) == expected


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (0, "0s"), (59, "59s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600, "3h"),
    (3 * 3600 + 120, "3h2m"), (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h"), (40 * 86400, "40d"),
    (800 * 86400, "2y70d"), (3000 * 86400, "8y"),
])
def test_ages_print_like_kubectl(seconds, text):
    assert tables.human_duration(seconds) == text


SCHEMA = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "n": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
    "x": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    "s": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^[a-z]+$", "nullable": True},
    "e": {"type": "string", "enum": ["a", "b"]},
    "l": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "x-kubernetes-list-type": "set"},
    "m": {"type": "object", "additionalProperties": {"type": "string"}},
    "i": {"x-kubernetes-int-or-string": True},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "obj": {"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.k != 'bad'", "message": "k must not be bad"}]},
}}}}


@pytest.mark.parametrize(("spec", "message"), [
    ({"n": 0}, "spec.n: Invalid value: 0: spec.n in body should be greater than or equal to 1"),
    ({"n": 6}, "spec.n: Invalid value: 6: spec.n in body should be less than or equal to 5"),
    ({"n": 1.5}, 'spec.n: Invalid value: "number": spec.n in body must be of type integer: "number"'),
    ({"n": True}, 'spec.n in body must be of type integer: "boolean"'),
    ({"x": 0}, "spec.x: Invalid value: 0: spec.x in body should be greater than 0"),
    ({"s": ""}, "spec.s in body should be at least 1 chars long"),
    ({"s": "abcd"}, "spec.s in body may not be longer than 3"),
    ({"s": "AB"}, "spec.s in body should match '^[a-z]+$'"),
    ({"e": "c"}, 'spec.e: Unsupported value: "c": supported values: "a", "b"'),
    ({"l": []}, "spec.l in body should have at least 1 items"),
    ({"l": [1, 1]}, "spec.l in body shouldn't contain duplicates"),
    ({"l": ["a"]}, "spec.l[0]: Invalid value"),
    ({"m": {"k": 1}}, "spec.m[k]: Invalid value"),
    ({"i": [1]}, "spec.i: Invalid value"),
    ({"obj": {}}, "spec.obj.k: Required value"),
    ({"obj": {"k": "bad"}}, 'spec.obj: Invalid value: "object": k must not be bad'),
])
def test_schema_violations_name_the_field(spec, message):
    obj = schema.prune_and_default(SCHEMA, {"spec": spec})
    causes = schema.admit(SCHEMA, obj, None)
    assert any(message in text for _, text in causes), causes


@pytest.mark.parametrize("spec", [{"s": None}, {"i": 3}, {"i": "50%"}, {"x": 0.1}, {"free": {"any": [1, {}]}},
                                  {"m": {"a": "b"}}, {"obj": {"k": "good"}}])
def test_valid_values_pass_the_schema(spec):
    assert schema.admit(SCHEMA, schema.prune_and_default(SCHEMA, {"spec": spec}), None) == []


def test_pruning_and_defaulting():
    obj = {"apiVersion": "v", "kind": "K", "metadata": {"name": "x"}, "extra": 1,
           "spec": {"unknown": 1, "e": None, "free": {"kept": {"deep": 1}}, "m": {"a": "b"}}}
    assert schema.prune_and_default(SCHEMA, obj) == {
        "apiVersion": "v", "kind": "K", "metadata": {"name": "x"},
        "spec": {"n": 2, "free": {"kept": {"deep": 1}}, "m": {"a": "b"}}}
    assert sorted(schema.unknown_fields(SCHEMA, obj)) == ["extra", "spec.unknown"]


def test_transition_rules_run_only_on_updates():
    immutable = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"v": {
        "type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]}}}}}
    assert schema.admit(immutable, {"spec": {"v": "a"}}, None) == []
    assert schema.admit(immutable, {"spec": {"v": "a"}}, {"spec": {"v": "a"}}) == []
    assert "immutable" in schema.admit(immutable, {"spec": {"v": "b"}}, {"spec": {"v": "a"}})[0][1]


def _event(kind: str, new: dict, old: dict | None) -> Event:
    return Event(1, kind, ("", "configmaps"), new, old)


@pytest.mark.parametrize(("kind", "old_labels", "new_labels", "seen"), [
    ("ADDED", None, {"t": "a"}, "ADDED"),
    ("ADDED", None, {"t": "b"}, None),
    ("MODIFIED", {"t": "a"}, {"t": "a"}, "MODIFIED"),
    ("MODIFIED", {"t": "b"}, {"t": "a"}, "ADDED"),
    ("MODIFIED", {"t": "a"}, {"t": "b"}, "DELETED"),
    ("MODIFIED", {"t": "b"}, {"t": "b"}, None),
    ("DELETED", {"t": "a"}, {"t": "a"}, "DELETED"),
])
def test_watch_events_are_translated_through_the_selector(kind, old_labels, new_labels, seen):
    res = Resource(group="", versions=["v1"], plural="configmaps", kind="ConfigMap")
    reqs = selectors.parse_label_selector("t=a")
    watcher = Watcher(res, None, lambda o: selectors.labels_match(reqs, o))
    obj = lambda labels: {"metadata": {"name": "x", "namespace": "d", "labels": labels}}  # noqa: E731
    watcher.offer(_event(kind, obj(new_labels), obj(old_labels) if old_labels else None))
    got = watcher.queue.get_nowait()[0] if not watcher.queue.empty() else None
    assert got == seen


@pytest.mark.parametrize(("value", "stored"), [
    (1, "1"), (0, "0"), (0.5, "500m"), ("0.5", "500m"), ("1000m", "1"), ("250m", "250m"), ("2000000", "2M"),
    ("1500", "1500"), ("1.5M", "1500k"), ("100Mi", "100Mi"), ("1024Mi", "1Gi"), ("0.5Gi", "512Mi"),
    ("1.5Ki", "1536"), ("1e3", "1e3"), ("16Gi", "16Gi"), ("not-a-quantity", "not-a-quantity"),
])
def test_quantities_are_stored_in_canonical_form(value, stored):
    from tokenfleet.localkube.quantity import canonical
    assert canonical(value) == stored


def test_cel_rules_on_the_root_see_the_name_and_use_message_expressions_and_reasons():
    rules = [{"rule": "self.metadata.name.startsWith('tf-')", "messageExpression": "'bad name ' + self.metadata.name"},
             {"rule": "has(self.spec.a)", "message": "a is required", "reason": "FieldValueRequired",
              "fieldPath": ".spec.a"}]
    root = {"type": "object", "x-kubernetes-validations": rules,
            "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    causes = schema.admit(root, {"metadata": {"name": "x"}, "spec": {}}, None)
    assert causes == [("<nil>", '<nil>: Invalid value: "object": bad name x'),
                      ("spec.a", "spec.a: Required value: a is required")]
    assert schema.admit(root, {"metadata": {"name": "tf-x"}, "spec": {"a": "1"}}, None) == []
