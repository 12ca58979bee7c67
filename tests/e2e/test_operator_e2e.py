"""The operator's integration scenarios against a real cluster (opt-in: KUBECONFIG and TOKENFLEET_E2E=1)."""

import pytest

from tests.integration.operator import operator_scenarios as scenario

pytestmark = pytest.mark.e2e


def test_applying_the_examples_with_kubectl_creates_exactly_their_children(cluster, ns):
    scenario.examples_make_exactly_their_children(cluster, ns)


def test_a_spec_change_updates_the_children_and_leaves_replicas_to_the_autoscaler(cluster, ns):
    scenario.a_spec_change_updates_children_but_not_the_autoscalers_replicas(cluster, ns)


def test_a_model_too_large_for_its_gpus_is_not_ready_with_an_event_while_others_reconcile(cluster, ns, operator):
    scenario.a_model_too_large_is_reported_while_others_keep_reconciling(cluster, ns, operator)


def test_an_invalid_spec_is_reported_once_and_counted_without_retries(cluster, ns, operator):
    scenario.an_invalid_spec_is_reported_and_counted(cluster, ns, operator)


def test_a_fleet_with_a_missing_tier_recovers_by_itself_when_the_tier_appears(cluster, ns):
    scenario.a_fleet_recovers_when_its_tier_and_cache_appear(cluster, ns)


def test_deleting_a_resource_removes_its_children(cluster, ns):
    scenario.deleting_a_resource_removes_its_children(cluster, ns)


def test_a_restart_with_nothing_changed_makes_zero_writes(cluster, ns, operator):
    canary = cluster.new_namespace("tf-e2e-canary")
    scenario.a_restart_with_nothing_changed_writes_nothing(cluster, ns, operator, canary)
