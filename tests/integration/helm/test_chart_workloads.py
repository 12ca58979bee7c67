"""What the operator creates (`tokenfleet render -f examples/`) is as locked down as what the chart runs."""

from __future__ import annotations

from tests.integration.helm.conftest import lockdown_problems, of_kind, pod_specs


def test_every_container_the_operator_creates_is_locked_down(operator_workloads):
    pods = pod_specs(operator_workloads)
    assert {name.split("/")[1].rsplit("-", 1)[1] for name, _ in pods} == {"engine", "cache", "router"}
    for workload, pod in pods:
        assert lockdown_problems(pod) == [], workload


def test_workload_pods_do_not_get_an_api_token(operator_workloads):
    for workload, pod in pod_specs(operator_workloads):
        assert pod.get("automountServiceAccountToken") is False, workload


def test_tokenfleet_pods_run_as_the_image_user_and_engines_as_a_non_root_user(operator_workloads):
    for deployment in of_kind(operator_workloads, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        uid = pod["securityContext"]["runAsUser"]
        if component in ("router", "cache"):
            assert uid == 10001, deployment["metadata"]["name"]  # the Dockerfile's USER
        else:
            assert uid != 0, deployment["metadata"]["name"]


def test_workload_writable_paths_are_all_emptydirs(operator_workloads):
    for workload, pod in pod_specs(operator_workloads):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                writable = not mount.get("readOnly")
                if writable:
                    assert "emptyDir" in volume, f"{workload}: {mount['mountPath']} is writable and not an emptyDir"
