"""Real Prometheus for the autoscaler's tests: started from a temp config, optionally over backfilled blocks."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.procs import free_port, running


def binaries() -> tuple[str, str]:
    """Paths of prometheus and promtool (Debian's package), or skip the test."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        pytest.skip("prometheus/promtool not installed (scripts/bootstrap.sh --test installs Debian's package)")
    return prometheus, promtool


def backfill(openmetrics: str, workdir: Path) -> Path:
    """TSDB blocks holding exactly the samples of an OpenMetrics text (``promtool tsdb create-blocks-from``)."""
    _, promtool = binaries()
    source, storage = workdir / "backfill.om", workdir / "tsdb"
    source.write_text(openmetrics if openmetrics.endswith("# EOF\n") else openmetrics + "# EOF\n")
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(storage)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"promtool failed: {done.stderr or done.stdout}")
    return storage


@contextlib.contextmanager
def prometheus(workdir: Path, targets: list[tuple[str, dict]] = (), storage: Path | None = None,
               port: int | None = None, scrape_interval: str = "1s"):
    """Prometheus on 127.0.0.1 scraping ``targets`` ((host:port, extra labels)); yields its base URL."""
    binary, _ = binaries()
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{
            "job_name": "engines",
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "static_configs": [{"targets": [target], "labels": labels} for target, labels in targets],
        }] if targets else [],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    storage = storage or workdir / "tsdb"
    cmd = [binary, f"--config.file={config_path}", f"--storage.tsdb.path={storage}",
           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
           "--storage.tsdb.retention.time=30d"]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, ready_url=f"{url}/-/ready", log_path=workdir / f"prometheus-{port}.log", timeout=30) as proc:
        yield url, proc
