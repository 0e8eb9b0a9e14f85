"""The image pull failure rule (pulls.py): which container statuses end a spawn, with which of
kubelet's words, and the sentence the user reads (pods and events as the API returns them, with
kubelet's and containerd's own messages); then the spawn it ends (PrimeHubSpawner, _mock=True)."""

import asyncio

import pytest

from hub_scenario import NAMESPACE, PodRemovingApi, planned_spawner, reflectors
from primehub_hub import spawn_scheduling
from primehub_hub.errors import ImagePullFailed
from primehub_hub.pulls import describe_pull_failure, pull_failure_grace, read_pull_failure

IMAGE = "registry.invalid/nope:1"
IMAGES = {IMAGE: "Nope notebook"}

NO_SUCH_HOST = (
    f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": failed to do request: '
    'Head "https://registry.invalid/v2/nope/manifests/1": dial tcp: lookup registry.invalid on 172.18.0.1:53: '
    "no such host"
)
NOT_FOUND = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/jupyter/base-notebook:2025-13-01": '
    'failed to resolve reference "quay.io/jupyter/base-notebook:2025-13-01": '
    "quay.io/jupyter/base-notebook:2025-13-01: not found"
)
UNAUTHORIZED = (
    'failed to pull and unpack image "registry.example.com/data-science/notebook:1.4.2": failed to resolve reference '
    '"registry.example.com/data-science/notebook:1.4.2": failed to authorize: failed to fetch oauth token: '
    "unexpected status from GET request to https://registry.example.com/token: 401 Unauthorized"
)
TIMED_OUT = (
    'failed to pull and unpack image "10.0.0.5:5000/team/lab:2": failed to resolve reference "10.0.0.5:5000/team/lab:2": '
    'failed to do request: Head "https://10.0.0.5:5000/v2/team/lab/manifests/2": dial tcp 10.0.0.5:5000: i/o timeout'
)
RATE_LIMITED = (
    'failed to pull and unpack image "docker.io/library/python:3": failed to copy: httpReadSeeker: failed open: '
    "unexpected status code https://registry-1.docker.io/v2/library/python/manifests/sha256:1: 429 Too Many Requests - "
    "Server message: toomanyrequests: You have reached your pull rate limit."
)
BAD_NAME = "Registry.example.com/Team/Lab:1"
BAD_NAME_MESSAGE = (
    f'Failed to apply default image tag "{BAD_NAME}": couldn\'t parse image name "{BAD_NAME}": '
    "invalid reference format: repository name must be lowercase"
)


def pod(reason=None, message="", image=IMAGE, name="notebook", init=None, phase="Pending"):
    """A placed pod whose container waits with `reason` (None: no status yet); `init` an init container's."""
    spec = {"nodeName": "kind-worker", "containers": [{"name": name, "image": image}]}
    status = {"phase": phase, "conditions": [{"type": "PodScheduled", "status": "True"}]}
    if reason is not None:
        waiting = {"reason": reason, "message": message} if message else {"reason": reason}
        status["containerStatuses"] = [{"name": name, "image": image, "ready": False, "state": {"waiting": waiting}}]
    if init is not None:
        init_name, init_image, init_reason = init
        spec["initContainers"] = [{"name": init_name, "image": init_image}]
        status["initContainerStatuses"] = [
            {"name": init_name, "image": init_image, "state": {"waiting": {"reason": init_reason}}}
        ]
    return {"metadata": {"name": "jupyter-ana", "uid": "pod-uid-1"}, "spec": spec, "status": status}


def event(message, reason="Failed", container="notebook", kind="Warning"):
    return {
        "reason": reason,
        "type": kind,
        "message": message,
        "involvedObject": {"kind": "Pod", "name": "jupyter-ana", "fieldPath": f"spec.containers{{{container}}}"},
    }


def kubelets_pull_events(image=IMAGE, cause=NO_SUCH_HOST):
    """What kubelet reports about a pull that fails, then waits to try again, in its order."""
    return [
        event(f'Pulling image "{image}"', reason="Pulling", kind="Normal"),
        event(f'Failed to pull image "{image}": {cause}'),
        event("Error: ErrImagePull"),
        event(f'Back-off pulling image "{image}"', reason="BackOff", kind="Normal"),
        event("Error: ImagePullBackOff"),
    ]


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_a_container_waiting_on_a_failed_pull_fails_the_spawn_after_the_grace(reason):
    failure = read_pull_failure(pod(reason), kubelets_pull_events())
    assert (failure.container, failure.image, failure.reason) == ("notebook", IMAGE, reason)
    assert not failure.final and pull_failure_grace(failure, 30) == 30.0
    assert failure.detail == NO_SUCH_HOST


