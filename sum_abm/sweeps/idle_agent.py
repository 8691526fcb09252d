"""Stands in for the raylet's two Python agents on the local Ray a sweep starts (run by path,
standard library only).

The raylet starts a dashboard agent and a runtime-env agent and counts the node as up only once
both have written their ports into the session folder. Each is a Python process that imports Ray
first (about 0.6 s of CPU each, on a 2-core machine taken from the runs, and on the path to the
first warm worker), yet a local sweep uses neither: no dashboard or metrics, and its workers get
no runtime environment (their pinned thread counts come through the raylet's environment).

- ``dashboard``: writes the three ports a dashboard-less node's agent writes, "-1" (no such
  service), then waits, idle, until its raylet is gone.
- ``runtime-env ... -- COMMAND``: listens where Ray's runtime-env agent would and writes that port;
  if the raylet ever connects (a task or actor with a ``runtime_env``), it hands the port to Ray's
  own agent, ``RAY_AGENT_COMMAND``, which it becomes (the raylet retries the connection meanwhile).

    python -S idle_agent.py dashboard --session-dir=DIR --node-id=HEX
    python -S idle_agent.py runtime-env --session-dir=DIR --node-id=HEX --node-ip-address=IP \\
        -- RAY_AGENT_COMMAND...
"""

from __future__ import annotations

import os
import select
import socket
import sys

# The ports Ray's dashboard agent persists (ray._raylet.*_PORT_NAME), "-1" = not in use.
DASHBOARD_PORTS = ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port")
RUNTIME_ENV_PORT = "runtime_env_agent_port"
POLL_S = 1.0  # how often an idle agent checks that its raylet is still there


def persist_port(session: str, node: str, name: str, port: int) -> None:
    """Write a port where the raylet looks for it (as ``ray._raylet.persist_port`` does)."""
    path = os.path.join(session, f"{name}_{node}")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(str(port))
    os.replace(tmp, path)  # the raylet never reads a half-written port


def main(argv: list[str]) -> None:
    kind, rest = argv[0], argv[1:]
    own, command = (
        (rest[: rest.index("--")], rest[rest.index("--") + 1 :]) if "--" in rest else (rest, [])
    )
    opts = dict(a[2:].split("=", 1) for a in own if a.startswith("--") and "=" in a)
    session, node = opts["session-dir"], opts["node-id"]
    raylet = os.getppid()
    if kind == "dashboard":
        for name in DASHBOARD_PORTS:
            persist_port(session, node, name, -1)
        listener = None
    else:
        host = opts.get("node-ip-address", "127.0.0.1")
        family, kind_, proto, _, addr = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, kind_, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(addr)
        listener.listen(64)
        port = listener.getsockname()[1]
        persist_port(session, node, RUNTIME_ENV_PORT, port)
    while os.getppid() == raylet:  # the raylet stops its agents; this is for a raylet killed hard
        if listener is None:
            select.select([], [], [], POLL_S)
            continue
        ready, _, _ = select.select([listener], [], [], POLL_S)
        if ready:  # the raylet needs a runtime environment: Ray's agent takes over on this port
            listener.close()
            fixed = [a for a in command if not a.startswith("--runtime-env-agent-port=")]
            os.execv(fixed[0], [*fixed, f"--runtime-env-agent-port={port}"])


if __name__ == "__main__":
    main(sys.argv[1:])
