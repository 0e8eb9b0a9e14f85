"""The mount failure rule (mounts.py): which of kubelet's FailedMount events end a spawn, and the
sentence the user reads. Messages are written as kubelet 1.34 writes them
(pkg/volume/util/operationexecutor: `<operation> failed for volume "<name>" : <error>`)."""

import pytest

from hub_scenario import catalog, user
from primehub_hub.mounts import (
    VolumeOrigin,
    describe_mount_failure,
    mount_failure,
    read_mount_failure,
    repeated_for,
    volume_origins,
)
from primehub_hub.plan import plan_launch

ORIGINS = {
    "dataset-raw": VolumeOrigin("Dataset 'Raw images'", "hostPath"),
    "dataset-archive": VolumeOrigin("Dataset 'Archive'", "nfs"),
    "dataset-notebooks": VolumeOrigin("Dataset 'Notebooks'", "git"),
    "project-ml-team": VolumeOrigin("The project volume of group 'ml-team'", "pvc"),
    "home": VolumeOrigin("Your home folder", "pvc"),
}

HOSTPATH_MISSING = 'MountVolume.SetUp failed for volume "dataset-raw" : hostPath type check failed: /srv/datasets/raw is not a directory'
NFS_TIMED_OUT = (
    'MountVolume.SetUp failed for volume "dataset-archive" : mount failed: exit status 32\n'
    "Mounting command: mount\n"
    "Mounting arguments: -t nfs -o ro nfs.example.com:/exports/archive "
    "/var/lib/kubelet/pods/6f1c2d4e-0000-4000-8000-000000000001/volumes/kubernetes.io~nfs/dataset-archive\n"
    "Output: mount.nfs: Connection timed out\n"
)
NFS_DENIED = (
    'MountVolume.SetUp failed for volume "dataset-archive" : mount failed: exit status 32\n'
    "Mounting command: mount\n"
    "Mounting arguments: -t nfs nfs.example.com:/exports/archive "
    "/var/lib/kubelet/pods/6f1c2d4e-0000-4000-8000-000000000001/volumes/kubernetes.io~nfs/dataset-archive\n"
    "Output: mount.nfs: access denied by server while mounting nfs.example.com:/exports/archive\n"
)
CONFIGMAP_MISSING = (
    'MountVolume.SetUp failed for volume "primehub-start-scripts" : configmap "hub-start-scripts" not found'
)
GIT_FOLDER_NOT_YET = (
    'MountVolume.SetUp failed for volume "dataset-notebooks" : hostPath type check failed: '
    "/home/dataset/notebooks is not a directory"
)
# kubelet's cache of the namespace's ConfigMaps is not filled yet right after the pod is created
NOT_REGISTERED_YET = (
    'MountVolume.SetUp failed for volume "kube-api-access-7x2kq" : object "primehub"/"kube-root-ca.crt" not registered'
)
KUBELET_GAVE_UP = (
    "Unable to attach or mount volumes: unmounted volumes=[dataset-archive], unattached volumes=[dataset-archive "
    "home kube-api-access-7x2kq], failed to process volumes=[]: context deadline exceeded"
)


def event(message, reason="FailedMount", count=1, first="2026-12-02T04:00:00Z", last=None):
    return {
        "type": "Warning",
        "reason": reason,
        "message": message,
        "count": count,
        "firstTimestamp": first,
        "lastTimestamp": last or first,
        "eventTime": None,
        "source": {"component": "kubelet", "host": "cpu-node"},
        "involvedObject": {"kind": "Pod", "name": "jupyter-ana"},
        "metadata": {"uid": f"e-{count}"},
    }


@pytest.mark.parametrize(
    "message, volume",
    [(HOSTPATH_MISSING, "dataset-raw"), (NFS_TIMED_OUT, "dataset-archive"), (NFS_DENIED, "dataset-archive")],
)
def test_a_missing_node_folder_or_a_failed_nfs_mount_is_final_at_the_first_report(message, volume):
    failure = mount_failure([event(message)], ORIGINS)
    assert failure is not None and failure.final and failure.volume == volume


@pytest.mark.parametrize("message", [CONFIGMAP_MISSING, GIT_FOLDER_NOT_YET, NOT_REGISTERED_YET, KUBELET_GAVE_UP])
def test_failures_that_often_resolve_by_themselves_are_waited_for(message):
    assert mount_failure([event(message)], ORIGINS, grace=20) is None
    # kubelet retried for 8 s and then stopped reporting it: it resolved, the spawn goes on
    assert mount_failure([event(message, count=4, last="2026-12-02T04:00:08Z")], ORIGINS, grace=20) is None