@pytest.mark.parametrize(
    "reason,image,message",
    [
        ("InvalidImageName", BAD_NAME, BAD_NAME_MESSAGE),
        ("ErrImageNeverPull", IMAGE, f'Container image "{IMAGE}" is not present with pull policy of Never'),
    ],
)
def test_a_pull_that_trying_again_cannot_fix_fails_at_once(reason, image, message):
    failure = read_pull_failure(pod(reason, image=image, message=message))
    assert failure.final and pull_failure_grace(failure, 30) == 0.0


@pytest.mark.parametrize(
    "reason,phase",
    [
        (None, "Pending"),
        ("ContainerCreating", "Pending"),
        ("PodInitializing", "Pending"),
        ("CrashLoopBackOff", "Running"),
    ],
)
def test_a_pod_pulling_creating_or_running_its_containers_has_no_pull_failure(reason, phase):
    # a slow pull of a large image is ContainerCreating: it is waited for, as long as the start timeout allows
    assert read_pull_failure(pod(reason, phase=phase), kubelets_pull_events()) is None


def test_a_pull_that_succeeded_after_failing_is_no_failure_though_its_events_remain():
    running = pod(phase="Running")
    running["status"]["containerStatuses"] = [{"name": "notebook", "image": IMAGE, "state": {"running": {}}}]
    assert read_pull_failure(running, kubelets_pull_events()) is None


def test_the_cause_is_read_from_the_back_off_message_of_kubernetes_1_32():
    waiting = f'Back-off pulling image "{IMAGE}": ErrImagePull: {NO_SUCH_HOST}'
    assert read_pull_failure(pod("ImagePullBackOff", message=waiting)).detail == NO_SUCH_HOST
    # before 1.32 the back-off says nothing of the cause, and the events are gone (or not read yet)
    assert read_pull_failure(pod("ImagePullBackOff", message=f'Back-off pulling image "{IMAGE}"')).detail == ""
    assert read_pull_failure(pod("ErrImagePull", message=NO_SUCH_HOST)).detail == NO_SUCH_HOST


def test_the_latest_failed_pull_event_of_the_image_is_the_cause_and_other_images_events_are_not():
    events = [
        event(f'Failed to pull image "{IMAGE}": {TIMED_OUT}'),
        event(f'Failed to pull image "{IMAGE}": {NO_SUCH_HOST}'),
        event("Error: ErrImagePull"),
        event(f'Failed to pull image "other/sidecar:1": {UNAUTHORIZED}', container="sidecar"),
    ]
    assert read_pull_failure(pod("ImagePullBackOff"), events).detail == NO_SUCH_HOST


def test_an_init_container_failing_its_pull_is_named_by_its_image():
    failing = pod("PodInitializing", init=("fetch-config", "tools.example.com/fetch:2", "ErrImagePull"))
    failure = read_pull_failure(failing, [event(f'Failed to pull image "tools.example.com/fetch:2": {TIMED_OUT}')])
    assert (failure.container, failure.image) == ("fetch-config", "tools.example.com/fetch:2")
    text = describe_pull_failure(failure, IMAGES)
    assert text.startswith("The image tools.example.com/fetch:2 of container 'fetch-config' could not be pulled")


def test_a_final_reason_is_told_before_one_kubelet_retries():
    failing = pod(
        "InvalidImageName", image=BAD_NAME, init=("fetch-config", "tools.example.com/fetch:2", "ErrImagePull")
    )
    failure = read_pull_failure(failing)
    assert failure.reason == "InvalidImageName" and failure.final


@pytest.mark.parametrize(
    "cause,words",
    [
        (NO_SUCH_HOST, "the registry's address could not be found"),
        (NOT_FOUND, "the registry has no such image or tag"),
        (UNAUTHORIZED, "the registry refused access (the image's pull secret is missing or wrong"),
        (TIMED_OUT, "the registry did not answer"),
        (RATE_LIMITED, "the registry is limiting pulls (too many requests)"),
        ("something kubelet never said before", "Kubernetes could not pull it"),
    ],
)
def test_the_user_reads_the_image_its_address_the_cause_in_words_and_kubelets_reason(cause, words):
    failure = read_pull_failure(pod("ImagePullBackOff"), kubelets_pull_events(cause=cause))
    text = describe_pull_failure(failure, IMAGES)
    assert text.startswith(f"Image 'Nope notebook' ({IMAGE}) could not be pulled: {words}")
    assert "The server was not started; please tell your administrator" in text
    assert "(kubelet reported ImagePullBackOff: " in text
    assert cause[:60] in text


def test_an_invalid_image_name_is_said_with_kubelets_own_reason():
    failure = read_pull_failure(pod("InvalidImageName", image=BAD_NAME, message=BAD_NAME_MESSAGE))
    text = describe_pull_failure(failure, {BAD_NAME: "Team lab"})
    assert text.startswith(f"Image 'Team lab' ({BAD_NAME}) could not be pulled: its address is not a valid image name.")
    assert "(kubelet reported InvalidImageName: couldn't parse image name" in text
    assert "repository name must be lowercase" in text


