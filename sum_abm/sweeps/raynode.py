"""Ray for sweeps: start a local Ray or connect to a cluster (one clear line when refused), stop it.

Local Ray: ``address="local"`` with a short temp dir (Ray's socket paths must stay under 107 bytes),
node IP 127.0.0.1, and only the processes a sweep uses (no dashboard, autoscaler or log monitor;
idle stand-ins for the raylet's agents: :mod:`sum_abm.sweeps.idle_agent`). A cluster:
``ray.init(address=...)`` with no ``num_cpus``. Every worker's thread pools are pinned to one
thread (``PINNED_THREADS``): the sweep's parallelism is one worker per core, and nested pools would
oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sum_abm.errors import InputError, first_line

# One thread per worker for polars, OpenMP and BLAS (read when those libraries start their pools).
PINNED_THREADS = {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

_OWN_TEMP_DIRS: list[str] = []  # temp dirs of the local Ray instances this process started


def shutdown_ray() -> None:
    """Stop the Ray this process started (local or connected) and remove its session folders."""
    import ray

    ray.shutdown()
    while _OWN_TEMP_DIRS:
        shutil.rmtree(_OWN_TEMP_DIRS.pop(), ignore_errors=True)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` for the block, restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# What a local Ray's head starts besides the GCS, the raylet and its agents, none of which a sweep
# on this machine uses: the autoscaler monitor (a local Ray never scales), the log monitor (workers'
# output is not sent to the driver: log_to_driver=False) and the dashboard's API server (started even
# with include_dashboard=False, and ray.init waits until it has registered). Measured on 2 cores: the
# three cost 1.7 s of CPU during start-up, taken from the runs, and the first actor was ready 2.2 s
# later with them.
_NOT_STARTED = ("start_monitor", "start_log_monitor", "start_api_server")
# The raylet's two Python agents are replaced by :mod:`sum_abm.sweeps.idle_agent`, which writes
# at once the ports they write after importing Ray (the dashboard agent: none in use; the
# runtime-env agent: a port it listens on, handing over to Ray's agent if a runtime_env is ever
# needed). Measured on 2 shared cores: Ray's own processes 0.3 s of CPU instead of 1.5 s for a
# whole sweep, and ray.init 0.7 s instead of 2.3-3.4 s with no runs beside it.
_IDLE_AGENT = str(Path(__file__).with_name("idle_agent.py"))
_AGENT_FLAGS = {
    "--dashboard_agent_command=": "dashboard",
    "--runtime_env_agent_command=": "runtime-env",
}
_AGENT_OPTIONS = ("session-dir", "node-id", "node-ip-address")
# Two one-second sleeps of Ray's start-up, hit when its processes are slow to start (on 2 cores,
# with runs beside them, in about half the starts): the raylet, and Ray's workers, retry a
# refused local socket (the object store's, the raylet's) after 1 s; ray.init asks the GCS for
# the raylet 0.1 s after starting it, and asks again 1 s later if it has not registered. With
# the socket retried every 20 ms (the same 10 s in all) and the registration awaited in 10 ms
# polls, ray.init took 0.75-0.99 s where it took 0.68-2.31 s (20 starts each, one core busy).
_CONNECT_RETRY = {
    "RAY_raylet_client_connect_timeout_milliseconds": "20",
    "RAY_raylet_client_num_connect_attempts": "500",
}
_REGISTER_POLL_S, _REGISTER_WAIT_S = 0.01, 10.0


@contextlib.contextmanager
def _lean_head_node() -> Iterator[None]:
    """While a local Ray starts, its head node skips :data:`_NOT_STARTED`, its raylet runs
    :data:`_IDLE_AGENT` in place of its agents, and neither sleeps a second on a process still
    starting (:data:`_CONNECT_RETRY`, :func:`_await_registration`); Ray offers no option for any
    of these through ``ray.init``. A Ray whose layout differs from the one expected starts
    unchanged."""
    try:
        from ray._private import services
        from ray._private.node import Node
    except ImportError:  # pragma: no cover - another Ray layout: start it as it is
        yield
        return
    saved = {name: Node.__dict__.get(name) for name in _NOT_STARTED}
    start_process = getattr(services, "start_ray_process", None)
    get_node = getattr(services, "get_node", None)
    if not all(saved.values()) or start_process is None or get_node is None:
        yield
        return

    def start_ray_process(command: list[str], process_type: str, *args: Any, **kw: Any) -> Any:
        if process_type == "raylet":
            command = [_idle_agent_flag(c) for c in command]
        return start_process(command, process_type, *args, **kw)

    def registered_node(gcs_address: str, node_id: str) -> Any:
        _await_registration(gcs_address, node_id)
        return get_node(gcs_address, node_id)

    for name in _NOT_STARTED:
        setattr(Node, name, _skipped)
    services.start_ray_process = start_ray_process
    services.get_node = registered_node
    try:
        with _environ(_CONNECT_RETRY):
            yield
    finally:
        services.start_ray_process = start_process
        services.get_node = get_node
        for name, method in saved.items():
            setattr(Node, name, method)


def _await_registration(gcs_address: str, node_id: str) -> None:
    """Wait (polls of :data:`_REGISTER_POLL_S`, at most :data:`_REGISTER_WAIT_S` seconds) until the
    GCS at ``gcs_address`` lists node ``node_id`` alive, so that Ray's own query, which sleeps a
    second when the node is missing, finds it at once. Any failure here leaves it to that query."""
    from ray._private import services
    from ray._private.state import GlobalState

    try:
        state = GlobalState()
        state._initialize_global_state(services._get_gcs_client_options(gcs_address))
        try:
            end = time.monotonic() + _REGISTER_WAIT_S
            while time.monotonic() < end:
                nodes = state.node_table()
                if any(n.get("NodeID") == node_id and n.get("Alive") for n in nodes):
                    return
                time.sleep(_REGISTER_POLL_S)
        finally:
            state.disconnect()
    except Exception:  # noqa: BLE001 - another Ray layout: Ray's own query decides
        pass


def _idle_agent_flag(arg: str) -> str:
    """A raylet argument, with the idle agent in place of Ray's when it is an agent's command (the
    idle agent needs the session folder, the node id and address; the runtime-env one also keeps
    Ray's command, to hand over to). Any other argument, or a command not as expected, unchanged."""
    import re
    import shlex

    flag = next((f for f in _AGENT_FLAGS if arg.startswith(f)), None)
    if flag is None:
        return arg
    command = arg[len(flag) :]
    found = {k: re.search(rf"--{k}=([^\s\"]+)", command) for k in _AGENT_OPTIONS}
    if not (found["session-dir"] and found["node-id"]):
        return arg
    options = [f"--{k}={m.group(1)}" for k, m in found.items() if m]
    idle = [sys.executable, "-S", _IDLE_AGENT, _AGENT_FLAGS[flag], *options]
    if _AGENT_FLAGS[flag] == "runtime-env":
        idle += ["--", *shlex.split(command)]
    return flag + subprocess.list2cmdline(idle)


def _skipped(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


def ray_running() -> bool:
    """True when this process is already connected to Ray (a notebook, a test fixture): no start-up to pay."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def init_ray(address: str | None, workers: int | None) -> bool:
    """Start local Ray or connect to a cluster; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    # Ray's own INFO/WARNING lines would interleave with the progress bar; errors still show.
    opts: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    if address in (None, "local"):
        # A short temp dir: Ray's socket paths must stay under 107 bytes. Node IP 127.0.0.1 keeps
        # Ray's own traffic on loopback (its GCS and raylet still listen on every interface).
        opts["_temp_dir"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        _OWN_TEMP_DIRS.append(opts["_temp_dir"])
        # The pinned pools reach the workers through the environment the raylet inherits (it
        # starts them): a runtime_env would cost a round trip through Ray's runtime-env agent per
        # worker (measured: the first actor ready ~1 s later, +0.5 s of CPU).
        with _environ(PINNED_THREADS), _lean_head_node():
            ray.init(
                address="local",
                num_cpus=workers or os.cpu_count(),
                _node_ip_address="127.0.0.1",
                # One worker per CPU starts with the raylet, not once this driver has registered
                # (Ray's default): the actors' processes import Ray while this process connects.
                # Measured with runs beside the start: the actor's process began ~1 s sooner.
                # No task events or metrics: they serve Ray's dashboard and state API, which a
                # local sweep does not start; without them ray.shutdown() took 0.07-0.10 s instead
                # of 0.32 s (standalone, 2 cores; after a sweep still 0.3 s now and then).
                _system_config={
                    "enable_worker_prestart": True,
                    "task_events_report_interval_ms": 0,
                    "metrics_report_interval_ms": 0,
                },
                **opts,
            )
        return True
    opts["runtime_env"] = {"env_vars": dict(PINNED_THREADS)}  # workers on other machines
    check_address(address)
    # Ray's C++ client prints a warning line a second while the head refuses it (about 20 s): keep
    # them out of the terminal, and read them to say why in one line.
    with _stderr_captured() as captured:
        try:
            ray.init(address=address, **opts)  # a cluster: its own CPUs (num_cpus would raise)
            return True
        except Exception as exc:  # noqa: BLE001 - every connection failure becomes one line
            failure = exc
    chain, e = [], failure
    while e is not None and len(chain) < 8:
        chain.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = "\n".join(chain) + "\n" + captured.read()
    if any(k in text for k in ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")):
        raise InputError(
            f"--address {address}: the Ray cluster refused this driver's authentication token: {AUTH_HELP}"
        ) from None
    raise InputError(
        f"--address {address}: cannot connect to the Ray cluster: {first_line(failure)} "
        f"(if the head refuses drivers: {AUTH_HELP})"
    ) from None


# Ray >= 2.52 authenticates drivers with a token: the usual reason a reachable head refuses a driver.
AUTH_HELP = (
    "Ray >= 2.52 uses token authentication, so give this driver the cluster's token (RAY_AUTH_TOKEN, "
    "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token as on the head) or start head and driver with "
    "RAY_AUTH_MODE=disabled on a trusted network"
)


class _Captured:
    def __init__(self) -> None:
        self.text = ""

    def read(self) -> str:
        return self.text


@contextlib.contextmanager
def _stderr_captured() -> Iterator[_Captured]:
    """Redirect file descriptor 2 (where Ray's C++ core logs) to a temporary file for the block."""
    cap = _Captured()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to capture
        yield cap
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield cap
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            cap.text = tmp.read().decode("utf-8", "replace")


def check_address(address: str) -> None:
    """Fail fast, in one line, when a host:port cluster address does not answer (Ray itself retries
    for minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise InputError(
            f"--address {address}: cannot connect to the Ray cluster: {exc} "
            f"(is a head running there? `ray start --head --port {port}` starts one)"
        ) from None
