"""Single-user stand-ins served inside the node agent (nodeagent.py), for pods that ask for one.

The benchmarks keep a thousand servers running on one hub (benchmarks/case_servers.py). A process
per server, even the small benchmarks/fake_singleuser.py (~15 MB each), would need more memory than
the machine that also runs the whole stack has. A pod annotated `localstack.primehub.io/stand-in:
singleuser` therefore gets no process: the node agent listens on the pod's IP and port itself (the
host and port of JUPYTERHUB_SERVICE_URL, as fake_singleuser.py does) and answers every request the
way fake_singleuser.py does: 200 with the X-JupyterHub-Version header. That is all the hub's side
of a spawn, its restart checks and the proxy ask of a server. Every other pod still runs its command.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlparse

ANNOTATION = "localstack.primehub.io/stand-in"
KIND = "singleuser"
BODY = b"bench single-user stand-in (served by the node agent)\n"
DEFAULT_PORT = 8888


def wanted(pod: dict) -> bool:
    """True when the pod asks for an in-agent single-user stand-in instead of its command."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) == KIND


def address(env: dict[str, str], ip: str) -> tuple[str, int]:
    """Where the server would listen: JUPYTERHUB_SERVICE_URL's host and port (0.0.0.0 already
    replaced by the pod IP), else the pod IP and KubeSpawner's default port."""
    url = urlparse(env.get("JUPYTERHUB_SERVICE_URL") or "")
    return url.hostname or ip, url.port if url.port is not None else DEFAULT_PORT


def hub_version() -> str | None:
    # the hub warns about a missing or different version, as it would for a real single-user server
    try:
        return version("jupyterhub")
    except PackageNotFoundError:
        return None


class StandIn:
    """One listening socket answering like benchmarks/fake_singleuser.py."""

    def __init__(self, server: asyncio.base_events.Server, host: str):
        self.server, self.host = server, host
        self.port: int = server.sockets[0].getsockname()[1]  # the bound one when asked for port 0

    @classmethod
    async def start(cls, host: str, port: int, jupyterhub_version: str | None = None) -> "StandIn":
        headers = [b"HTTP/1.1 200 OK", b"Content-Type: text/plain", b"Connection: close"]
        if jupyterhub_version:
            headers.append(b"X-JupyterHub-Version: " + jupyterhub_version.encode())
        head = b"\r\n".join(headers) + b"\r\n"

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                body = b"" if request.startswith(b"HEAD ") else BODY
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(BODY) + body)
                await writer.drain()
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
                pass  # a client that went away or sent no request: nothing to answer
            finally:
                writer.close()

        server = await asyncio.start_server(answer, host, port, reuse_address=True)
        return cls(server, host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def close(self) -> None:
        """Stop listening (the pod's deletion); a request being answered still gets its answer."""
        self.server.close()
