"""The node agent: the one test double of the local stack, standing in for kubelet + container runtime.

It registers Nodes (capacity, labels, taints), keeps their leases and Ready condition fresh, and for
each pod the real scheduler binds to one of its nodes runs the first container's command + args as a
local process on a loopback IP of the pod's own (127.100.x.y), reported as the pod IP. Everything it
reports goes through the real API server with each node's own client certificate, so the Node
authorizer and NodeRestriction apply to it as they would to a kubelet.

What it does not do: pull images, mount volumes, enforce resource limits, run init or sidecar
containers, or probes. The host's Python environment provides the commands.

A pod annotated `localstack.primehub.io/stand-in: singleuser` runs no command: the agent answers
HTTP on the pod's address itself, as the benchmarks' stand-in single-user server does (standin.py),
so a thousand of them cost sockets, not processes. `--pod-ip-prefix` lets a second agent (the
benchmarks' extra nodes) hand out addresses that cannot clash with the first one's.

To make a process listen on its pod IP, the literal address 0.0.0.0 in the command, args and env
values is replaced by the pod IP (JupyterHub's single-user server gets JUPYTERHUB_SERVICE_URL with
0.0.0.0 from KubeSpawner), and POD_IP is set.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import resource
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .nodeapi import Api, now
from .nodeheartbeat import NodeHeartbeat
from .podstatus import PodStatusReporter
from .standin import StandIn, hub_version
from .standin import address as stand_in_address
from .standin import wanted as wants_stand_in

log = logging.getLogger("nodeagent")

DEFAULT_NODES = [
    {"name": "cpu-node", "cpu": "4", "memory": "16Gi", "labels": {"node-role.primehub.io/cpu": "true"}},
    {
        "name": "gpu-node",
        "cpu": "8",
        "memory": "32Gi",
        "gpu": 2,
        "labels": {"accelerator": "nvidia-tesla"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    },
]


@dataclass
class Container:
    """One running pod: its process, its IP, and what was last reported."""

    pod: dict
    ip: str
    proc: asyncio.subprocess.Process | None = None
    stand_in: StandIn | None = None  # instead of a process: see standin.py
    restarts: int = 0
    started_at: str | None = None
    stopping: bool = False
    task: asyncio.Task | None = None
    last_state: dict = field(default_factory=dict)


class Node(NodeHeartbeat, PodStatusReporter):
    """One node: kept Ready (nodeheartbeat.py), runs the pods bound to it, reports them (podstatus.py)."""

    def __init__(self, agent: "Agent", spec: dict, api: Api):
        self.agent, self.spec, self.api = agent, spec, api
        self.name = spec["name"]
        self.pods: dict[str, Container] = {}  # by pod uid

    # ---- pods ---------------------------------------------------------------------------------
    async def watch_pods(self) -> None:
        params = {"fieldSelector": f"spec.nodeName={self.name}"}
        while True:
            try:
                listing = await self.api.req("GET", "/api/v1/pods", params=params)
                seen = set()
                for pod in listing["items"]:
                    seen.add(pod["metadata"]["uid"])
                    await self.sync_pod(pod)
                for uid in list(self.pods):
                    if uid not in seen:
                        await self.forget(uid)
                rv = listing["metadata"]["resourceVersion"]
                async for etype, pod in self.api.watch("/api/v1/pods", {**params, "resourceVersion": rv}):
                    if etype == "BOOKMARK":
                        continue
                    if etype == "ERROR":
                        break
                    if etype == "DELETED":
                        await self.forget(pod["metadata"]["uid"])
                    else:
                        await self.sync_pod(pod)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("pod watch on %s: %s; relisting", self.name, e)
                await asyncio.sleep(1)

    async def sync_pod(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        c = self.pods.get(uid)
        if pod["metadata"].get("deletionTimestamp"):
            if c is None or not c.stopping:
                c = c or Container(pod=pod, ip="")
                self.pods[uid] = c
                c.stopping = True
                asyncio.create_task(self.terminate(c, pod))
            return
        if c is not None:
            c.pod = pod
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        ip = pod.get("status", {}).get("podIP") or self.agent.allocate_ip()
        c = Container(pod=pod, ip=ip)
        self.pods[uid] = c
        c.task = asyncio.create_task(self.run(c))

    async def forget(self, uid: str) -> None:
        c = self.pods.pop(uid, None)
        if c is not None:
            await self.kill(c, 0)
            if c.task:
                c.task.cancel()

    def _env(self, c: Container, spec: dict) -> dict[str, str]:
        meta = c.pod["metadata"]
        sandbox = self.agent.sandbox(meta["namespace"], meta["name"])
        env = {
            "PATH": self.agent.path,
            "HOME": str(sandbox),
            "POD_IP": c.ip,
            "HOSTNAME": meta["name"],
            "KUBERNETES_NODE_NAME": self.name,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        for e in spec.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "valueFrom" in e and "fieldRef" in e["valueFrom"]:
                fp = e["valueFrom"]["fieldRef"]["fieldPath"]
                env[e["name"]] = {
                    "metadata.name": meta["name"],
                    "metadata.namespace": meta["namespace"],
                    "status.podIP": c.ip,
                    "spec.nodeName": self.name,
                }.get(fp, "")
            else:
                env[e["name"]] = ""
        return {k: v.replace("0.0.0.0", c.ip) for k, v in env.items()}

    async def run(self, c: Container) -> None:
        """Start the container, restart it per restartPolicy with kubelet's back-off, report status."""
        pod = c.pod
        spec = pod["spec"]
        container = spec["containers"][0]
        argv = [a.replace("0.0.0.0", c.ip) for a in (container.get("command") or []) + (container.get("args") or [])]
        policy = spec.get("restartPolicy", "Always")
        backoff = 10
        await self.event(
            pod,
            "Normal",
            "Pulled",
            f'Container image "{container.get("image")}" already present on machine (not pulled: the node agent runs local commands)',
        )
        if wants_stand_in(pod):
            await self._serve_stand_in(c, pod, container)
            return
        while not c.stopping:
            if not await self._start_process(c, pod, argv, container):
                return
            c.started_at = now()
            await self.event(pod, "Normal", "Created", f"Created container {container['name']}")
            await self.event(
                pod, "Normal", "Started", f"Started container {container['name']} as pid {c.proc.pid} on {c.ip}"
            )
            await self.report(c, running=True, phase="Running")
            code = await c.proc.wait()
            if c.stopping:
                return
            finished = now()
            term = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": c.started_at,
                "finishedAt": finished,
            }
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                await self.report(c, terminated=term, phase="Succeeded" if code == 0 else "Failed")
                return
            c.restarts += 1
            c.last_state = {"terminated": term}
            await self.report(
                c,
                waiting={"reason": "CrashLoopBackOff", "message": f"back-off {backoff}s restarting failed container"},
                phase="Running",
            )
            await self.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 300)

    async def _start_process(self, c: Container, pod: dict, argv: list[str], container: dict) -> bool:
        """Start the container's command in the pod's sandbox; False (reported, with an event) if it cannot run."""
        meta = pod["metadata"]
        if not argv or not (shutil.which(argv[0], path=self.agent.path) or os.path.exists(argv[0])):
            msg = (
                "no command given and the node agent cannot run image entrypoints"
                if not argv
                else f'exec: "{argv[0]}": executable file not found in $PATH'
            )
            await self.report(c, waiting={"reason": "RunContainerError", "message": msg}, phase="Pending")
            await self.event(pod, "Warning", "Failed", f"Error: {msg}")
            return False
        sandbox = self.agent.sandbox(meta["namespace"], meta["name"])
        try:
            c.proc = await asyncio.create_subprocess_exec(
                *argv,
                env=self._env(c, container),
                cwd=str(sandbox),
                stdout=open(sandbox / "container.log", "ab"),
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            await self.report(c, waiting={"reason": "RunContainerError", "message": str(e)}, phase="Pending")
            await self.event(pod, "Warning", "Failed", f"Error: {e}")
            return False
        return True

    async def _serve_stand_in(self, c: Container, pod: dict, container: dict) -> None:
        """Listen on the pod's address in this process instead of running the command (standin.py)."""
        host, port = stand_in_address(self._env(c, container), c.ip)
        try:
            c.stand_in = await StandIn.start(host, port, self.agent.jupyterhub_version)
        except OSError as e:
            msg = f"stand-in single-user server cannot listen on {host}:{port}: {e}"
            await self.report(c, waiting={"reason": "RunContainerError", "message": msg}, phase="Pending")
            await self.event(pod, "Warning", "Failed", f"Error: {msg}")
            return
        if c.stopping:  # deleted while the socket was being opened
            c.stand_in.close()
            return
        c.started_at = now()
        await self.event(pod, "Normal", "Created", f"Created container {container['name']}")
        await self.event(
            pod,
            "Normal",
            "Started",
            f"Started container {container['name']} as a stand-in single-user server in the node agent on {host}:{port}",
        )
        await self.report(c, running=True, phase="Running")

    async def kill(self, c: Container, grace: float) -> None:
        if c.stand_in is not None:
            c.stand_in.close()
            c.stand_in = None
            return
        p = c.proc
        if p is None or p.returncode is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(p.wait(), timeout=max(grace, 0.1))
        except asyncio.TimeoutError:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await p.wait()

    async def terminate(self, c: Container, pod: dict) -> None:
        """Honour a deletion like kubelet: SIGTERM, the grace period, SIGKILL, then remove the pod."""
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds", 30) or 0
        if c.stand_in is not None or (c.proc is not None and c.proc.returncode is None):
            await self.event(pod, "Normal", "Killing", f"Stopping container {pod['spec']['containers'][0]['name']}")
        await self.kill(c, grace)
        if c.task:
            c.task.cancel()
        try:
            await self.api.req(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]},
                },
                ok=(200, 202, 404, 409),
            )
        except Exception as e:
            log.warning("final delete of %s: %s", meta["name"], e)
        self.pods.pop(meta["uid"], None)
        self.agent.release_sandbox(meta["namespace"], meta["name"])


