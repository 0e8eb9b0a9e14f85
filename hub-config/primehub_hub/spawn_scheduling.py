"""Fast failure: a pod the scheduler cannot place, or whose volumes or images kubelet cannot get, fails the spawn early.

A mixin of PrimeHubSpawner (spawner.py). `start` runs KubeSpawner's start beside a watch of the
pending pod: once the pod exists, the scheduler's verdict (the pod's Unschedulable condition or a
FailedScheduling event) is read whenever the pod or one of its events changes (the pod and event
reflectors are made notifying, watch.py; `scheduling_poll_interval` is only a safety net), and a
final verdict that lasts `scheduling_failure_grace` seconds (and is not waiting for a cluster
scale-up) cancels the start, removes the pod and fails the spawn with the reason in words.

Once the pod is on a node, kubelet's FailedMount / FailedAttachVolume events are read the same
way (mounts.py): a final mount failure, or one kubelet repeats over `mount_failure_grace`
seconds, ends the spawn naming the dataset, project volume or home folder it concerns. Then its
images: a container that stays in a failed pull (ErrImagePull, ImagePullBackOff) for
`image_pull_failure_grace` seconds, or at once for a final reason (InvalidImageName), ends the
spawn naming the image (pulls.py). Only the pod is removed; the home volume and every other claim
stay.
"""

import asyncio
import time
from functools import partial

from kubernetes_asyncio.client.rest import ApiException
from traitlets import Float
from traitlets.config import LoggingConfigurable

