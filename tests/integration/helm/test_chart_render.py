"""The Helm chart: lints strictly, renders valid objects in every ci/ scenario, locked down and least-privilege."""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.integration.helm.conftest import (
    CHART, CI_VALUES, NAMESPACE, helm_template, helm_template_error, lockdown_problems, need, of_kind, one,
    pod_specs, run,
)
from tests.support.procs import REPO
from tokenfleet.config import from_env

K8S_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())  # the chart's kubeVersion floor, and the newest
# Kinds kubernetes-validate has no schema for; test_chart_monitoring and the peering test check their shapes.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "KopfPeering", "ClusterKopfPeering"}
OPERATOR_ENV = {
    "TOKENFLEET_IMAGE", "TOKENFLEET_IMAGE_PULL_POLICY", "TOKENFLEET_WATCH_NAMESPACES", "TOKENFLEET_PEERING",
    "TOKENFLEET_PROMETHEUS_URL", "TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS", "TOKENFLEET_METRICS_PORT",
    "TOKENFLEET_HEALTH_PORT", "TOKENFLEET_LOG_LEVEL", "TOKENFLEET_LOG_FORMAT",
}
KINDS = ("modeltiers", "cachepolicies", "inferencefleets")

# What the operator may do in the namespaces it watches: exactly this, nothing more.
NAMESPACED_GRANTS = {
    ("tokenfleet.io", kind, verb) for kind in KINDS for verb in ("get", "list", "watch", "patch")
} | {
    ("tokenfleet.io", f"{kind}/status", verb) for kind in KINDS for verb in ("get", "patch")
} | {
    ("tokenfleet.io", f"{kind}/finalizers", "update") for kind in KINDS
} | {
    ("apps", "deployments", v) for v in ("get", "list", "watch", "create", "patch")
} | {
    ("", res, v) for res in ("services", "configmaps") for v in ("get", "list", "watch", "create", "patch")
} | {
    ("", "events", "create")
} | {
    ("autoscaling", "horizontalpodautoscalers", v) for v in ("get", "list", "watch")
} | {
    ("keda.sh", "scaledobjects", v) for v in ("get", "list", "watch")
}
CRD_GRANTS = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")}
NAMESPACE_GRANTS = {("", "namespaces", v) for v in ("get", "list", "watch")}
CLUSTER_PEERING_GRANTS = {("kopf.dev", "clusterkopfpeerings", v) for v in ("get", "list", "watch", "patch")}
PEERING_GRANTS = {("kopf.dev", "kopfpeerings", v) for v in ("get", "list", "watch", "patch")}


def grants(role: dict) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role or ClusterRole grants."""
    out = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def operator_roles(docs: list[dict]) -> list[dict]:
    """The (Cluster)Roles bound to the operator's ServiceAccount (not the aggregated user roles)."""
    bound = {(b["roleRef"]["kind"], b["roleRef"]["name"], b["metadata"].get("namespace"))
             for b in docs if b["kind"] in ("ClusterRoleBinding", "RoleBinding")}
    return [r for r in docs if r["kind"] in ("ClusterRole", "Role")
            and (r["kind"], r["metadata"]["name"], r["metadata"].get("namespace")) in bound]


