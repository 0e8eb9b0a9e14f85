"""The node agent's Nodes stay Ready (nodeagent.py): registration with capacity, labels and taints,
the Lease renewed every HEARTBEAT seconds and the Ready status posted every third beat, as kubelet
does, so the node lifecycle controller never marks a node NotReady and evicts its pods.

A mixin of nodeagent.Node, which has `name`, `spec` (the node's spec from the agent's node list)
and `api` (nodeapi.Api with the node's certificate)."""

from __future__ import annotations

import asyncio
import logging
import os

from .nodeapi import ApiError, now, now_micro

log = logging.getLogger("nodeagent")

LEASE_SECONDS = 40
HEARTBEAT = 10


class NodeHeartbeat:
    def _capacity(self) -> dict:
        cap = {"cpu": str(self.spec["cpu"]), "memory": self.spec["memory"], "pods": "110", "ephemeral-storage": "100Gi"}
        if self.spec.get("gpu"):
            cap["nvidia.com/gpu"] = str(self.spec["gpu"])
        return cap

    def _status(self) -> dict:
        t = now()
        conds = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "node agent is posting ready status",
                "lastHeartbeatTime": t,
                "lastTransitionTime": t,
            },
        ]
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            conds.append(
                {
                    "type": ctype,
                    "status": "False",
                    "reason": f"KubeletHasNo{ctype}",
                    "message": "",
                    "lastHeartbeatTime": t,
                    "lastTransitionTime": t,
                }
            )
        return {
            "capacity": self._capacity(),
            "allocatable": self._capacity(),
            "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v0.0.0-nodeagent",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "local-process://1",
                "osImage": "primehub local node agent",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }

    async def register(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.spec.get("labels", {}),
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {"taints": self.spec.get("taints", [])},
        }
        try:
            await self.api.req("POST", "/api/v1/nodes", body)
            log.info("registered node %s", self.name)
        except ApiError as e:
            if e.status != 409:
                raise
        await self.post_status()

    async def post_status(self) -> None:
        await self.api.req(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            {"status": self._status()},
            ctype="application/strategic-merge-patch+json",
        )

    async def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()}
        try:
            await self.api.req("PATCH", path, {"spec": spec}, ctype="application/merge-patch+json")
        except ApiError as e:
            if e.status != 404:
                raise
            await self.api.req(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                    "spec": spec,
                },
            )

    async def heartbeat_loop(self) -> None:
        n = 0
        while True:
            try:
                await self.renew_lease()
                if n % 3 == 0:
                    await self.post_status()
            except Exception as e:  # the API server may be restarting; keep trying
                log.warning("heartbeat for %s failed: %s", self.name, e)
            n += 1
            await asyncio.sleep(HEARTBEAT)
