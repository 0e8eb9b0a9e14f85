"""The scheduler's verdict in words, and the options form model and HTML."""

import re

import pytest

from hub_scenario import catalog, user
from primehub_hub.entitlements import EVERYONE, Group, UserInfo
from primehub_hub.errors import NoLaunchGroup
from primehub_hub.form import build_form, form_options, render_form
from primehub_hub.quotas import Amount
from primehub_hub.scheduling import (
    describe,
    failed_scheduling_message,
    pod_is_scheduled,
    pod_unschedulable_message,
    read_verdict,
    scale_up_triggered,
)

# --- scheduling ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, words",
    [
        (
            "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
            ["not enough free GPUs (nvidia.com/gpu) (2 nodes)"],
        ),
        (
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {nvidia.com/gpu: present}.",
            [
                "not enough free CPU (1 node)",
                "taint the instance type does not tolerate (nvidia.com/gpu: present) (1 node)",
            ],
        ),
        (
            "0/2 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector.",
            ["not enough free memory", "no node matches the instance type's node selector"],
        ),
        ("0/3 nodes are available: 3 node(s) had taint {dedicated: x}, that the pod didn't tolerate.", ["taint"]),
    ],
)
def test_final_verdicts_in_words(message, words):
    verdict = read_verdict(message)
    assert verdict.final
    text = "; ".join(verdict.reasons)
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    "message",
    [
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: not eligible",
        "running PreBind plugin VolumeBinding: binding volumes: timed out waiting for the condition",
        "",
    ],
)
def test_verdicts_that_resolve_by_themselves_are_not_final(message):
    assert not read_verdict(message).final


def test_missing_claim_is_final_and_named():
    verdict = read_verdict('persistentvolumeclaim "dataset-team-data" not found')
    assert verdict.final and "dataset-team-data" in verdict.reasons[0]


def test_a_claim_the_spawner_just_made_is_not_final_when_the_scheduler_has_not_seen_it_yet():
    # The scheduler's claim watch can lag behind its pod watch: a home volume created a moment before
    # the pod is "not found" once, then found. Failing the spawn on that was a flaky test's cause.
    message = 'persistentvolumeclaim "claim-bob" not found'
    assert not read_verdict(message, own_claims=frozenset({"claim-bob"})).final
    assert read_verdict(message, own_claims=frozenset({"claim-alice"})).final


def test_pod_condition_and_events():
    pod = {
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m"}]
        }
    }
    assert pod_unschedulable_message(pod) == "m" and not pod_is_scheduled(pod)
    assert pod_is_scheduled({"spec": {"nodeName": "n"}})
    events = [
        {"reason": "Scheduled"},
        {"reason": "FailedScheduling", "message": "a"},
        {"reason": "FailedScheduling", "message": "b"},
    ]
    assert failed_scheduling_message(events) == "b"
    assert not scale_up_triggered(events) and scale_up_triggered(events + [{"reason": "TriggeredScaleUp"}])


def test_description_names_the_instance_type_and_its_request():
    it = catalog().instance_types["gpu-two"]
    text = describe(read_verdict("0/2 nodes are available: 2 Insufficient nvidia.com/gpu."), it)
    assert text.startswith("No node can run this server: not enough free GPUs")
    assert "'Two GPUs' asks for 8 CPU, 32 GiB memory, 2 GPU" in text


# --- form model -----------------------------------------------------------------------------


def by_name(items):
    return {i.name: i for i in items}


def test_form_offers_groups_types_images_and_disables_with_reasons():
    model = build_form(user("ana"), catalog())
    groups = by_name(model)
    assert list(groups) == ["analysts", "vision"]
    assert groups["analysts"].selected and not groups["vision"].selected
    vision_types = by_name(groups["vision"].instance_types)
    assert "GPU quota" in vision_types["gpu-two"].reason
    assert vision_types["gpu-one"].reason == ""
    # the pre-selected type has a GPU, so the GPU-only image is usable
    assert by_name(groups["vision"].images)["cuda"].reason == ""
    assert [d["name"] for d in groups["analysts"].datasets] == [
        "confidential",
        "handbook",
        "notebooks",
        "reports",
        "sales",
        "team-wide",
    ]


