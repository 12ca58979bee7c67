"""Prometheus for the demo: Debian's ``prometheus`` scraping the pods the kubelet lists in a file_sd file."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

INSTALL_HINT = ("Prometheus is not installed, so the autoscaler has no metrics and holds replicas where they "
                "are. Install it with: sudo apt-get install -y --no-install-recommends prometheus "
                "(or put a prometheus binary on PATH), then run the demo again.")


def find_binary() -> str | None:
    """The prometheus binary on PATH, or None."""
    return shutil.which("prometheus")


def config(targets_file: Path, scrape_interval: str = "1s") -> dict:
    """One scrape job over the kubelet's targets file (re-read as soon as it changes)."""
    return {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": "900ms", "evaluation_interval": "5s"},
        "scrape_configs": [{
            "job_name": "tokenfleet-workloads",
            "honor_labels": True,  # the job label comes from the target (namespace/podmonitor, as in a cluster)
            "metrics_path": "/metrics",
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
        }],
    }


def command(binary: str, workdir: Path, port: int, targets_file: Path) -> list[str]:
    """The command line of a throwaway Prometheus in ``workdir`` listening on 127.0.0.1:``port``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not targets_file.exists():
        targets_file.write_text("[]")
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config(targets_file), sort_keys=False))
    return [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
