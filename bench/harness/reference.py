"""STAND-IN for the reference-server module (nginx, lighttpd, apache-event, apache-prefork).

Another engineer writes the real bench/harness/reference.py (configs in bench/reference/);
this file only fixes the interface the harness calls, so the harness records reference rows
as skips with a reason until that module is merged over it:

    available(name) -> str | None         None, or why the server cannot run here
    command(name, host, port, workdir) -> list[str]
                                          argv that runs it in the foreground on host:port;
                                          it prints no ready line (the harness waits for the
                                          port) and is stopped by PID (SIGTERM, then SIGKILL)
"""
from __future__ import annotations


def available(name: str) -> str | None:
    return (f"reference row {name}: bench/harness/reference.py is a stand-in here "
            f"(the module that starts reference servers from bench/reference/ is not merged)")


def command(name: str, host: str, port: int, workdir: str) -> list[str]:
    raise RuntimeError(available(name))
