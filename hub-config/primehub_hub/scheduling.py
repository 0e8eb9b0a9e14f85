"""Reading the scheduler's verdict on a pod and saying it in words. Pure.

The scheduler marks an unschedulable pod with condition PodScheduled=False, reason
Unschedulable, and emits a FailedScheduling event, both with a message such as

    0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint
    {nvidia.com/gpu: present}. preemption: 0/2 nodes are available: ...

Some of these verdicts are final for this spawn (not enough CPU anywhere, no node matching the
selector); others resolve by themselves (a volume still being provisioned). Only final ones
fail a spawn early.
"""

import re
from dataclasses import dataclass, field

from .quotas import format_cpu, format_gpu, format_memory

_NODES = re.compile(r"\d+/\d+ nodes are available:\s*(?P<body>.*)", re.DOTALL)
_COUNTED = re.compile(r"^(?P<count>\d+)\s+(?P<text>.*)$")
_TRANSIENT = (
    "unbound immediate persistentvolumeclaims",
    "waiting for first consumer",
    "volume binding",
    "pvc is being deleted",
    "didn't find available persistent volumes",
)


@dataclass(frozen=True)
class Verdict:
    raw: str
    reasons: tuple = field(default_factory=tuple)
    final: bool = False


def _reason_text(text):
    lowered = text.lower()
    match = re.match(r"insufficient (\S+)", lowered)
    if match:
        resource = text.split()[1]
        if resource == "cpu":
            return "not enough free CPU", True
        if resource == "memory":
            return "not enough free memory", True
        if resource.endswith("/gpu") or resource == "gpu":
            return f"not enough free GPUs ({resource})", True
        return f"not enough free {resource}", True
    if (
        "didn't match pod's node affinity/selector" in lowered
        or "didn't match node selector" in lowered
        or "node affinity" in lowered
        and "volume" not in lowered
    ):
        return "no node matches the instance type's node selector", True
    if "untolerated taint" in lowered or "that the pod didn't tolerate" in lowered:
        taint = re.search(r"\{([^}]*)\}", text)
        detail = f" ({taint.group(1)})" if taint else ""
        return f"a node taint the instance type does not tolerate{detail}", True
    if "were unschedulable" in lowered or "node(s) were unschedulable" in lowered:
        return "nodes are cordoned", True
    if "too many pods" in lowered:
        return "nodes are full (too many pods)", True
    if any(t in lowered for t in _TRANSIENT):
        return "a volume is still being prepared", False
    if "volume node affinity conflict" in lowered:
        return "a volume is only reachable from other nodes", True
    return text.strip(), True


def read_verdict(message, own_claims=frozenset()):
    """Readable reasons from a scheduler message, and whether waiting longer would help.

    `own_claims` are the claims the spawner itself created just before the pod. The scheduler reads
    claims from its own watch, which can lag behind its watch of pods: a claim made a moment ago may
    be "not found" there once, then found. Only a claim nobody made (a misconfigured dataset) is final.
    """
    message = (message or "").strip()
    if not message:
        return Verdict(raw="", reasons=(), final=False)
    lowered = message.lower()
    missing_claim = re.search(r'persistentvolumeclaim "([^"]+)" not found', message)
    if missing_claim and missing_claim.group(1) in own_claims:
        return Verdict(raw=message, reasons=("a volume is still being prepared",), final=False)
    if missing_claim:
        return Verdict(
            raw=message,
            reasons=(f"volume claim '{missing_claim.group(1)}' does not exist (a dataset or volume is misconfigured)",),
            final=True,
        )
    if any(t in lowered for t in _TRANSIENT):
        return Verdict(raw=message, reasons=("a volume is still being prepared",), final=False)
    match = _NODES.search(message)
    if not match:
        return Verdict(raw=message, reasons=(message,), final=False)
    body = re.split(r"\.\s*preemption:", match.group("body"), maxsplit=1)[0].strip().rstrip(".")
    reasons = []
    final = False
    for part in re.split(r",\s*(?=\d+\s)", body):
        part = part.strip()
        if not part:
            continue
        counted = _COUNTED.match(part)
        count, text = (int(counted.group("count")), counted.group("text")) if counted else (None, part)
        reason, is_final = _reason_text(text)
        final = final or is_final
        suffix = f" ({count} node{'s' if count != 1 else ''})" if count is not None else ""
        reasons.append(reason + suffix)
    return Verdict(raw=message, reasons=tuple(reasons), final=final and bool(reasons))


def pod_unschedulable_message(pod):
    """The scheduler's message when the pod is marked Unschedulable, else None."""
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return condition.get("message") or "Unschedulable"
    return None


def pod_is_scheduled(pod):
    if ((pod or {}).get("spec") or {}).get("nodeName"):
        return True
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            return True
    return False


def failed_scheduling_message(events):
    """The latest FailedScheduling event message among a pod's events, else None."""
    message = None
    for event in events or []:
        if event.get("reason") == "FailedScheduling":
            message = event.get("message") or message
    return message


def scale_up_triggered(events):
    """True when a cluster autoscaler announced a node for this pod: worth waiting for."""
    return any(event.get("reason") == "TriggeredScaleUp" for event in events or [])


def describe(verdict, instance_type=None):
    """The sentence shown to the user when the spawn is given up."""
    reasons = "; ".join(verdict.reasons) or verdict.raw or "the scheduler gave no reason"
    text = f"No node can run this server: {reasons}."
    if instance_type is not None:
        wants = [format_cpu(instance_type.cpu_limit), f"{format_memory(instance_type.memory_limit)} memory"]
        if instance_type.gpu_limit:
            wants.append(format_gpu(instance_type.gpu_limit))
        text += f" Instance type '{instance_type.label}' asks for {', '.join(wants)}."
    text += " Try a smaller instance type, or try again later."
    return text