def test_kubelets_words_are_kept_short_and_to_one_line():
    long_cause = NO_SUCH_HOST + " " + "x" * 1000 + "\nsecond line"
    failure = read_pull_failure(pod("ErrImagePull", message=long_cause))
    text = describe_pull_failure(failure, IMAGES)
    assert "second line" not in text and len(text) < 600 and text.endswith("…)")
    assert describe_pull_failure(read_pull_failure(pod("ImagePullBackOff")), IMAGES).endswith(
        "(kubelet reported ImagePullBackOff)"
    )


# --- the spawn: PrimeHubSpawner's watch of the pending pod (spawn_scheduling.py) --------------------------

TORCH = "example/torch:cuda"


def placed_pod(reason=None, image=TORCH, uid="pod-uid-1"):
    """ana's pod on a node, its notebook container waiting with `reason` (None: running)."""
    placed = pod(reason, image=image, phase="Pending" if reason else "Running")
    placed["metadata"] = {"name": "jupyter-ana", "namespace": NAMESPACE, "uid": uid}
    if reason is None:
        placed["status"]["containerStatuses"] = [{"name": "notebook", "image": image, "state": {"running": {}}}]
    return placed


def pull_events(cause=NO_SUCH_HOST, image=TORCH, uid="pod-uid-1"):
    """kubelet's events of a failed pull, keyed as the event reflector keeps them."""
    found = {}
    for i, e in enumerate(kubelets_pull_events(image=image, cause=cause)):
        e["involvedObject"]["uid"] = uid
        e.update(metadata={"uid": f"e{i}"}, lastTimestamp=f"2026-12-02T04:00:0{i}Z", eventTime=None)
        found[f"{NAMESPACE}/jupyter-ana.e{i}"] = e
    return found


class Clock:
    """The clock the watch counts a grace by, moved by the test (asyncio keeps its own)."""

    def __init__(self, monkeypatch):
        self.now = 1000.0
        monkeypatch.setattr(spawn_scheduling, "_clock", lambda: self.now)


def watched_looks(spawner, reader="_pull_failure"):
    """An asyncio.Event set each time the watch has read the pod's pull status (a read is synchronous:
    one that sets it after the test cleared it saw everything the test changed before)."""
    looked = asyncio.Event()
    read = getattr(spawner, reader)

    def reading():
        found = read()
        looked.set()
        return found

    setattr(spawner, reader, reading)
    return looked


