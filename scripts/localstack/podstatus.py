"""What the node agent tells the API server about a pod (nodeagent.py), as kubelet writes it: the
pod's status (phase, IP, conditions, the container's state, restarts and last state) and the pod's
events (Pulled, Created, Started, BackOff, Killing, Failed), which the hub and `kubectl describe`
read.

A mixin of nodeagent.Node, which has `name` and `api` (nodeapi.Api with the node's certificate)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .nodeapi import ApiError, now

if TYPE_CHECKING:
    from .nodeagent import Container

log = logging.getLogger("nodeagent")


class PodStatusReporter:
    async def report(self, c: Container, phase: str, running=False, waiting=None, terminated=None) -> None:
        pod = c.pod
        container = pod["spec"]["containers"][0]
        ready = running
        if running:
            state = {"running": {"startedAt": c.started_at}}
        elif terminated:
            state = {"terminated": terminated}
        else:
            state = {"waiting": waiting}
        t = now()

        def cond(ty, ok):
            return {"type": ty, "status": "True" if ok else "False", "lastTransitionTime": t, "lastProbeTime": None}

        status = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": c.ip,
            "podIPs": [{"ip": c.ip}],
            "startTime": pod.get("status", {}).get("startTime") or t,
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", True),
                cond("ContainersReady", ready),
                cond("Ready", ready),
                cond("PodScheduled", True),
            ],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "containerID": f"local://{c.proc.pid}"
                    if c.proc
                    else (f"stand-in://{c.stand_in.host}:{c.stand_in.port}" if c.stand_in else ""),
                    "ready": ready,
                    "restartCount": c.restarts,
                    "started": running,
                    "state": state,
                    "lastState": c.last_state,
                }
            ],
        }
        meta = pod["metadata"]
        try:
            await self.api.req(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"status": status},
                ctype="application/strategic-merge-patch+json",
            )
        except ApiError as e:
            log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], e)

    async def event(self, pod: dict, etype: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "v1",
                "fieldPath": "spec.containers{%s}" % pod["spec"]["containers"][0]["name"],
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": "kubelet", "host": self.name},
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.name,
        }
        try:
            await self.api.req("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except ApiError as e:
            log.warning("event for %s: %s", meta["name"], e)
