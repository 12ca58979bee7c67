"""Watches through the real kubernetes client: resume from a version, no lost events, 410, bookmarks, selectors."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tokenfleet.localkube import LocalKube


def cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def events(core, **kwargs) -> list[tuple[str, str | None]]:
    """Events of a watch until the first bookmark, which the emulator sends once it has nothing left to send."""
    stream = watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=5,
                                  allow_watch_bookmarks=True, **kwargs)
    out = []
    for event in stream:
        if event["type"] == "BOOKMARK":
            break
        out.append((event["type"], event["raw_object"]["metadata"].get("name")))
    return out


def raw_events(kube: LocalKube, query: str) -> list[dict]:
    """Raw watch events of configmaps in default, up to and including the first bookmark."""
    got = []
    with httpx.stream("GET", f"{kube.url}/api/v1/namespaces/default/configmaps?watch=true&{query}") as rsp:
        for line in rsp.iter_lines():
            got.append(json.loads(line))
            if got[-1]["type"] == "BOOKMARK":
                break
    return got


def test_watch_from_a_resource_version_replays_only_later_events(core):
    core.create_namespaced_config_map("default", cm("before"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", cm("after"))
    core.patch_namespaced_config_map("before", "default", {"data": {"x": "1"}})
    core.delete_namespaced_config_map("after", "default")
    assert events(core, resource_version=rv) == [("ADDED", "after"), ("MODIFIED", "before"), ("DELETED", "after")]


def test_watch_without_resource_version_starts_with_existing_objects(core):
    core.create_namespaced_config_map("default", cm("a"))
    core.create_namespaced_config_map("default", cm("b"))
    assert events(core) == [("ADDED", "a"), ("ADDED", "b")]


def test_no_event_is_lost_between_list_and_watch_under_concurrent_writes(core):
    created, stop = [], threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            core.create_namespaced_config_map("default", cm(f"w{n}"))
            created.append(f"w{n}")
            n += 1
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.05)
        listed = core.list_namespaced_config_map("default")
        seen = {m.metadata.name for m in listed.items}
        stream = watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=listed.metadata.resource_version, timeout_seconds=2)
        time.sleep(0.1)
        stop.set()
        thread.join()
        for event in stream:
            seen.add(event["raw_object"]["metadata"]["name"])
            if seen >= set(created):
                break
    finally:
        stop.set()
        thread.join()
    assert len(created) > 5 and set(created) <= seen


def test_a_compacted_resource_version_gets_410_gone(tmp_path):
    from kubernetes import client, config
    with LocalKube(history=3) as kube:
        core = client.CoreV1Api(config.new_client_from_config(str(kube.write_kubeconfig(tmp_path / "kc"))))
        old = core.list_namespaced_config_map("default").metadata.resource_version
        for n in range(6):
            core.create_namespaced_config_map("default", cm(f"c{n}"))
        with pytest.raises(ApiException) as err:
            list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old,
                                      timeout_seconds=1))
        assert err.value.status == 410


def test_timeout_seconds_ends_the_watch(kube):
    started = time.monotonic()
    with httpx.stream("GET", kube.url + "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1") as rsp:
        lines = list(rsp.iter_lines())
    assert lines == [] and 0.9 < time.monotonic() - started < 3


def test_bookmarks_carry_the_current_resource_version(kube, core):
    core.create_namespaced_config_map("default", cm("x"))
    got = raw_events(kube, "timeoutSeconds=5&allowWatchBookmarks=true")
    assert [e["type"] for e in got] == ["ADDED", "BOOKMARK"]
    assert got[-1]["object"]["kind"] == "ConfigMap"
    assert got[-1]["object"]["metadata"]["resourceVersion"] == \
        core.list_namespaced_config_map("default").metadata.resource_version


def test_send_initial_events_ends_with_an_annotated_bookmark(kube, core):
    core.create_namespaced_config_map("default", cm("x"))
    got = raw_events(kube, "timeoutSeconds=5&allowWatchBookmarks=true&sendInitialEvents=true"
                           "&resourceVersionMatch=NotOlderThan")
    assert [e["type"] for e in got] == ["ADDED", "BOOKMARK"]
    assert got[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_label_selector_applies_to_list_and_watch_and_leaving_it_is_deleted(core):
    core.create_namespaced_config_map("default", cm("in", tier="gold"))
    core.create_namespaced_config_map("default", cm("out", tier="bronze"))
    listed = core.list_namespaced_config_map("default", label_selector="tier in (gold,silver)")
    assert [m.metadata.name for m in listed.items] == ["in"]
    rv = listed.metadata.resource_version
    core.patch_namespaced_config_map("out", "default", {"metadata": {"labels": {"tier": "silver"}}})
    core.patch_namespaced_config_map("in", "default", {"metadata": {"labels": {"tier": "bronze"}}})
    core.patch_namespaced_config_map("in", "default", {"data": {"ignored": "yes"}})
    got = events(core, resource_version=rv, label_selector="tier in (gold,silver)")
    assert got == [("ADDED", "out"), ("DELETED", "in")]


def test_field_selector_on_name_applies_to_list_and_watch(core):
    core.create_namespaced_config_map("default", cm("one"))
    core.create_namespaced_config_map("default", cm("two"))
    listed = core.list_namespaced_config_map("default", field_selector="metadata.name=two")
    assert [m.metadata.name for m in listed.items] == ["two"]
    assert events(core, field_selector="metadata.name!=two") == [("ADDED", "one")]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", field_selector="spec.nothing=x")
    assert err.value.status == 400


def test_field_selector_on_namespace_across_namespaces(core):
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_config_map("other", cm("there"))
    core.create_namespaced_config_map("default", cm("here"))
    listed = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=other")
    assert [m.metadata.name for m in listed.items] == ["there"]
