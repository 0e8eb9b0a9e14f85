"""The node agent's client for the API server (nodeagent.py): JSON requests and watches with one
node's client certificate, so the Node authorizer and NodeRestriction judge each call as a
kubelet's, and the timestamps in the formats the API server stores."""

from __future__ import annotations

import datetime
import json
import ssl

import aiohttp


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Api:
    """A small JSON client for the API server with one node's client certificate."""

    def __init__(self, server: str, ca: str, cert: str, key: str):
        self.server = server.rstrip("/")
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))

    async def close(self) -> None:
        await self.session.close()

    async def req(self, method: str, path: str, body=None, ctype="application/json", params=None, ok=(200, 201)):
        data = json.dumps(body) if body is not None else None
        async with self.session.request(
            method,
            self.server + path,
            data=data,
            params=params,
            headers={"Content-Type": ctype},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as r:
            text = await r.text()
            if r.status not in ok:
                raise ApiError(r.status, f"{method} {path}: {r.status} {text[:300]}")
            return json.loads(text) if text else None

    async def watch(self, path: str, params: dict):
        """Yields (type, object) from a watch; returns when the server ends the stream."""
        params = {**params, "watch": "true", "allowWatchBookmarks": "true"}
        async with self.session.get(
            self.server + path, params=params, timeout=aiohttp.ClientTimeout(total=None, sock_read=330)
        ) as r:
            if r.status != 200:
                raise ApiError(r.status, f"watch {path}: {r.status} {(await r.text())[:300]}")
            async for line in r.content:
                if line.strip():
                    ev = json.loads(line)
                    yield ev["type"], ev["object"]


class ApiError(Exception):
    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status = status