def operator_container(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(docs: list[dict]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in operator_container(docs)["env"]}


# --------------------------------------------------------------------------- lint and validation


def test_ci_scenarios_cover_every_feature_switch():
    names = {p.name for p in CI_VALUES}
    assert {"defaults-values.yaml", "monitoring-values.yaml", "networkpolicy-values.yaml",
            "no-crds-values.yaml", "ha-values.yaml", "namespaced-values.yaml"} <= names


def test_chart_lints_strictly_in_every_scenario():
    helm = need("helm")
    for values in [None, *CI_VALUES]:
        cmd = [helm, "lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
        result = run(cmd)
        assert result.returncode == 0, f"{values}: {result.stdout}{result.stderr}"


def test_every_scenario_renders_objects_kubernetes_accepts_strictly(scenario):
    name, docs = scenario
    assert docs, f"{name} rendered nothing"
    skipped = set()
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            skipped.add(doc["kind"])
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} on {version}: {err.message}")
    assert skipped <= CUSTOM_KINDS


def test_values_schema_rejects_bad_values_and_names_the_field():
    cases = {
        "replicaCount=-1": "/replicaCount",
        "image.tag=latest": "/image/tag",
        "image.digest=md5:abc": "/image/digest",
        "operator.logLevel=LOUD": "/operator/logLevel",
        "watchNamespaces[0]=Team_A": "/watchNamespaces/0",
        "prometheusRule.tierErrorRatio=1.5": "/prometheusRule/tierErrorRatio",
        "operator.metricsPort=70000": "/operator/metricsPort",
        "operator.cacheResources.requests.cpu=lots": "/operator/cacheResources/requests/cpu",
        "replicas=2": "replicas",  # a typo of replicaCount: unknown keys are refused, not ignored
    }
    for item, field in cases.items():
        err = helm_template_error(sets=(item,))
        assert field in err, f"--set {item}: {err}"


# --------------------------------------------------------------------------- locked down, labels


def test_every_container_the_chart_runs_is_locked_down(scenario):
    name, docs = scenario
    pods = pod_specs(docs)
    assert pods
    for workload, pod in pods:
        assert lockdown_problems(pod) == [], f"{name} {workload}"


def test_every_object_carries_the_recommended_labels(scenario):
    name, docs = scenario
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        for key in ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "app.kubernetes.io/part-of"):
            assert key in labels, f"{name}: {doc['kind']}/{doc['metadata']['name']} lacks {key}"


def selectors(doc: dict) -> list[dict]:
    """Every label selector in an object."""
    spec = doc.get("spec") or {}
    found = []
    if doc["kind"] == "Service":
        found.append(spec.get("selector") or {})
    for key in ("selector", "podSelector"):
        if isinstance(spec.get(key), dict) and "matchLabels" in spec[key]:
            found.append(spec[key]["matchLabels"])
    for rule in spec.get("ingress") or []:
        for peer in rule.get("from") or []:
            for key in ("podSelector", "namespaceSelector"):
                found.append((peer.get(key) or {}).get("matchLabels") or {})
    return found


def test_selectors_never_hold_the_chart_version(scenario):
    name, docs = scenario
    for doc in docs:
        for selector in selectors(doc):
            assert "helm.sh/chart" not in selector, f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            assert "app.kubernetes.io/version" not in selector, f"{name}: {doc['kind']}/{doc['metadata']['name']}"


