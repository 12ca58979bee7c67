"""The real kopf (``kopf run`` in a subprocess) against the emulator: create handled, finalizer added and removed."""

from __future__ import annotations

import re
import sys
import textwrap

from localkube_support import eventually, tier
from tests.support.procs import running

OPERATOR = textwrap.dedent("""
    import kopf

    @kopf.on.startup()
    def configure(settings, **_):
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
        settings.watching.server_timeout = 30

    @kopf.on.create("tokenfleet.io", "v1alpha1", "modeltiers")
    def created(body, patch, logger, **_):
        kopf.info(body, reason="Handled", message="created")  # an Event POSTed to the emulator
        patch.status["desiredReplicas"] = 2
        patch.metadata.annotations["localkube.test/handled"] = "yes"
        logger.info("CREATE-HANDLED")

    @kopf.on.delete("tokenfleet.io", "v1alpha1", "modeltiers")
    def deleted(name, logger, **_):
        logger.info(f"DELETE-HANDLED {name}")
""")
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


def test_kopf_handles_a_create_and_a_delete_with_its_finalizer(kube, kubeconfig, tmp_path, custom):
    operator, log = tmp_path / "operator.py", tmp_path / "kopf.log"
    operator.write_text(OPERATOR)
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--verbose", str(operator)]
    with running(cmd, env={"KUBECONFIG": str(kubeconfig)}, log_path=log):
        eventually(lambda: any(r.resource == "modeltiers" and r.query.get("watch") == "true" for r in kube.requests),
                   timeout=30)
        custom.create_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers", tier("t"))

        def handled():
            obj = kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "t")
            return obj if (obj.get("status") or {}).get("desiredReplicas") == 2 else None
        obj = eventually(handled, timeout=20)
        assert FINALIZER in obj["metadata"]["finalizers"]
        assert obj["metadata"]["annotations"]["localkube.test/handled"] == "yes"
        eventually(lambda: any(r.resource == "events" and r.method == "POST" and r.status == 201
                               for r in kube.requests), timeout=20)

        custom.delete_namespaced_custom_object("tokenfleet.io", "v1alpha1", "default", "modeltiers", "t")
        eventually(lambda: kube.get_object("tokenfleet.io/v1alpha1", "modeltiers", "default", "t") is None,
                   timeout=20)
    text = log.read_text()
    assert "CREATE-HANDLED" in text and "DELETE-HANDLED t" in text
    problems = [line for line in text.splitlines() if re.search(r"\[(ERROR|WARNING) *\]|Traceback", line)]
    assert problems == []
    assert [r for r in kube.requests if r.status >= 500] == []