class Agent:
    def __init__(self, server: str, pki: Path, nodes: list[dict], workdir: Path, path: str, ip_prefix: str = "127.100"):
        self.server, self.pki, self.node_specs = server, pki, nodes
        self.workdir, self.path = workdir, path
        self.ip_prefix = ip_prefix
        self._ips = itertools.count(1)
        self.nodes: list[Node] = []
        self.jupyterhub_version = hub_version()

    def allocate_ip(self) -> str:
        n = next(self._ips)
        return f"{self.ip_prefix}.{n // 250}.{n % 250 + 1}"

    def sandbox(self, ns: str, name: str) -> Path:
        p = self.workdir / "pods" / ns / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def release_sandbox(self, ns: str, name: str) -> None:
        shutil.rmtree(self.workdir / "pods" / ns / name, ignore_errors=True)

    async def run(self) -> None:
        from . import pki as pkimod

        tasks = []
        for spec in self.node_specs:
            crt, key = pkimod.ensure_cert(
                self.pki, f"node-{spec['name']}", f"system:node:{spec['name']}", ("system:nodes",)
            )
            api = Api(self.server, str(self.pki / "ca.crt"), str(crt), str(key))
            node = Node(self, spec, api)
            self.nodes.append(node)
            while True:
                try:
                    await node.register()
                    break
                except Exception as e:
                    log.warning("registering %s: %s; retrying", node.name, e)
                    await asyncio.sleep(1)
            tasks += [asyncio.create_task(node.heartbeat_loop()), asyncio.create_task(node.watch_pods())]
        log.info("node agent ready: %s", ", ".join(n.name for n in self.nodes))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for t in tasks:
            t.cancel()
        # Our pods' processes die with us: a node that goes away takes its containers along.
        for node in self.nodes:
            for c in list(node.pods.values()):
                await node.kill(c, 2)
            await node.api.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--pki", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--nodes", type=Path, help="JSON list of node specs; default: one CPU and one GPU node")
    ap.add_argument("--path", default=os.environ.get("PATH", ""), help="PATH for pod commands")
    ap.add_argument(
        "--pod-ip-prefix",
        default="127.100",
        help="first two octets of the pods' loopback IPs (another agent on the same host needs its own)",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    nodes = json.loads(a.nodes.read_text()) if a.nodes else DEFAULT_NODES
    _raise_open_files_limit()
    asyncio.run(Agent(a.server, a.pki, nodes, a.workdir, a.path, a.pod_ip_prefix).run())


def _raise_open_files_limit() -> None:
    # every pod's process pipes and every stand-in's listening socket is an open file of ours
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    main()
