"""Reading kubelet's volume mount failures on a pod and saying them in words. Pure.

Once the pod is on a node, kubelet mounts its volumes and reports each failure as a `FailedMount`
event (`FailedAttachVolume` from the attach/detach controller), written as

    MountVolume.SetUp failed for volume "dataset-archive" : mount failed: exit status 32
    Mounting command: mount ... Output: mount.nfs: Connection timed out

    MountVolume.SetUp failed for volume "dataset-raw" : hostPath type check failed: /srv/datasets/raw is not a directory

    Unable to attach or mount volumes: unmounted volumes=[dataset-archive], unattached volumes=[...]:
    timed out waiting for the condition

kubelet retries forever, so without this the user waits out the whole start timeout. Some
failures are final: a node folder that is not there, an NFS mount that failed (mount exit status
32, a server that does not answer). Others often resolve by themselves within seconds (a ConfigMap
or Secret created just after the pod, a claim being bound, a disk still attaching, the git-sync
folder of a git dataset not made yet on a new node): those fail the spawn only when kubelet
reports the same failure again over at least the grace period, read from the event's own first
and last timestamps (both kubelet's clock).
"""

import re
from dataclasses import dataclass
from datetime import datetime

from .datasets import volume_name

MOUNT_EVENT_REASONS = ("FailedMount", "FailedAttachVolume")

_FOR_VOLUME = re.compile(
    r'^(?P<operation>\S+ (?:failed|error)) for volume "(?P<volume>[^"]+)"\s*:?\s*(?P<detail>.*)$', re.S
)
_UNMOUNTED = re.compile(r"unmounted volumes=\[(?P<names>[^\]]*)\]")
_NFS_OUTPUT = re.compile(r"Output:\s*(?P<output>.+)", re.S)


@dataclass(frozen=True)
class VolumeOrigin:
    """What a pod volume is to the user: `label` names it in a sentence, `kind` is how it is mounted.

    kind: "hostPath", "nfs", "pvc" or "git" (a hostPath folder that git-sync fills, so its
    absence for a moment is expected on a new node).
    """

    label: str
    kind: str = ""


@dataclass(frozen=True)
class MountFailure:
    volume: str
    detail: str
    final: bool
    repeated_for: float  # seconds between the event's first and last report


_DATASET_KINDS = {"hostPath": "hostPath", "nfs": "nfs", "pv": "pvc", "git": "git"}


def volume_origins(plan, volumes=(), home_claims=()):
    """{pod volume name: VolumeOrigin} of a launch: its datasets, its group volumes and the home
    volume (the configured volume whose claim is one of `home_claims`)."""
    origins = {}
    for volume in volumes or []:
        if (volume.get("persistentVolumeClaim") or {}).get("claimName") in home_claims:
            origins[volume.get("name")] = VolumeOrigin("Your home folder", "pvc")
    if plan is not None:
        for mount in plan.datasets:
            dataset = mount.dataset
            origins[volume_name("dataset", dataset.name)] = VolumeOrigin(
                f"Dataset '{dataset.label}'", _DATASET_KINDS.get(dataset.type, "")
            )
        for shared in plan.shared_volumes:
            origins[shared.claim_name] = VolumeOrigin(f"The project volume of group '{shared.group}'", "pvc")
    return origins


def _timestamp(text):
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def repeated_for(event):
    """Seconds over which kubelet reported this same event more than once (0 for a single report)."""
    series = event.get("series") or {}
    count = series.get("count") or event.get("count") or 1
    if count < 2:
        return 0.0
    first = _timestamp(event.get("firstTimestamp") or event.get("eventTime"))
    last = _timestamp(series.get("lastObservedTime") or event.get("lastTimestamp") or event.get("eventTime"))
    if first is None or last is None:
        return 0.0
    return max(0.0, (last - first).total_seconds())


def _is_final(detail, origin):
    """Whether waiting cannot help: the node or the storage server has said no."""
    lowered = detail.lower()
    kind = origin.kind if origin else ""
    if kind == "git":
        # git-sync makes the folder; on a node that just joined it may be seconds away
        return False
    if "hostpath type check failed" in lowered:
        return True
    if "mount failed: exit status 32" in lowered or "connection timed out" in lowered:
        return True
    if kind == "hostPath" and "no such file or directory" in lowered:
        return True
    return False


def read_mount_failure(event, volumes=None):
    """The MountFailure an event reports, or None when it is no mount failure.

    `volumes` maps pod volume names to their VolumeOrigin; it decides which reasons are final
    for the volume's kind.
    """
    if (event or {}).get("reason") not in MOUNT_EVENT_REASONS:
        return None
    volumes = volumes or {}
    message = (event.get("message") or "").strip()
    match = _FOR_VOLUME.match(message)
    if match:
        volume, detail = match.group("volume"), match.group("detail").strip()
    else:
        unmounted = _UNMOUNTED.search(message)
        names = unmounted.group("names").split() if unmounted else []
        names = [n.strip(",") for n in names if n.strip(",")]
        volume = next((n for n in names if n in volumes), names[0] if names else "")
        detail = message
    origin = volumes.get(volume)
    return MountFailure(volume=volume, detail=detail, final=_is_final(detail, origin), repeated_for=repeated_for(event))


def mount_failure(events, volumes=None, grace=20.0):
    """The mount failure that should end the spawn now, or None.

    A final reason ends it at once; any other failure once kubelet has reported it again over
    at least `grace` seconds. Of several, the latest event is the one told.
    """
    chosen = None
    for event in events or []:
        failure = read_mount_failure(event, volumes)
        if failure is not None and (failure.final or failure.repeated_for >= grace):
            chosen = failure
    return chosen


def _why(failure, origin):
    """The cause in words, with kubelet's own detail where it helps an administrator."""
    lowered = failure.detail.lower()
    if "type check failed" in lowered or (origin and origin.kind in ("hostPath", "git") and "no such file" in lowered):
        path = re.search(r"(/\S+?)(?: is not a|: no such file)", failure.detail)
        where = f" {path.group(1)}" if path else ""
        return f"its folder{where} does not exist on the node the server was placed on"
    if "connection timed out" in lowered:
        return "its storage server did not answer"
    output = _NFS_OUTPUT.search(failure.detail)
    if "exit status 32" in lowered and output:
        # e.g. "mount.nfs: access denied by server", or no NFS client on the node ("wrong fs type")
        return f"the node could not mount it ({output.group('output').strip().splitlines()[0]})"
    if "timed out waiting for the condition" in lowered or "context deadline exceeded" in lowered:
        return "it was still not ready after kubelet's wait"
    first_line = failure.detail.splitlines()[0] if failure.detail else "no reason given"
    return f"Kubernetes said: {first_line}"


def describe_mount_failure(failure, volumes=None):
    """The sentence shown to the user when the spawn is given up for a volume."""
    volumes = volumes or {}
    origin = volumes.get(failure.volume)
    what = origin.label if origin else f"Volume '{failure.volume}'" if failure.volume else "A volume"
    return (
        f"{what} could not be mounted: {_why(failure, origin)}. The server was not started; "
        "please tell your administrator, or try again later."
    )
