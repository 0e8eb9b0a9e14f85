"""Reading kubelet's image pull failures on a pod and saying them in words. Pure.

Once the pod is on a node, kubelet pulls its images. A pull that fails leaves the container
waiting with reason `ErrImagePull`, then `ImagePullBackOff` while kubelet waits to try again
(10 s, then doubling up to 5 minutes), and kubelet tells why in a `Failed` event:

    Failed to pull image "registry.invalid/nope:1": failed to pull and unpack image
    "registry.invalid/nope:1": failed to resolve reference "registry.invalid/nope:1": ...
    dial tcp: lookup registry.invalid on 10.96.0.10:53: no such host

(Kubernetes 1.32 and later also repeat that cause in the back-off's waiting message.) kubelet
retries forever, so without this the user waits out the whole start timeout. A registry that
did not answer once may answer at the next try, so these fail the spawn only once the container
has stayed in a failed pull for the grace period, as the caller observes it: the container
status says whether the pull is failing now (a pull that succeeds clears it), the events say why.
Some waiting reasons are final, since trying again cannot help: an image URL that is no valid
image name (`InvalidImageName`), an image absent from the node whose pull policy forbids pulling
it (`ErrImageNeverPull`), a signature that does not verify (`SignatureValidationFailed`).
"""

import re
from dataclasses import dataclass

RETRIED_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "RegistryUnavailable", "ImageInspectError")
FINAL_PULL_REASONS = ("InvalidImageName", "ErrImageNeverPull", "SignatureValidationFailed")
# reasons of kubelet's events that tell why a pull failed (their message names the image)
PULL_EVENT_REASONS = ("Failed", "InspectFailed", "ErrImageNeverPull")

# kubelet's own framing around the cause: 'Failed to pull image "x": <cause>', and since
# Kubernetes 1.32 'Back-off pulling image "x": ErrImagePull: <cause>'
_FRAMING = re.compile(
    r"^(?:Failed to pull image|Failed to apply default image tag|Back-off pulling image|Failed to inspect image)"
    r'\s+"[^"]*"\s*:?\s*'
)
_REASON_PREFIX = re.compile(r"^(?:%s)\s*:\s*" % "|".join(RETRIED_PULL_REASONS + FINAL_PULL_REASONS))
_DETAIL_LIMIT = 300


@dataclass(frozen=True)
class PullFailure:
    container: str
    image: str
    reason: str  # the container's waiting reason, kubelet's word for it
    detail: str  # kubelet's own account of the cause ("" when it gave none)
    final: bool


def _waiting(status):
    return ((status or {}).get("state") or {}).get("waiting") or {}


def _spec_images(pod):
    """{container name: image} as the pod asks for them (a status may show the runtime's spelling)."""
    spec = (pod or {}).get("spec") or {}
    return {
        c.get("name"): c.get("image") or "" for key in ("initContainers", "containers") for c in spec.get(key) or []
    }


def _failing_statuses(pod):
    """(container status, waiting) of every container of the pod waiting on a failed pull, init ones first."""
    status = (pod or {}).get("status") or {}
    found = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = _waiting(container)
            if waiting.get("reason") in RETRIED_PULL_REASONS + FINAL_PULL_REASONS:
                found.append((container, waiting))
    return found


def _cause(message):
    """kubelet's message without its framing: the cause alone, or "" when it only says it waits."""
    text = (message or "").strip()
    text = _FRAMING.sub("", text, count=1)
    return _REASON_PREFIX.sub("", text, count=1).strip()


def _event_cause(events, image, container):
    """The cause of the latest pull failure event about `image` (or `container`), or ""."""
    quoted = f'"{image}"'
    field_names = (f"spec.containers{{{container}}}", f"spec.initContainers{{{container}}}")
    cause = ""
    for event in events or []:
        if event.get("reason") not in PULL_EVENT_REASONS:
            continue
        message = event.get("message") or ""
        about = ((event.get("involvedObject") or {}).get("fieldPath") or "") in field_names
        if quoted not in message and not about:
            continue
        # "Error: ErrImagePull" only repeats the waiting reason
        found = _cause(message) if not message.startswith("Error: ") else ""
        cause = found or cause
    return cause


def read_pull_failure(pod, events=()):
    """The PullFailure of the pod's containers, or None when no image is failing to pull now.

    The container status decides (it clears once a retry succeeds); the events only add kubelet's
    words for the cause. A final reason is told before one kubelet retries.
    """
    failing = _failing_statuses(pod)
    if not failing:
        return None
    failing.sort(key=lambda found: found[1].get("reason") not in FINAL_PULL_REASONS)
    container, waiting = failing[0]
    name, reason = container.get("name") or "", waiting.get("reason")
    image = _spec_images(pod).get(name) or container.get("image") or ""
    detail = _event_cause(events, image, name) or _cause(waiting.get("message"))
    return PullFailure(container=name, image=image, reason=reason, detail=detail, final=reason in FINAL_PULL_REASONS)


def pull_failure_grace(failure, grace):
    """Seconds the failure must persist before the spawn fails: none for a final one."""
    return 0.0 if failure.final else float(grace)


# kubelet's (the runtime's) words for a failed pull -> the cause in words; the first match wins, so
# a refusal (a registry also says "does not exist" to whom it does not let in) comes before "not found"
_CAUSES = (
    (("toomanyrequests", "too many requests", "rate limit"), "the registry is limiting pulls (too many requests)"),
    (
        ("unauthorized", "authentication required", "access denied", "403 forbidden"),
        "the registry refused access (the image's pull secret is missing or wrong, or there is no such image)",
    ),
    (("not found", "manifest unknown", "no such image"), "the registry has no such image or tag"),
    (("no such host", "server misbehaving"), "the registry's address could not be found"),
    (
        ("i/o timeout", "connection refused", "no route to host", "deadline exceeded", "unreachable", "timed out"),
        "the registry did not answer",
    ),
)
_FINAL_CAUSES = {
    "InvalidImageName": "its address is not a valid image name",
    "ErrImageNeverPull": "it is not on the node and its pull policy forbids pulling it",
    "SignatureValidationFailed": "its signature could not be verified",
}


def _why(failure):
    """The cause in words a user can pass on."""
    if failure.reason in _FINAL_CAUSES:
        return _FINAL_CAUSES[failure.reason]
    lowered = failure.detail.lower()
    for needles, words in _CAUSES:
        if any(needle in lowered for needle in needles):
            return words
    return "Kubernetes could not pull it"


def _image_named(failure, images):
    label = (images or {}).get(failure.image)
    if label:
        return f"Image '{label}' ({failure.image})"
    return f"The image {failure.image or '(none)'} of container '{failure.container}'"


def describe_pull_failure(failure, images=None):
    """The sentence shown to the user when the spawn is given up for an image.

    `images` maps image URLs to the display names of their Image resources.
    """
    detail = failure.detail.splitlines()[0] if failure.detail else ""
    if len(detail) > _DETAIL_LIMIT:
        detail = detail[: _DETAIL_LIMIT - 1] + "…"
    said = f"{failure.reason}: {detail}" if detail else failure.reason
    return (
        f"{_image_named(failure, images)} could not be pulled: {_why(failure)}. The server was not started; "
        f"please tell your administrator, or try again later. (kubelet reported {said})"
    )
