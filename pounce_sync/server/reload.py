"""--reload (development): restart the server whenever a watched file changes.

The server runs in a child process (`python -m pounce_sync <same arguments>
--no-reload`), so each restart imports the app afresh and nothing of the old code
survives, which reloading modules in place cannot promise. The watcher compares
modification times every `POLL_INTERVAL` seconds: no dependency, and a development
tree of a few thousand files costs a few milliseconds a poll.

The reloader binds the listening sockets once and every child inherits them (as
uvicorn's reloader does): a client that connects while one child drains and the next
imports the app waits in the accept queue instead of being refused.
"""

import ctypes
import fnmatch
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pounce_sync.config import Config
from pounce_sync.observe.logs import LogConfigError, configure_logging
from pounce_sync.worker.context import Listener

from .exit_codes import EXIT_ERROR
from .listeners import INHERITED_LISTENERS_ENV, BindError, bind_sockets, close_listeners

error_log = logging.getLogger("pounce_sync.error")

POLL_INTERVAL = 0.25
KILL_MARGIN = 5.0  # past --timeout-graceful-shutdown: the app's lifespan shutdown and exit
DEFAULT_INCLUDE = ("*.py",)
DEFAULT_EXCLUDE_DIRS = (".*", "__pycache__")
DEFAULT_EXCLUDE_FILES = ("*.py[cod]", "*.sw?", "*~", ".#*")

Snapshot = dict[str, tuple[int, int]]  # path -> (mtime in ns, size)