def test_form_shows_current_usage_and_disables_types_over_quota_with_it():
    usage = {"analysts": (Amount(cpu=1), Amount(cpu=1.5))}
    model = by_name(build_form(user("ana"), catalog(), usage=usage))
    types = by_name(model["analysts"].instance_types)
    assert "1 CPU already in use" in types["medium"].reason
    assert types["small"].reason == "" and types["small"].selected
    row = model["analysts"].quota_rows[0]
    assert (row.resource, row.user_quota, row.user_used, row.group_quota, row.group_used) == (
        "CPU",
        "2 CPU",
        "1 CPU",
        "3 CPU",
        "1.5 CPU",
    )


def test_remembered_choices_are_preselected_when_still_granted():
    remembered = {"group": "vision", "instance_type": "small", "image": "torch"}
    model = by_name(build_form(user("ana"), catalog(), remembered=remembered))
    assert model["vision"].selected
    assert [c.name for c in model["vision"].instance_types if c.selected] == ["small"]
    assert [c.name for c in model["vision"].images if c.selected] == ["torch"]
    # with a CPU type pre-selected the GPU-only image is shown disabled with the reason
    assert "needs a GPU" in by_name(model["vision"].images)["cuda"].reason


def test_remembered_choices_no_longer_granted_are_dropped_quietly():
    remembered = {"group": "gone", "instance_type": "gpu-two", "image": "nope"}
    model = by_name(build_form(user("ana"), catalog(), remembered=remembered))
    assert model["analysts"].selected
    assert [c.name for c in model["analysts"].instance_types if c.selected] == ["medium"]
    remembered = {"group": "vision", "instance_type": "gpu-two"}
    model = by_name(build_form(user("ana"), catalog(), remembered=remembered))
    assert model["vision"].selected
    assert [c.name for c in model["vision"].instance_types if c.selected] == ["amd-one"]


def test_a_group_with_a_broken_shared_volume_is_shown_disabled_with_the_reason():
    model = by_name(build_form(user("bea"), catalog()))
    assert "shared-volume-capacity" in model["broken_vol"].reason
    assert model["analysts"].selected and not model["broken_vol"].selected


def test_no_group_raises_the_readable_refusal():
    assert build_form(user("nobody"), catalog()) is None
    with pytest.raises(NoLaunchGroup, match="No group is configured for you"):
        render_form(None)


def test_html_has_the_fields_and_escapes_names_from_keycloak():
    evil = UserInfo(
        "eve",
        groups=[
            Group("g", display_name="<script>alert(1)</script>", realm_roles=["it:small", "img:base"]),
            Group(EVERYONE),
        ],
    )
    html = render_form(build_form(evil, catalog()))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert 'name="group" value="g"' in html
    assert 'name="instance_type@g"' in html and 'name="image@g"' in html


def test_html_for_the_scenario_marks_disabled_choices():
    html = render_form(build_form(user("ana"), catalog()))
    option = re.search(r'<option value="gpu-two"[^>]*>[^<]*', html).group(0)
    assert "disabled" in option and "unavailable: not enough GPU quota" in option


def test_form_fields_of_other_groups_are_ignored_and_unknown_ones_kept_for_refusal():
    formdata = {
        "group": ["vision"],
        "instance_type@vision": ["gpu-one"],
        "image@vision": ["torch"],
        "instance_type@analysts": ["medium"],
        "image@analysts": ["lab"],
    }
    assert form_options(formdata) == {"group": ["vision"], "instance_type": ["gpu-one"], "image": ["torch"]}
    assert "env" in form_options({"group": ["vision"], "env": ["X=1"]})


def test_xsrf_token_in_the_form_body_is_not_a_server_option():
    options = form_options({"_xsrf": ["token"], "group": ["g"], "instance_type@g": ["it"], "image@g": ["img"]})
    assert options == {"group": ["g"], "instance_type": ["it"], "image": ["img"]}
