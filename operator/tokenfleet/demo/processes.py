"""Child processes of the demo, each in its own process group, so that nothing it started outlives it.

Every child runs in a new session (``start_new_session``): a Ctrl-C in the terminal reaches only
the demo, which then stops its children in order. ``stop`` sends SIGTERM to the whole group,
then SIGKILL after a grace period, and reaps the child. ``Processes.stop_all`` does that for
everything still running; an ``atexit`` hook kills what is left if the demo dies on an exception.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    """One started process: its group is its pid (a session leader)."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pid``; False when the group is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pid: int) -> bool:
    """Whether any process of group ``pid`` still exists."""
    return signal_group(pid, 0)


def stop(child: Child, grace: float = 5.0) -> None:
    """SIGTERM to the child's group, SIGKILL after ``grace`` seconds; reaps the child."""
    if signal_group(child.pid, signal.SIGTERM):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(child.pid):
            child.popen.poll()  # reap the leader, or its zombie keeps the group alive
            time.sleep(0.05)
        if group_alive(child.pid):
            signal_group(child.pid, signal.SIGKILL)
    try:
        child.popen.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        pass


class Processes:
    """Starts children into ``log_dir`` and remembers them until they are stopped."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: dict[int, Child] = {}
        log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.kill_all)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None, stdin_pipe: bool = False) -> Child:
        """Start ``argv`` in a new session with stdout and stderr in ``<log_dir>/<name>.log``.

        The working directory defaults to the log directory's parent (the demo's work directory),
        so that every process the demo started can be found by its working directory.
        """
        log_path = self.log_dir / f"{name}.log"
        stdin = subprocess.PIPE if stdin_pipe else subprocess.DEVNULL
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=stdin,
                                     env={**os.environ, **(env or {})}, cwd=cwd or self.log_dir.parent,
                                     start_new_session=True)
        child = Child(name, popen, log_path)
        self.children[child.pid] = child
        return child

    def stop(self, child: Child, grace: float = 5.0) -> None:
        stop(child, grace)
        self.children.pop(child.pid, None)

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM every group at once, then SIGKILL those that outlive ``grace``."""
        children = list(self.children.values())
        for child in children:
            signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(group_alive(c.pid) for c in children):
            for child in children:
                child.popen.poll()
            time.sleep(0.05)
        for child in children:
            stop(child, grace=0.5)
        self.children.clear()

    def kill_all(self) -> None:
        """Last resort (atexit): SIGKILL whatever is still running."""
        for child in list(self.children.values()):
            signal_group(child.pid, signal.SIGKILL)
            try:
                child.popen.wait(timeout=2)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self.children.clear()