@dataclass(frozen=True, slots=True)
class FileWatcher:
    """Which files count: names matching `include` under `roots`, minus the excluded."""

    roots: tuple[str, ...]
    include: tuple[str, ...]
    exclude_dirs: tuple[str, ...]
    exclude_files: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Config) -> "FileWatcher":
        """User globs add to the defaults; an exclude beats an include."""
        roots = config.reload_dir or (config.app_dir,)
        return cls(
            roots=tuple(str(Path(root).resolve()) for root in roots),
            include=DEFAULT_INCLUDE + config.reload_include,
            exclude_dirs=DEFAULT_EXCLUDE_DIRS + config.reload_exclude,
            exclude_files=DEFAULT_EXCLUDE_FILES + config.reload_exclude,
        )

    def snapshot(self) -> Snapshot:
        found: Snapshot = {}
        for root in self.roots:
            self._scan(root, found)
        return found

    def _scan(self, directory: str, found: Snapshot) -> None:
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            return  # removed meanwhile, or unreadable: nothing to watch there
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not _matches(entry.name, self.exclude_dirs):
                        self._scan(entry.path, found)
                elif self.wanted(entry.name):
                    stat = entry.stat()
                    found[entry.path] = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                continue  # deleted between listing and stat: the next poll sees it gone

    def wanted(self, name: str) -> bool:
        return _matches(name, self.include) and not _matches(name, self.exclude_files)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def changed_paths(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots, sorted."""
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def child_command(argv: list[str]) -> list[str]:
    """The same arguments for the server child; the last flag wins, so it never reloads."""
    return [sys.executable, "-m", "pounce_sync", *argv, "--no-reload"]


def run_reloader(config: Config, argv: list[str]) -> int:
    """Entry point for `--reload`: returns the reloader's exit code."""
    try:
        configure_logging(config.log_level, config.log_config)
    except LogConfigError as exc:
        print(f"pounce-sync: error: {exc}", file=sys.stderr)
        return 1
    try:
        listeners = bind_sockets(config)
    except BindError as exc:
        print(f"pounce-sync: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return Reloader(FileWatcher.from_config(config), child_command(argv), config).run(listeners)
    finally:
        close_listeners(listeners)


class Reloader:
    """Start the server child, watch files, restart the child on a change."""

    def __init__(self, watcher: FileWatcher, command: list[str], config: Config) -> None:
        self.watcher = watcher
        self.command = command
        self.grace = config.timeout_graceful_shutdown + KILL_MARGIN
        self.child: subprocess.Popen[bytes] | None = None
        self._signals = 0  # handlers only count: see Server._on_signal
        self._last_signal = signal.SIGTERM
        self._fds: tuple[int, ...] = ()

    def run(self, listeners: list[Listener]) -> int:
        self._fds = tuple(listener.sock.fileno() for listener in listeners)
        self._install_signal_handlers()
        error_log.info(
            "Reloader [%d] watching %s for %s",
            os.getpid(),
            ", ".join(self.watcher.roots),
            ", ".join(self.watcher.include),
        )
        snapshot = self.watcher.snapshot()
        self.child = self._start_child()
        while not self._signals:
            time.sleep(POLL_INTERVAL)
            self._notice_exit()
            current = self.watcher.snapshot()
            changed = changed_paths(snapshot, current)
            snapshot = self._restart(changed) if changed and not self._signals else current
        self._stop_child(self._forwarded_signal())
        error_log.info("Reloader [%d] stopped", os.getpid())
        return 0

    def _restart(self, changed: list[str]) -> Snapshot:
        """Stop the child, start a new one; returns the snapshot the new child starts from."""
        _log_change(changed)
        self._stop_child(signal.SIGTERM)
        _forget_bytecode(changed)
        snapshot = self.watcher.snapshot()  # the new child sees edits made meanwhile
        if not self._signals:
            self.child = self._start_child()
        return snapshot

    def _start_child(self) -> subprocess.Popen[bytes]:
        preexec = _die_with_parent(os.getpid()) if sys.platform == "linux" else None
        env = {**os.environ, INHERITED_LISTENERS_ENV: ",".join(map(str, self._fds))}
        return subprocess.Popen(self.command, preexec_fn=preexec, pass_fds=self._fds, env=env)

    def _notice_exit(self) -> None:
        """A child that stopped by itself (e.g. an import error) waits for the next edit."""
        child = self.child
        if child is not None and child.poll() is not None:
            error_log.warning(
                "Server process [%d] exited with code %d; waiting for a file change to restart",
                child.pid,
                child.returncode,
            )
            self.child = None

    def _stop_child(self, signum: int | None) -> None:
        """Stop the child gracefully; SIGKILL once the graceful timeout is past."""
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        if signum is not None:
            child.send_signal(signum)
        deadline = time.monotonic() + self.grace
        while child.poll() is None:
            if time.monotonic() > deadline or self._signals > 1:
                error_log.warning("Server process [%d] did not stop; killing it", child.pid)
                child.kill()
                child.wait()
                return
            time.sleep(0.05)

    def _forwarded_signal(self) -> int | None:
        """None when a terminal's Ctrl+C already reached the child, as one of our group.

        Forwarding it too would be the child's second signal, which means exit at once.
        """
        if self._last_signal == signal.SIGINT and _in_terminal_foreground():
            return None
        return signal.SIGTERM

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._last_signal = signal.Signals(signum)


def _log_change(changed: list[str]) -> None:
    more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
    error_log.info("Detected a change in %s%s; restarting the server", changed[0], more)


def _forget_bytecode(changed: list[str]) -> None:
    """Delete the cached bytecode of changed modules.

    A .pyc is trusted when the source's size and mtime in whole seconds match, so an
    edit that keeps the size within the second of the last compile would be missed.
    """
    for path in changed:
        if path.endswith(".py"):
            try:
                os.unlink(importlib.util.cache_from_source(path))
            except (OSError, ValueError, NotImplementedError):
                pass  # none cached, or not a path Python caches


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False  # no terminal: a signal reached the reloader alone


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Linux: the child gets SIGTERM if the reloader dies unannounced (e.g. SIGKILL)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    pr_set_pdeathsig = 1

    def in_child() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent:
            os._exit(1)  # the reloader died before the request took effect

    return in_child