def test_operator_service_and_budget_select_the_operator_pods(scenario):
    name, docs = scenario
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for service in of_kind(docs, "Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items(), name
        ports = {p["name"] for p in operator_container(docs)["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


# --------------------------------------------------------------------------- RBAC


def test_rbac_grants_exactly_what_the_operator_needs_across_all_namespaces(default_render):
    roles = operator_roles(default_render)
    assert [r["kind"] for r in roles] == ["ClusterRole"]
    assert grants(roles[0]) == NAMESPACED_GRANTS | CRD_GRANTS | NAMESPACE_GRANTS
    binding = one(default_render, "ClusterRoleBinding")
    sa = one(default_render, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]
    assert operator_container(default_render) and env_of(default_render)["TOKENFLEET_WATCH_NAMESPACES"] == ""


def test_rbac_is_namespaced_when_watching_listed_namespaces():
    docs = helm_template(CHART / "ci" / "namespaced-values.yaml")
    cluster = [r for r in operator_roles(docs) if r["kind"] == "ClusterRole"]
    # nothing namespaced cluster-wide; namespaces are read because kopf lists them (test_chart_rbac_enforced.py)
    assert len(cluster) == 1 and grants(cluster[0]) == CRD_GRANTS | NAMESPACE_GRANTS
    roles = {r["metadata"]["namespace"]: r for r in operator_roles(docs) if r["kind"] == "Role"}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert grants(role) == NAMESPACED_GRANTS | PEERING_GRANTS
    for binding in of_kind(docs, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == NAMESPACE
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": binding["metadata"]["name"]}
    assert env_of(docs)["TOKENFLEET_WATCH_NAMESPACES"] == "team-a,team-b"


def test_no_role_uses_wildcards_or_reads_secrets(scenario):
    name, docs = scenario
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for group, resource, verb in grants(role):
            assert "*" not in (group, resource, verb), f"{name}: {role['metadata']['name']} uses a wildcard"
            assert resource != "secrets", f"{name}: {role['metadata']['name']} grants secrets"
            assert verb not in ("escalate", "bind", "impersonate"), f"{name}: {role['metadata']['name']}"


def test_user_roles_aggregate_into_edit_and_view():
    docs = helm_template()
    edit = one(docs, "ClusterRole", "tokenfleet-edit")
    view = one(docs, "ClusterRole", "tokenfleet-view")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert {verb for _, _, verb in grants(view)} == {"get", "list", "watch"}


# --------------------------------------------------------------------------- CRDs


def generated_crds() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in (yaml.safe_load(p.read_text()) for p in (REPO / "crds").glob("*.yaml"))}


def test_chart_crd_files_are_byte_identical_to_crds():
    chart_dir = CHART / "files" / "crds"
    ours = {p.name: p.read_text() for p in chart_dir.glob("tokenfleet.io_*.yaml")}
    theirs = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert ours == theirs, "run `tokenfleet crds` (it writes crds/ and the chart's copy)"
    kustomization = yaml.safe_load((chart_dir / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(theirs)


def test_rendered_crds_are_the_generated_ones_and_survive_uninstall(default_render):
    rendered = {d["metadata"]["name"]: d for d in of_kind(default_render, "CustomResourceDefinition")}
    expected = generated_crds()
    assert set(rendered) == set(expected)
    for name, crd in rendered.items():
        want = expected[name]
        assert crd["spec"] == want["spec"], name
        assert crd["metadata"]["labels"].items() >= want["metadata"]["labels"].items()
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep",
                                                  "argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}


def test_crds_can_be_left_out_or_left_to_uninstall():
    assert of_kind(helm_template(CHART / "ci" / "no-crds-values.yaml"), "CustomResourceDefinition") == []
    for crd in of_kind(helm_template(sets=("crds.keep=false",)), "CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"]


# --------------------------------------------------------------------------- operator settings, peering


def test_operator_gets_exactly_its_settings_from_values():
    docs = helm_template(sets=(
        "operator.prometheusUrl=http://prom.monitoring.svc:9090", "operator.logLevel=DEBUG",
        "operator.autoscaleIntervalSeconds=15", "image.tag=1.2.3", "operator.workloadImage=registry.local/tf:1.2.3",
    ))
    env = env_of(docs)
    assert set(env) == OPERATOR_ENV
    assert env["TOKENFLEET_PROMETHEUS_URL"] == "http://prom.monitoring.svc:9090"
    assert env["TOKENFLEET_LOG_LEVEL"] == "DEBUG"
    assert env["TOKENFLEET_AUTOSCALE_INTERVAL_SECONDS"] == "15"
    assert env["TOKENFLEET_IMAGE"] == "registry.local/tf:1.2.3"
    assert env["TOKENFLEET_PEERING"] == ""
    assert operator_container(docs)["image"] == "ghcr.io/tokenfleet/tokenfleet:1.2.3"
    assert operator_container(docs)["args"] == ["operator"]
    probe = operator_container(docs)["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "health"}


def test_workload_resources_reach_the_operator_as_json_it_accepts():
    docs = helm_template(sets=("operator.cacheResources.requests.cpu=2000m", "operator.cacheResources.limits.memory=8Gi",
                               "operator.routerResources.requests.cpu=250m"))
    env = env_of(docs)
    config = from_env(env)
    assert config.cache_resources == {"requests": {"cpu": "2000m"}, "limits": {"memory": "8Gi"}}
    assert config.render_settings.router_resources == {"requests": {"cpu": "250m"}}


def test_default_image_is_the_app_version_and_a_digest_wins():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert operator_container(helm_template())["image"] == f"ghcr.io/tokenfleet/tokenfleet:{chart['appVersion']}"
    docs = helm_template(CHART / "ci" / "ha-values.yaml")
    assert operator_container(docs)["image"].startswith("ghcr.io/tokenfleet/tokenfleet@sha256:")
    assert env_of(docs)["TOKENFLEET_IMAGE"] == operator_container(docs)["image"]


def test_single_operator_never_overlaps_itself_during_a_rollout(default_render):
    assert one(default_render, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert of_kind(default_render, "PodDisruptionBudget") == []
    assert not [d for d in default_render if d["apiVersion"].startswith("kopf.dev")]


def crd_schema(crd: dict) -> dict:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_several_operator_pods_peer_through_a_cluster_peering_object():
    docs = helm_template(CHART / "ci" / "ha-values.yaml")
    env = env_of(docs)
    assert env["TOKENFLEET_PEERING"] == "tokenfleet"
    peering = one(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "tokenfleet"
    # A hook: Helm cannot create an object whose CRD is in the same release before it exists.
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    crds = {d["spec"]["names"]["kind"]: d for d in of_kind(docs, "CustomResourceDefinition")}
    assert crds["ClusterKopfPeering"]["spec"]["scope"] == "Cluster"
    assert crds["KopfPeering"]["spec"]["scope"] == "Namespaced"
    jsonschema.validate(peering, crd_schema(crds["ClusterKopfPeering"]))
    assert grants(operator_roles(docs)[0]) >= CLUSTER_PEERING_GRANTS
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_namespaced_operators_peer_in_every_watched_namespace():
    docs = helm_template(CHART / "ci" / "namespaced-values.yaml")
    peerings = of_kind(docs, "KopfPeering")
    assert {p["metadata"]["namespace"] for p in peerings} == {"team-a", "team-b"}
    assert {p["metadata"]["name"] for p in peerings} == {env_of(docs)["TOKENFLEET_PEERING"]}
    assert of_kind(docs, "ClusterKopfPeering") == []


def test_under_argo_cd_the_peering_object_is_an_ordinary_resource():
    docs = helm_template(sets=("replicaCount=2", "peering.helmHook=false"))
    annotations = one(docs, "ClusterKopfPeering")["metadata"]["annotations"]
    assert annotations == {"argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"}


def test_peering_crds_can_be_left_to_another_kopf_operator():
    docs = helm_template(sets=("replicaCount=2", "peering.installCRDs=false", "peering.name=shared"))
    assert not [d for d in of_kind(docs, "CustomResourceDefinition") if d["spec"]["group"] == "kopf.dev"]
    assert one(docs, "ClusterKopfPeering")["metadata"]["name"] == "shared"
    assert env_of(docs)["TOKENFLEET_PEERING"] == "shared"


def test_the_operator_accepts_the_settings_the_chart_gives_it(scenario):
    from tokenfleet import config

    name, docs = scenario
    env = env_of(docs)
    known = {var for var, _ in config.ENV.values()}
    optional = {"TOKENFLEET_ROUTER_RESOURCES", "TOKENFLEET_CACHE_RESOURCES"}  # set only when values give them
    assert set(env) <= known and known - optional <= set(env), "chart and operator disagree on the settings"
    cfg = config.from_env(env)  # raises on a value the operator would refuse at start-up
    assert cfg.image == env["TOKENFLEET_IMAGE"]
    assert cfg.peering == env["TOKENFLEET_PEERING"]
    assert cfg.clusterwide == (not of_kind(operator_roles(docs), "Role")), "RBAC scope differs from the watch scope"
    ports = {p["name"]: p["containerPort"] for p in operator_container(docs)["ports"]}
    assert (cfg.metrics_port, cfg.health_port) == (ports["metrics"], ports["health"]), name
