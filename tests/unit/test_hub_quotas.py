"""docs/behaviour.md "Quotas": attributes, units, usage from pods, and the messages."""

import asyncio

import pytest

from primehub_hub.quotas import (
    ZERO,
    Amount,
    GiB,
    MiB,
    QuotaLocks,
    format_memory,
    k8s_memory_quantity,
    parse_cpu,
    parse_k8s_memory,
    parse_memory,
    parse_quota,
    quota_problems,
    usage_by_group,
    usage_from_pods,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8G", 8 * GiB),
        ("8Gi", 8 * GiB),
        ("512M", 512 * MiB),
        ("512Mi", 512 * MiB),
        ("1.5G", int(1.5 * GiB)),
        ("1073741824", GiB),
        (1073741824, GiB),
        ("2g", 2 * GiB),
        ("1T", 1024 * GiB),
    ],
)
def test_memory_units_follow_primehub_g_is_gib(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "", "-1G", "8 GB!", None, True])
def test_bad_memory_is_refused(text):
    with pytest.raises(ValueError):
        parse_memory(text)


def test_kubernetes_quantities_read_back_from_pods_use_kubernetes_units():
    assert parse_k8s_memory("1Gi") == GiB
    assert parse_k8s_memory("1G") == 10**9
    assert parse_k8s_memory(17179869184) == 16 * GiB
    assert parse_k8s_memory("17179869184") == 16 * GiB
    assert parse_cpu("500m") == 0.5
    assert parse_cpu("2") == 2.0


def test_missing_quota_is_unlimited_and_zero_is_none():
    assert parse_quota({}).unlimited
    quota = parse_quota({"quota-cpu": "0", "quota-gpu": "0", "quota-memory": "8G"})
    assert (quota.cpu, quota.gpu, quota.memory) == (0.0, 0, 8 * GiB)
    assert quota_problems(Amount(cpu=0.5), quota, whose="q", what="w") != []
    assert quota_problems(Amount(cpu=0.5, memory=GiB), parse_quota({}), whose="q", what="w") == []


def test_project_quota_uses_its_own_attributes():
    attributes = {"quota-cpu": "2", "project-quota-cpu": "10", "project-quota-gpu": ""}
    assert parse_quota(attributes, "project-quota-").cpu == 10.0
    assert parse_quota(attributes, "project-quota-").gpu is None


def test_malformed_quota_fails_closed_and_says_which_attribute():
    quota = parse_quota({"quota-gpu": "two"})
    assert quota.gpu == 0
    problems = quota_problems(Amount(gpu=0), quota, whose="your quota in group 'g'", what="x")
    assert problems == ["your quota in group 'g': group attribute quota-gpu='two' is not valid"]


def test_the_message_names_resource_quota_and_request():
    quota = parse_quota({"quota-cpu": "4", "quota-memory": "8G"})
    problems = quota_problems(
        Amount(cpu=2, memory=4 * GiB),
        quota,
        Amount(cpu=3),
        whose="your quota in group 'ML'",
        what="instance type 'Big'",
    )
    assert problems == [
        "not enough CPU quota: instance type 'Big' needs 2 CPU, 3 CPU already in use, and your quota in group 'ML' is 4 CPU"
    ]


def pod(name, group, user, phase="Running", cpu="1", memory="1Gi", gpu=None):
    limits = {"cpu": cpu, "memory": memory}
    if gpu:
        limits["nvidia.com/gpu"] = str(gpu)
    return {
        "metadata": {"name": name, "labels": {"primehub.io/group": group, "primehub.io/user": user}},
        "spec": {"containers": [{"name": "notebook", "resources": {"limits": limits}}, {"name": "sidecar"}]},
        "status": {"phase": phase},
    }


def test_usage_sums_limits_of_pending_and_running_pods_of_the_group():
    pods = [
        pod("a", "g", "ana", cpu="500m", memory="1Gi", gpu=1),
        pod("b", "g", "bob", phase="Pending", cpu=2, memory=2147483648),
        pod("c", "g", "ana", phase="Succeeded"),
        pod("d", "g", "ana", phase="Failed"),
        pod("e", "other", "ana"),
        pod("jupyter-ana", "g", "ana", cpu="4"),
    ]
    user_usage, group_usage = usage_from_pods(pods, "g", "ana", exclude_pod="jupyter-ana")
    assert user_usage == Amount(cpu=0.5, gpu=1, memory=GiB)
    assert group_usage == Amount(cpu=2.5, gpu=1, memory=3 * GiB)
    assert usage_from_pods([], "g", "ana") == (ZERO, ZERO)


def test_usage_of_many_groups_in_one_pass_counts_the_same():
    pods = [
        pod("a", "g", "ana", cpu="500m", gpu=1),
        pod("b", "h", "bob", phase="Pending", cpu=2),
        pod("c", "h", "ana", phase="Succeeded"),
        pod("d", "other", "ana"),
        pod("jupyter-ana", "g", "ana", cpu="4"),
    ]
    together = usage_by_group(pods, ["g", "h", "empty"], "ana", exclude_pod="jupyter-ana")
    for label in ("g", "h", "empty"):
        assert together[label] == usage_from_pods(pods, label, "ana", exclude_pod="jupyter-ana")
    assert set(together) == {"g", "h", "empty"}


def test_formats():
    assert format_memory(8 * GiB) == "8 GiB"
    assert format_memory(None) == "unlimited"
    assert k8s_memory_quantity(10 * GiB) == "10Gi"
    assert k8s_memory_quantity(1000) == "1000"


@pytest.mark.asyncio
async def test_quota_locks_are_one_per_group_and_serialize():
    locks = QuotaLocks()
    assert locks.lock_for("ns", "g") is locks.lock_for("ns", "g")
    assert locks.lock_for("ns", "g") is not locks.lock_for("ns", "h")
    order = []

    async def hold(tag):
        async with locks.lock_for("ns", "g"):
            order.append(f"{tag}-in")
            await asyncio.sleep(0.01)
            order.append(f"{tag}-out")

    await asyncio.gather(hold("a"), hold("b"))
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])


def test_usage_counts_declared_gpu_resources_too():
    mig = pod("m", "g", "ana", cpu="1")
    mig["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.5gb"] = "2"
    assert usage_from_pods([mig], "g", "ana")[1].gpu == 0  # the naming rule alone misses it
    assert usage_from_pods([mig], "g", "ana", gpu_resources={"nvidia.com/mig-1g.5gb"})[1].gpu == 2


def test_a_project_volume_of_the_previous_release_still_belongs_to_its_group():
    # Its volumes carry the plain slug as group label and no owner annotation; PrimeHub's carry the
    # escaped form. Both name the group; another group's label does not.
    from primehub_hub.quotas import label_value, labelled_for

    assert labelled_for("data-science", "data-science")
    assert labelled_for(label_value("data-science"), "data-science")
    assert not labelled_for("ml-team", "data-science")
