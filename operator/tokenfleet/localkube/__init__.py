"""A Kubernetes API emulator served over real HTTP, for integration tests and ``tokenfleet demo``.

    from tokenfleet.localkube import LocalKube
    with LocalKube() as kube:
        kube.write_kubeconfig(path)   # then kopf, kubectl or the kubernetes client talk to kube.url
"""

from tokenfleet.localkube.server import LocalKube
from tokenfleet.localkube.state import ServedRequest

__all__ = ["LocalKube", "ServedRequest"]
