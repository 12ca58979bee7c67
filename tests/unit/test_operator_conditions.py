"""Ready, Progressing and Degraded from observed state: tables of cases for the pure functions."""

import pytest

from tokenfleet.conditions import (
    INSUFFICIENT_GPU_MEMORY,
    TIER_NOT_FOUND,
    Condition,
    Problem,
    Workload,
    fleet_conditions,
    merge_conditions,
    new_problem,
    status_patch,
    workload_conditions,
)


def summary(conditions):
    return {c.type: (c.status, c.reason) for c in conditions}


WORKLOADS = [
    # (name, workload, expected {type: (status, reason)})
    ("no deployment yet", None,
     {"Ready": ("False", "Creating"), "Progressing": ("True", "Creating"), "Degraded": ("False", "AsExpected")}),
    ("all replicas ready", Workload(desired=2, replicas=2, ready=2, updated=2),
     {"Ready": ("True", "ReplicasReady"), "Progressing": ("False", "RolloutComplete"),
      "Degraded": ("False", "AsExpected")}),
    ("none ready yet", Workload(desired=1, replicas=1, ready=0, updated=1),
     {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("True", "RollingOut"),
      "Degraded": ("False", "AsExpected")}),
    ("scaling up serves meanwhile", Workload(desired=3, replicas=3, ready=1, updated=3),
     {"Ready": ("True", "ReplicasReady"), "Progressing": ("True", "RollingOut"),
      "Degraded": ("False", "AsExpected")}),
    ("controller has not seen the new spec", Workload(desired=1, replicas=1, ready=1, updated=1, current=False),
     {"Ready": ("True", "ReplicasReady"), "Progressing": ("True", "RollingOut"),
      "Degraded": ("False", "AsExpected")}),
    ("scaled to zero", Workload(desired=0),
     {"Ready": ("True", "ScaledToZero"), "Progressing": ("False", "RolloutComplete"),
      "Degraded": ("False", "AsExpected")}),
    ("scaling down to zero", Workload(desired=0, replicas=1, ready=1),
     {"Ready": ("True", "ScaledToZero"), "Progressing": ("True", "RollingOut"),
      "Degraded": ("False", "AsExpected")}),
    ("stalled rollout", Workload(desired=1, replicas=1, ready=0, updated=1, stalled="deadline"),
     {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("True", "RollingOut"),
      "Degraded": ("True", "ProgressDeadlineExceeded")}),
]


@pytest.mark.parametrize("name, workload, expected", WORKLOADS, ids=[w[0] for w in WORKLOADS])
def test_workload_conditions_follow_the_deployment(name, workload, expected):
    assert summary(workload_conditions(workload)) == expected


def test_a_problem_wins_over_a_healthy_workload():
    problem = Problem(INSUFFICIENT_GPU_MEMORY, "needs 200 GiB, usable 70 GiB")
    got = workload_conditions(Workload(desired=1, replicas=1, ready=1, updated=1), problem)
    assert summary(got) == {"Ready": ("False", INSUFFICIENT_GPU_MEMORY), "Progressing": ("False", INSUFFICIENT_GPU_MEMORY),
                            "Degraded": ("True", INSUFFICIENT_GPU_MEMORY)}
    assert got[0].message == "needs 200 GiB, usable 70 GiB"


def test_workload_reads_a_served_deployment():
    dep = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 1, "updatedReplicas": 1,
                   "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                   "message": "ReplicaSet x has timed out progressing."}]},
    }
    w = Workload.from_deployment(dep)
    assert (w.desired, w.replicas, w.ready, w.updated, w.current) == (2, 2, 1, 1, False)
    assert w.stalled == "ReplicaSet x has timed out progressing."
    assert Workload.from_deployment({"spec": {"replicas": 1}}).current  # no generation: nothing to compare


def test_a_fleet_is_degraded_while_a_tier_is_not_ready_but_still_ready_itself():
    router = Workload(desired=1, replicas=1, ready=1, updated=1)
    got = fleet_conditions(router, None, ["big"])
    assert summary(got)["Ready"] == ("True", "ReplicasReady")
    assert summary(got)["Degraded"] == ("True", "TiersNotReady")
    assert "big" in next(c.message for c in got if c.type == "Degraded")
    missing = fleet_conditions(router, Problem(TIER_NOT_FOUND, "gone"), ["big"])
    assert summary(missing)["Degraded"] == ("True", TIER_NOT_FOUND)