async def next_look(looked):
    looked.clear()
    # the outer bound only keeps a regression from hanging the suite
    await asyncio.wait_for(looked.wait(), 10)


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_a_pull_failing_for_the_grace_ends_the_spawn_naming_the_image(monkeypatch):
    clock = Clock(monkeypatch)
    pods = {f"{NAMESPACE}/jupyter-ana": placed_pod("ErrImagePull")}
    with reflectors(monkeypatch, pods=pods, events=pull_events()):
        spawner = await planned_spawner(image_pull_failure_grace=30)
        looked = watched_looks(spawner)
        watch = asyncio.ensure_future(spawner._watch_scheduling())
        await next_look(looked)
        pods[f"{NAMESPACE}/jupyter-ana"] = placed_pod("ImagePullBackOff")  # kubelet waits to try again
        clock.now += 29
        await next_look(looked)
        assert not watch.done(), "the spawn waits out the grace"
        clock.now += 1
        failure = await asyncio.wait_for(watch, 10)
    assert isinstance(failure, ImagePullFailed) and failure.status_code == 503
    assert str(failure).startswith(
        f"Image 'Torch' ({TORCH}) could not be pulled: the registry's address could not be found."
    )
    assert f"(kubelet reported ImagePullBackOff: {NO_SUCH_HOST[:40]}" in str(failure)


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_a_pull_that_recovers_within_the_grace_does_not_fail_and_a_new_failure_counts_anew(monkeypatch):
    clock = Clock(monkeypatch)
    key = f"{NAMESPACE}/jupyter-ana"
    pods = {key: placed_pod("ErrImagePull")}
    with reflectors(monkeypatch, pods=pods, events=pull_events()):
        spawner = await planned_spawner(image_pull_failure_grace=30)
        looked = watched_looks(spawner)
        watch = asyncio.ensure_future(spawner._watch_scheduling())
        try:
            await next_look(looked)
            clock.now += 20
            pods[key] = placed_pod("ContainerCreating")  # kubelet's next try pulled the image
            await next_look(looked)
            clock.now += 5
            pods[key] = placed_pod("ErrImagePull")  # a later failure (the image's events stay, too)
            await next_look(looked)
            clock.now += 29  # 54 s since the first failure, 29 s into this one
            await next_look(looked)
            assert not watch.done(), "the grace counts anew from the failure after a recovery"
            pods[key] = placed_pod(None)
            clock.now += 60
            await next_look(looked)
            assert not watch.done(), "a pod whose pull recovered is left to start"
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_a_pulls_grace_counts_from_the_failed_pull_not_from_an_unschedulable_verdict_before_it(monkeypatch):
    clock = Clock(monkeypatch)
    key = f"{NAMESPACE}/jupyter-ana"
    waiting = placed_pod("ErrImagePull")
    waiting["spec"].pop("nodeName")
    waiting["status"].pop("containerStatuses")
    waiting["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu.",
        }
    ]
    pods = {key: waiting}
    with reflectors(monkeypatch, pods=pods, events=pull_events()):
        # an autoscaler's cluster: the unschedulable verdict is waited for
        spawner = await planned_spawner(image_pull_failure_grace=30, scheduling_failure_grace=600)
        scheduled = watched_looks(spawner, "_scheduling_failure")
        looked = watched_looks(spawner)
        watch = asyncio.ensure_future(spawner._watch_scheduling())
        await next_look(scheduled)
        clock.now += 50
        pods[key] = placed_pod("ErrImagePull")  # a new node came, the pull failed there
        await next_look(looked)
        assert not watch.done(), "the 50 s unschedulable are not counted into the pull's grace"
        clock.now += 30
        failure = await asyncio.wait_for(watch, 10)
    assert isinstance(failure, ImagePullFailed)


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_an_image_address_that_is_no_image_name_fails_at_once(monkeypatch):
    Clock(monkeypatch)  # never moved: no grace is waited for
    pods = {f"{NAMESPACE}/jupyter-ana": placed_pod("InvalidImageName")}
    pods[f"{NAMESPACE}/jupyter-ana"]["status"]["containerStatuses"][0]["state"]["waiting"]["message"] = (
        f'Failed to apply default image tag "{TORCH}": couldn\'t parse image name "{TORCH}": invalid reference format'
    )
    with reflectors(monkeypatch, pods=pods):
        spawner = await planned_spawner(image_pull_failure_grace=3600)
        failure = await asyncio.wait_for(spawner._watch_scheduling(), 10)
    assert str(failure).startswith(
        f"Image 'Torch' ({TORCH}) could not be pulled: its address is not a valid image name"
    )


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_pull_failures_of_an_earlier_pod_of_the_same_name_are_not_the_cause(monkeypatch):
    Clock(monkeypatch)
    pods = {f"{NAMESPACE}/jupyter-ana": placed_pod("ImagePullBackOff", uid="pod-uid-2")}
    with reflectors(monkeypatch, pods=pods, events=pull_events(cause=UNAUTHORIZED, uid="pod-uid-1")):
        spawner = await planned_spawner(image_pull_failure_grace=0)
        failure = await asyncio.wait_for(spawner._watch_scheduling(), 10)
    assert "refused access" not in str(failure) and str(failure).endswith("(kubelet reported ImagePullBackOff)")


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_a_failed_pull_removes_the_pod_keeps_the_home_volume_and_the_start_page_shows_kubelets_event(
    monkeypatch,
):
    with reflectors(monkeypatch, pods={}) as (pods, events):
        spawner = await planned_spawner(
            storage_pvc_ensure=True, pvc_name_template="claim-{username}", image_pull_failure_grace=0
        )
        spawner._pod_created = False

        api = spawner.api = PodRemovingApi(pods)
        api.pvcs["claim-ana"] = object()

        async def kube_start():
            # KubeSpawner's _start: the launch is applied, the pod created and placed, then kubelet
            # cannot pull its image
            await spawner.load_user_options()
            api.pods["jupyter-ana"] = placed_pod("ErrImagePull")
            pods.resources[f"{NAMESPACE}/jupyter-ana"] = placed_pod("ErrImagePull")
            spawner._pod_created = True
            events.resources.update(pull_events(cause=UNAUTHORIZED))
            await asyncio.sleep(3600)

        monkeypatch.setattr(spawner, "_start", kube_start)
        with pytest.raises(ImagePullFailed, match=r"Image 'Torch' \(example/torch:cuda\) could not be pulled") as info:
            await asyncio.wait_for(spawner.start(), 10)
        progress = [e["message"] async for e in spawner.progress()]
    assert "the registry refused access" in info.value.jupyterhub_message
    assert api.deleted == ["jupyter-ana"] and api.pods == {}
    assert list(api.pvcs) == ["claim-ana"]
    assert any(f'[Warning] Failed to pull image "{TORCH}": ' in m and "401 Unauthorized" in m for m in progress), (
        progress
    )
