"""The node agent's in-agent single-user stand-ins (scripts/localstack/standin.py), which let the
benchmarks keep a thousand servers running without a thousand processes: the hub must take them for
servers that are up, and a pod's deletion must take its stand-in away."""

import asyncio

import pytest
from jupyterhub.utils import wait_for_http_server
from tornado.httpclient import AsyncHTTPClient

from localstack import standin
from localstack.nodeagent import Agent, Node


async def _refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


@pytest.mark.asyncio
async def test_the_hub_takes_a_stand_in_for_a_running_server():
    server = await standin.StandIn.start("127.0.0.1", 0, "5.5.0")
    try:
        # what the hub does to decide a server is up, and the header it compares with its own version
        # (its return value is tornado's response on JupyterHub 5, aiohttp's on 6: read it ourselves)
        await wait_for_http_server(server.url, timeout=10)
        client = AsyncHTTPClient(force_instance=True)
        try:
            r = await client.fetch(server.url)
            head = await client.fetch(server.url + "user/ann/api", method="HEAD")
        finally:
            client.close()
        assert r.code == 200
        assert r.headers["X-JupyterHub-Version"] == "5.5.0"
        assert b"stand-in" in r.body
        assert head.code == 200 and head.body == b""
    finally:
        server.close()
    await asyncio.sleep(0)
    assert await _refused("127.0.0.1", server.port)


def test_only_annotated_pods_get_a_stand_in_at_their_service_url():
    pod = {"metadata": {"annotations": {standin.ANNOTATION: "singleuser"}}}
    assert standin.wanted(pod)
    assert not standin.wanted({"metadata": {"annotations": {standin.ANNOTATION: "other"}}})
    assert not standin.wanted({"metadata": {}})
    assert standin.address({"JUPYTERHUB_SERVICE_URL": "http://127.100.0.7:8888/user/ann/"}, "x") == (
        "127.100.0.7",
        8888,
    )
    assert standin.address({}, "127.100.0.9") == ("127.100.0.9", 8888)


class RecordingApi:
    """The API server as the node sees it: every request recorded, every one accepted."""

    def __init__(self):
        self.calls = []

    async def req(self, method, path, body=None, ctype="application/json", params=None, ok=(200, 201)):
        self.calls.append((method, path, body))
        return {}


def _pod(uid: str) -> dict:
    return {
        "metadata": {
            "name": "jupyter-ann",
            "namespace": "bench",
            "uid": uid,
            "annotations": {standin.ANNOTATION: "singleuser"},
        },
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": "registry.invalid/tiny:1",
                    # a command that does not exist here: it must not be run
                    "command": ["/nonexistent/jupyterhub-singleuser"],
                    # port 0: any free port (the agent replaces 0.0.0.0 with the pod IP, as for a real server)
                    "env": [{"name": "JUPYTERHUB_SERVICE_URL", "value": "http://0.0.0.0:0/user/ann/"}],
                }
            ],
        },
        "status": {"podIP": "127.0.0.1"},
    }


@pytest.mark.asyncio
async def test_the_agent_serves_an_annotated_pod_itself_until_it_is_deleted(tmp_path):
    agent = Agent("https://127.0.0.1:1", tmp_path / "pki", [], tmp_path / "work", "/usr/bin")
    agent.jupyterhub_version = "5.5.0"
    api = RecordingApi()
    node = Node(agent, {"name": "bench-node-0"}, api)
    pod = _pod("uid-1")
    await node.sync_pod(pod)
    c = node.pods["uid-1"]
    await c.task
    assert c.proc is None and c.stand_in is not None
    await wait_for_http_server(c.stand_in.url, timeout=10)  # answers as a server that is up
    status = [b["status"] for m, p, b in api.calls if p.endswith("/pods/jupyter-ann/status")][-1]
    assert status["phase"] == "Running" and status["podIP"] == "127.0.0.1"
    assert status["containerStatuses"][0]["containerID"] == f"stand-in://127.0.0.1:{c.stand_in.port}"
    reasons = [b["reason"] for m, p, b in api.calls if p.endswith("/events")]
    assert reasons == ["Pulled", "Created", "Started"]

    port = c.stand_in.port
    deleted = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "now", "deletionGracePeriodSeconds": 1}}
    await node.sync_pod(deleted)
    for _ in range(100):
        if "uid-1" not in node.pods:
            break
        await asyncio.sleep(0.01)
    assert "uid-1" not in node.pods
    assert ("DELETE", "/api/v1/namespaces/bench/pods/jupyter-ann") in [(m, p) for m, p, _ in api.calls]
    assert await _refused("127.0.0.1", port)