SETTLED = Workload(desired=1, replicas=1, ready=1, updated=1)
ROLLING = Workload(desired=2, replicas=2, ready=1, updated=1)


@pytest.mark.parametrize("router, failing, starting, progressing, degraded", [
    (SETTLED, [], [], ("False", "RolloutComplete"), ("False", "AsExpected")),
    # a new tier loading its weights is progress, not a fault: no Degraded (and no alert) meanwhile
    (SETTLED, [], ["big"], ("True", "TiersStarting"), ("False", "AsExpected")),
    (SETTLED, ["huge"], ["big"], ("True", "TiersStarting"), ("True", "TiersNotReady")),
    (SETTLED, ["huge"], [], ("False", "RolloutComplete"), ("True", "TiersNotReady")),
    (ROLLING, [], ["big"], ("True", "RollingOut"), ("False", "AsExpected")),  # the router's own rollout first
])
def test_a_starting_tier_makes_the_fleet_progressing_and_a_failing_one_degraded(router, failing, starting,
                                                                                progressing, degraded):
    got = summary(fleet_conditions(router, None, failing, starting))
    assert got["Progressing"] == progressing and got["Degraded"] == degraded and got["Ready"][0] == "True"


NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"


def test_merging_keeps_the_transition_time_while_the_status_stays():
    first = merge_conditions([], [Condition("Ready", "False", "Creating", "a")], 1, NOW)
    second = merge_conditions(first, [Condition("Ready", "False", "ReplicasNotReady", "b")], 2, LATER)
    assert second == [{"type": "Ready", "status": "False", "reason": "ReplicasNotReady", "message": "b",
                       "lastTransitionTime": NOW, "observedGeneration": 2}]
    third = merge_conditions(second, [Condition("Ready", "True", "ReplicasReady", "c")], 2, LATER)
    assert third[0]["lastTransitionTime"] == LATER


def test_merging_an_unchanged_state_gives_an_identical_list_and_no_status_patch():
    desired = workload_conditions(Workload(desired=1, replicas=1, ready=1, updated=1))
    first = merge_conditions([], desired, 4, NOW)
    again = merge_conditions(first, desired, 4, LATER)
    assert again == first
    status = {"conditions": first, "observedGeneration": 4, "replicas": 1}
    assert status_patch(status, {"conditions": again, "observedGeneration": 4, "replicas": 1}) is None


def test_merging_keeps_other_actors_conditions():
    theirs = {"type": "ScalingConflict", "status": "True", "reason": "HPA", "message": "", "lastTransitionTime": NOW}
    merged = merge_conditions([theirs], [Condition("Ready", "True", "ReplicasReady")], None, LATER)
    assert [c["type"] for c in merged] == ["Ready", "ScalingConflict"]
    assert merged[1] is theirs and "observedGeneration" not in merged[0]


STATUS_PATCHES = [
    ("equal", {"a": 1}, {"a": 1}, None),
    ("changed", {"a": 1}, {"a": 2}, {"a": 2}),
    ("new", {}, {"a": 2}, {"a": 2}),
    ("removed", {"a": 1}, {"a": None}, {"a": None}),
    ("absent stays absent", {}, {"a": None}, None),
    ("others' fields untouched", {"a": 1, "desiredReplicas": 3}, {"a": 1}, None),
]


@pytest.mark.parametrize("name, current, desired, expected", STATUS_PATCHES, ids=[s[0] for s in STATUS_PATCHES])
def test_status_patch_holds_only_changed_keys(name, current, desired, expected):
    assert status_patch(current, desired) == expected


EVENTS = [
    ("no problem", [], None, False),
    ("first time", [], Problem("InvalidSpec", "m"), True),
    ("already reported", [{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "m"}],
     Problem("InvalidSpec", "m"), False),
    ("different message", [{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "m"}],
     Problem("InvalidSpec", "n"), True),
    ("different reason", [{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "m"}],
     Problem("TierNotFound", "m"), True),
]


@pytest.mark.parametrize("name, old, problem, expected", EVENTS, ids=[e[0] for e in EVENTS])
def test_a_problem_deserves_an_event_only_when_it_is_new(name, old, problem, expected):
    assert new_problem(old, problem) is expected
