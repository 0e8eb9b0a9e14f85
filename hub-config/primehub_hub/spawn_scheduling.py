"""Fast failure: a pod the scheduler cannot place fails the spawn in about a second.

A mixin of PrimeHubSpawner (spawner.py). `start` runs KubeSpawner's start beside a watch of the
pending pod: once the pod exists, the scheduler's verdict (the pod's Unschedulable condition or a
FailedScheduling event) is read every `scheduling_poll_interval` seconds, and a final verdict that
lasts `scheduling_failure_grace` seconds (and is not waiting for a cluster scale-up) cancels the
start, removes the pod and fails the spawn with the reason in words.
"""

import asyncio
import time

from traitlets import Float
from traitlets.config import LoggingConfigurable

from .errors import SchedulingFailed
from .scheduling import (
    describe,
    failed_scheduling_message,
    pod_is_scheduled,
    pod_unschedulable_message,
    read_verdict,
    scale_up_triggered,
)


class FastSchedulingFailure(LoggingConfigurable):
    """Fail a spawn as soon as the scheduler says the pod cannot run."""

    scheduling_failure_grace = Float(
        0.0,
        config=True,
        help=(
            "Seconds an 'unschedulable' verdict must persist before the spawn fails. 0 fails at once; "
            "raise it on clusters whose autoscaler adds nodes."
        ),
    )
    scheduling_poll_interval = Float(
        0.5, config=True, help="Seconds between looks at a pending pod's scheduling status."
    )

    def start(self):
        self._start_future = asyncio.ensure_future(self._start_watched())
        return self._start_future

    async def _start_watched(self):
        self._pod_created = False
        start_task = asyncio.ensure_future(self._start())
        watch_task = asyncio.ensure_future(self._watch_scheduling())
        try:
            done, _ = await asyncio.wait({start_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
            if watch_task in done and not start_task.done():
                failure = None if watch_task.cancelled() else watch_task.exception() or watch_task.result()
                if isinstance(failure, SchedulingFailed):
                    start_task.cancel()
                    await asyncio.gather(start_task, return_exceptions=True)
                    await self._remove_pod_after_failure()
                    raise failure
                if failure is not None:
                    self.log.error("Watching the scheduling of %s failed: %r", self.pod_name, failure)
            return await start_task
        finally:
            for task in (start_task, watch_task):
                if not task.done():
                    task.cancel()
            await asyncio.gather(start_task, watch_task, return_exceptions=True)

    async def _remove_pod_after_failure(self):
        try:
            await self.stop(now=True)
        except Exception:
            self.log.exception("Could not remove unschedulable pod %s", self.pod_name)

    def _scheduling_failure(self):
        """A SchedulingFailed for the current pod when the scheduler says it cannot run, else None."""
        reflector = self.pod_reflector
        pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None
        if pod is None or pod_is_scheduled(pod):
            return None, False
        events = self.events
        message = pod_unschedulable_message(pod) or failed_scheduling_message(events)
        if not message:
            return None, False
        verdict = read_verdict(message, own_claims=self._own_claims())
        if not verdict.final or scale_up_triggered(events):
            return None, False
        instance_type = self.plan.instance_type if self.plan else None
        return SchedulingFailed(describe(verdict, instance_type)), True

    def _own_claims(self):
        """The claims this spawner creates before its pod: the home volume and the group volumes."""
        claims = {self.pvc_name} if self.storage_pvc_ensure else set()
        if self.plan is not None:
            claims |= {shared.claim_name for shared in self.plan.shared_volumes}
        return frozenset(claims)

    async def _watch_scheduling(self):
        first_seen = None
        while True:
            await asyncio.sleep(self.scheduling_poll_interval)
            if not self._pod_created:
                continue
            failure, seen = self._scheduling_failure()
            if not seen:
                first_seen = None
                continue
            now = time.monotonic()
            first_seen = first_seen if first_seen is not None else now
            if now - first_seen >= self.scheduling_failure_grace:
                self.log.warning("Giving up spawn of %s: %s", self.pod_name, failure)
                return failure