@pytest.mark.parametrize("message", [CONFIGMAP_MISSING, GIT_FOLDER_NOT_YET])
def test_the_same_failure_reported_again_over_the_grace_period_ends_the_spawn(message):
    repeated = event(message, count=6, last="2026-12-02T04:00:31Z")
    assert repeated_for(repeated) == 31
    failure = mount_failure([repeated], ORIGINS, grace=20)
    assert failure is not None and not failure.final
    assert mount_failure([repeated], ORIGINS, grace=60) is None


def test_the_events_series_of_the_newer_events_api_counts_too():
    newer = {
        "reason": "FailedMount",
        "message": CONFIGMAP_MISSING,
        "eventTime": "2026-12-02T04:00:00.000000Z",
        "series": {"count": 5, "lastObservedTime": "2026-12-02T04:00:40.500000Z"},
    }
    assert repeated_for(newer) == 40.5
    assert mount_failure([newer], ORIGINS, grace=20) is not None


def test_other_events_are_no_mount_failures():
    assert read_mount_failure({"reason": "FailedScheduling", "message": "0/2 nodes are available"}) is None
    assert read_mount_failure({"reason": "Pulling", "message": 'Pulling image "lab"'}) is None
    assert mount_failure([], ORIGINS) is None


def test_a_missing_host_folder_names_the_dataset_and_the_folder():
    text = describe_mount_failure(mount_failure([event(HOSTPATH_MISSING)], ORIGINS), ORIGINS)
    assert text.startswith("Dataset 'Raw images' could not be mounted: its folder /srv/datasets/raw does not exist")
    assert "tell your administrator" in text


def test_an_nfs_server_that_does_not_answer_is_said_in_words():
    text = describe_mount_failure(mount_failure([event(NFS_TIMED_OUT)], ORIGINS), ORIGINS)
    assert text.startswith("Dataset 'Archive' could not be mounted: its storage server did not answer.")
    assert "/var/lib/kubelet" not in text  # the node's paths are for administrators, not in the sentence
    denied = describe_mount_failure(mount_failure([event(NFS_DENIED)], ORIGINS), ORIGINS)
    assert "the node could not mount it (mount.nfs: access denied by server" in denied


def test_the_volume_kubelet_gave_up_on_is_named_from_the_unmounted_list():
    failure = mount_failure([event(KUBELET_GAVE_UP, count=2, last="2026-12-02T04:02:03Z")], ORIGINS, grace=20)
    assert failure.volume == "dataset-archive"
    assert describe_mount_failure(failure, ORIGINS).startswith("Dataset 'Archive' could not be mounted")


def test_a_volume_the_hub_does_not_know_is_named_as_kubelet_names_it():
    message = 'MountVolume.SetUp failed for volume "pvc-0b5e" : mount failed: exit status 32\nOutput: mount error(13)'
    text = describe_mount_failure(mount_failure([event(message)], ORIGINS), ORIGINS)
    assert text.startswith("Volume 'pvc-0b5e' could not be mounted")


def test_of_several_failures_the_latest_final_one_is_told():
    events = [event(CONFIGMAP_MISSING), event(HOSTPATH_MISSING)]
    assert mount_failure(events, ORIGINS).volume == "dataset-raw"


def test_an_attach_failure_is_read_like_a_mount_failure():
    message = 'AttachVolume.Attach failed for volume "pvc-0b5e" : rpc error: code = Internal desc = disk busy'
    failure = read_mount_failure(event(message, reason="FailedAttachVolume"))
    assert failure.volume == "pvc-0b5e" and not failure.final


def test_no_such_file_is_final_for_a_node_folder_only():
    message = 'MountVolume.SetUp failed for volume "{}" : lstat /srv/datasets/raw: no such file or directory'
    failure = mount_failure([event(message.format("dataset-raw"))], ORIGINS)
    assert failure.final
    assert "its folder /srv/datasets/raw does not exist" in describe_mount_failure(failure, ORIGINS)
    assert mount_failure([event(message.format("project-ml-team"))], ORIGINS) is None


def test_the_volumes_of_a_launch_are_named_by_what_they_are_to_the_user():
    plan = plan_launch(
        user("ana"),
        catalog(),
        {"group": "vision", "instance_type": "gpu-one", "image": "torch"},
        strict=True,
        host_path_prefixes=["/data/"],
    )
    home = {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
    scratch = {"name": "scratch", "emptyDir": {}}
    origins = volume_origins(plan, [home, scratch], home_claims=("{pvc_name}", "claim-ana"))
    assert origins["home"] == VolumeOrigin("Your home folder", "pvc")
    assert origins["dataset-reports"] == VolumeOrigin("Dataset 'reports'", "hostPath")
    assert origins["dataset-notebooks"].kind == "git"
    assert origins["project-vision"] == VolumeOrigin("The project volume of group 'vision'", "pvc")
    assert "scratch" not in origins
