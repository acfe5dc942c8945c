"""Run the web application under uvicorn: `tidegate serve`."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from tidegate.config import Config
from tidegate.errors import ConfigError
from tidegate.web.app import create_app
from tidegate.web.security import check_binding


def serve(
    config: Config,
    host: str | None = None,
    port: int | None = None,
    *,
    ready: Callable[[str], None] = lambda _url: None,
) -> None:
    """Serve the dashboard and run the schedule until interrupted.

    Args:
        config: the configuration.
        host: address to listen on (default: [serve] host).
        port: TCP port (default: [serve] port).
        ready: called with the dashboard's URL once the port is bound.

    Raises:
        ConfigError: a non-loopback host without a token, or the port cannot be bound.
    """
    host = host or config.serve.host
    port = config.serve.port if port is None else port
    check_binding(host, config.serve.token)
    listener = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    ready(f"http://{shown}:{listener.getsockname()[1]}/")
    server = uvicorn.Server(
        # uvicorn's own loggers (its access log included) go through the handler of
        # `tidegate --log-level/--log-format` (tidegate.logs), not a configuration of its own.
        uvicorn.Config(create_app(config), log_config=None, access_log=True, lifespan="on")
    )
    server.run(sockets=[listener])


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts, so that a port in use is one
    clear error line and port 0 picks a free port we can report."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"[serve] cannot listen on {host}:{port}: {error.strerror or error}",
            "choose another --port, or stop the process using it",
        ) from None
    listener.listen(128)
    listener.set_inheritable(True)
    return listener