from .errors import ImagePullFailed, MountFailed, SchedulingFailed
from .mounts import describe_mount_failure, mount_failure, volume_origins
from .pulls import describe_pull_failure, pull_failure_grace, read_pull_failure
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
    mount_failure_grace = Float(
        20.0,
        config=True,
        help=(
            "Seconds over which kubelet must report the same volume mount failure again before the spawn "
            "fails, for failures that often resolve by themselves (a ConfigMap or claim not there yet, a disk "
            "still attaching). Final ones (a missing node folder, a failed NFS mount) fail at once."
        ),
    )
    image_pull_failure_grace = Float(
        30.0,
        config=True,
        help=(
            "Seconds a container of a user pod may stay in a failed image pull (ErrImagePull, ImagePullBackOff) "
            "before the spawn fails; kubelet tries again after 10 s, then 20 s. An image address that is no valid "
            "image name fails at once."
        ),
    )
    scheduling_poll_interval = Float(
        2.0,
        config=True,
        help=(
            "Seconds between looks at a pending pod's scheduling status when no watch event arrives. "
            "The spawn reacts to the pod and event watches at once; this is only a safety net."
        ),
    )

    @property
    def _pod_created(self):
        return self.__dict__.get("_pod_created_flag", False)

    @_pod_created.setter
    def _pod_created(self, value):
        # the pod's creation wakes the scheduling watch (it may have seen the pod's events first)
        self.__dict__["_pod_created_flag"] = value
        if value:
            self._scheduling_changed().set()

    def _scheduling_changed(self):
        """Set when this server's pod is created or changes, or one of its events arrives."""
        return self.__dict__.setdefault("_scheduling_event", asyncio.Event())

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
                if isinstance(failure, (SchedulingFailed, MountFailed, ImagePullFailed)):
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
        # stop() deletes the pod only: the home volume and the other claims stay for the next start
        try:
            await self.stop(now=True)
        except Exception:
            self.log.exception("Could not remove pod %s after its failed start", self.pod_name)

    def _current_pod(self):
        reflector = self.pod_reflector
        return reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector is not None else None

    def _scheduling_failure(self):
        """(SchedulingFailed, grace) when the scheduler says the current pod cannot run, else (None, 0)."""
        pod = self._current_pod()
        if pod is None or pod_is_scheduled(pod):
            return None, 0.0
        events = self._pod_events()
        message = pod_unschedulable_message(pod) or failed_scheduling_message(events)
        if not message:
            return None, 0.0
        verdict = read_verdict(message, own_claims=self._own_claims())
        if not verdict.final or scale_up_triggered(events):
            return None, 0.0
        instance_type = self.plan.instance_type if self.plan else None
        return SchedulingFailed(describe(verdict, instance_type)), self.scheduling_failure_grace

    async def _mount_failure(self):
        """A MountFailed when kubelet cannot mount one of the placed pod's volumes, else None.

        The grace for failures that may resolve is read from the events themselves (mounts.py).
        """
        pod = self._current_pod()
        if pod is None or not pod_is_scheduled(pod) or _phase(pod) != "Pending":
            return None
        origins = self._volume_origins()
        failure = mount_failure(self._events_of(pod), origins, grace=self.mount_failure_grace)
        if failure is None:
            return None
        if failure.volume and failure.volume not in origins:
            # kubelet names a claim's volume by its PersistentVolume: find which claim is bound to it
            origins = {**origins, **await self._persistent_volume_origins(pod, origins)}
        return MountFailed(describe_mount_failure(failure, origins))

    def _pull_failure(self):
        """(ImagePullFailed, grace) when kubelet cannot pull an image of the placed pod, else (None, 0)."""
        pod = self._current_pod()
        if pod is None or not pod_is_scheduled(pod) or _phase(pod) != "Pending":
            return None, 0.0
        failure = read_pull_failure(pod, self._events_of(pod))
        if failure is None:
            return None, 0.0
        images = {self.image: self.plan.image.label} if self.plan is not None else {}
        grace = pull_failure_grace(failure, self.image_pull_failure_grace)
        return ImagePullFailed(describe_pull_failure(failure, images)), grace

    def _events_of(self, pod):
        """This pod's events: those of an earlier pod of the same name are not its own."""
        uid = (pod.get("metadata") or {}).get("uid")
        return [e for e in self._pod_events() if not uid or (e.get("involvedObject") or {}).get("uid") in (None, uid)]

    @property
    def events(self):
        """KubeSpawner's `events`, read through the index below: its start reads them on every
        launch (to mark where this launch's events begin) and its progress stream every second; its
        own sorts every event of the namespace each time, which with a thousand servers running
        made each spawn wait for thousands of events to be sorted."""
        return self._pod_events()

    def _pod_events(self):
        """KubeSpawner's `events` (this pod name's events, oldest first, none from before the start's
        `_last_event` marker), but picked out before they are sorted: KubeSpawner sorts every event of
        the namespace on each read, and this watch reads on every change of its pod, so a hundred
        spawns at once sorted thousands of events hundreds of times (the loop stalls of the
        concurrency bench on PostgreSQL). The change-notifying reflector indexes events by their
        pod's name (watch.py), so a wake costs this pod's events only."""
        reflector = self.event_reflector
        if not reflector:
            return []
        if hasattr(reflector, "involving"):
            mine = reflector.involving(self.pod_name)
        else:
            mine = [e for e in list(reflector.resources.values()) if _involved_name(e) == self.pod_name]
        mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        events = []
        for event in mine:
            if self._last_event and (event.get("metadata") or {}).get("uid") == self._last_event:
                events = []  # the marker: only what came after it is this start's
            else:
                events.append(event)
        return events

    def _volume_origins(self):
        """{pod volume name: VolumeOrigin}: what each volume of this launch is to the user."""
        volumes = self.volumes.values() if isinstance(self.volumes, dict) else self.volumes or []
        return volume_origins(self.plan, volumes, home_claims=("{pvc_name}", self.pvc_name))

    async def _persistent_volume_origins(self, pod, origins):
        """{PersistentVolume name: VolumeOrigin} for the pod's claims that are bound (one read per claim)."""
        found = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            origin = origins.get(volume.get("name"))
            if not claim or origin is None:
                continue
            try:
                pvc = await self.api.read_namespaced_persistent_volume_claim(claim, self.namespace)
            except (ApiException, OSError, asyncio.TimeoutError) as e:
                self.log.debug("Cannot read claim %s to name a failed mount: %r", claim, e)
                continue
            bound = getattr(getattr(pvc, "spec", None), "volume_name", None)
            if bound:
                found[bound] = origin
        return found

    def _own_claims(self):
        """The claims this spawner creates before its pod: the home volume and the group volumes."""
        claims = {self.pvc_name} if self.storage_pvc_ensure else set()
        if self.plan is not None:
            claims |= {shared.claim_name for shared in self.plan.shared_volumes}
        return frozenset(claims)

    def _wake_on(self, event):
        """A reflector listener that sets `event` when this server's pod or one of its events changes."""
        pod_key = f"{self.namespace}/{self.pod_name}"

        def changed(key, reflector):
            if key is None or key == pod_key:
                event.set()
                return
            obj = reflector.resources.get(key) if reflector is not None else None
            if obj is None or ((obj.get("involvedObject") or {}).get("name") == self.pod_name):
                event.set()

        return changed

    async def _watch_scheduling(self):
        """Return the SchedulingFailed, MountFailed or ImagePullFailed that ends this spawn, once it is due."""
        changed = self._scheduling_changed()
        changed.clear()
        wake = self._wake_on(changed)
        listening = {}
        first_seen, seen_kind = None, None
        try:
            while True:
                for reflector in (self.pod_reflector, self.event_reflector):
                    if reflector is not None and hasattr(reflector, "add_listener") and id(reflector) not in listening:
                        listener = partial(_call_with, wake, reflector)
                        reflector.add_listener(listener, about=self.pod_name)
                        listening[id(reflector)] = (reflector, listener)
                changed.clear()
                failure, grace = self._scheduling_failure() if self._pod_created else (None, 0.0)
                if failure is None and self._pod_created:
                    # a mount failure's grace is read from kubelet's own event times: it counts at once
                    failure = await self._mount_failure()
                if failure is None and self._pod_created:
                    # a failed pull's grace counts from when this watch first saw it, and anew after a recovery
                    failure, grace = self._pull_failure()
                if failure is None:
                    first_seen = None
                else:
                    now = _clock()
                    if first_seen is None or type(failure) is not seen_kind:
                        # a grace counts from the first sight of its own kind of failure (a pull's not from
                        # an unschedulable verdict just before it)
                        first_seen, seen_kind = now, type(failure)
                    if now - first_seen >= grace:
                        self.log.warning("Giving up spawn of %s: %s", self.pod_name, failure)
                        return failure
                wait = self.scheduling_poll_interval
                if first_seen is not None:
                    wait = min(wait, max(0.0, first_seen + grace - _clock()))
                await _until_set(changed, wait)
        finally:
            for reflector, listener in listening.values():
                reflector.remove_listener(listener, about=self.pod_name)


def _involved_name(event):
    return (event.get("involvedObject") or {}).get("name")


def _clock():
    """Seconds on the clock a failure's grace is counted by (replaced in tests, never asyncio's own)."""
    return time.monotonic()


def _phase(pod):
    return (pod.get("status") or {}).get("phase") or "Pending"


async def _until_set(event, timeout):
    """Wait for `event` at most `timeout` seconds, and let a cancellation through.

    Not asyncio.wait_for: before Python 3.12 it returns the result, dropping the cancellation, when
    the event is set at the moment its caller is cancelled; the spawn's end does exactly that (the
    pod's last change wakes the watch as the finished start cancels it), and the watch then never
    ended, nor the spawn waiting for it.
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


def _call_with(wake, reflector, key):
    wake(key, reflector)
