"""From submitted options to a launch plan or a refusal: forged values, GPU images, defaults,
remembered choices, environment."""

import pytest

from hub_scenario import catalog, user
from primehub_hub.errors import BadRequest, ConfigurationError, NoLaunchGroup, QuotaExceeded, Refused
from primehub_hub.plan import normalize_options, plan_launch


def plan(name, options, strict=True, prefix=""):
    # the scenario's hostPath dataset (reports) lies under /data/, which its operator allows
    return plan_launch(user(name), catalog(), options, prefix=prefix, strict=strict, host_path_prefixes=["/data/"])


def test_a_granted_launch():
    p = plan("ana", {"group": "vision", "instance_type": "gpu-one", "image": "torch"})
    assert (p.group.name, p.instance_type.name, p.image.name) == ("vision", "gpu-one", "torch")
    assert p.image_url == "example/torch:cuda"
    assert p.env["GROUP_NAME"] == "vision" and p.env["GROUP_ID"] == "g-vision"
    assert p.env["INSTANCE_TYPE"] == "gpu-one" and p.env["IMAGE_NAME"] == "torch"
    assert p.env["TZ"] == "Asia/Taipei"
    assert "NVIDIA_VISIBLE_DEVICES" not in p.env
    assert p.options == {"group": "vision", "instance_type": "gpu-one", "image": "torch"}


def test_zero_gpu_launch_hides_gpus_and_uses_the_cpu_url():
    p = plan("ana", {"group": "vision", "instance_type": "small", "image": "torch"})
    assert p.env["NVIDIA_VISIBLE_DEVICES"] == "none"
    assert p.image_url == "example/torch:cpu"


def test_timezone_defaults_to_utc():
    p = plan("root", {"group": "analysts", "instance_type": "small", "image": "base"})
    assert p.env["TZ"] == "UTC"


@pytest.mark.parametrize(
    "options, error, words",
    [
        ({"group": "interns"}, Refused, "not a member of group 'interns'"),
        ({"group": "everyone"}, Refused, "not a member of group 'everyone'"),
        ({"group": "analysts", "instance_type": "gpu-one"}, Refused, "instance type 'gpu-one'"),
        ({"group": "analysts", "instance_type": "ghost-type"}, Refused, "instance type 'ghost-type'"),
        ({"group": "analysts", "instance_type": "no-grant"}, Refused, "instance type 'no-grant'"),
        ({"group": "analysts", "image": "cuda"}, Refused, "image 'cuda'"),
        ({"group": "vision", "instance_type": "small", "image": "cuda"}, Refused, "needs a GPU"),
        ({"group": "vision", "instance_type": "gpu-two"}, QuotaExceeded, "GPU quota"),
        ({"group": "analysts", "cmd": "bash"}, BadRequest, "Unknown server option"),
        ({"group": "analysts", "env": "JUPYTERHUB_API_TOKEN=x"}, BadRequest, "set by the hub"),
        ({"group": ["analysts", "vision"]}, BadRequest, "exactly one value"),
        ({"group": {"name": "analysts"}}, BadRequest, "at most"),
        ({"group": "a" * 300}, BadRequest, "at most"),
        ({"group": "analysts", "profile": "vision"}, BadRequest, "twice"),
        (["group"], BadRequest, "must be an object"),
    ],
)
def test_forged_or_malformed_options_are_refused_with_4xx(options, error, words):
    with pytest.raises(error, match=words) as info:
        plan("ana", options)
    assert 400 <= info.value.status_code < 500
    assert str(info.value) == info.value.jupyterhub_message


def test_form_lists_and_the_profile_alias_are_accepted():
    assert normalize_options({"profile": ["vision"], "image": ["torch"]}, strict=True) == {
        "group": "vision",
        "image": "torch",
    }


def test_nothing_chosen_picks_the_first_usable_choices():
    p = plan("ana", {})
    assert (p.group.name, p.instance_type.name, p.image.name) == ("analysts", "medium", "base")


def test_a_group_where_nothing_fits_the_quota_is_refused_naming_the_quota():
    with pytest.raises(QuotaExceeded, match="CPU quota") as info:
        plan("ivan", {"group": "interns"})
    assert info.value.status_code == 403
    assert "0 CPU" in str(info.value)


def test_no_launch_group():
    with pytest.raises(NoLaunchGroup, match="No group is configured for you"):
        plan("nobody", {})


def test_shared_volume_without_capacity_is_shown_as_a_configuration_error():
    with pytest.raises(ConfigurationError, match="broken_vol.*shared-volume-capacity"):
        plan("bea", {"group": "broken_vol"})
    # launch-group-only: the misconfigured volume does not block other groups
    assert plan("bea", {"group": "analysts"}).group.name == "analysts"


def test_remembered_choices_no_longer_granted_are_dropped_quietly():
    remembered = {"group": "vision", "instance_type": "gpu-two", "image": "cuda"}
    p = plan("ana", remembered, strict=False)
    assert (p.group.name, p.instance_type.name, p.image.name) == ("vision", "amd-one", "cuda")
    assert any("gpu-two" in note for note in p.dropped)
    gone = plan("ana", {"group": "ml-old", "instance_type": "x", "image": "y", "junk": 1}, strict=False)
    assert gone.group.name == "analysts" and gone.instance_type.name == "medium"


def test_remembered_image_incompatible_with_new_type_is_replaced():
    p = plan("ana", {"group": "vision", "instance_type": "small", "image": "cuda"}, strict=False)
    assert p.image.name == "base"


def test_prefix_applies_to_the_plan():
    assert plan("pat", {"instance_type": "large"}, prefix="ph").instance_type.name == "large"
    with pytest.raises(Refused):
        plan("pat", {"instance_type": "large"})


def test_datasets_volumes_and_shared_volumes_in_the_plan():
    p = plan("ana", {"group": "analysts", "instance_type": "small", "image": "lab"})
    names = [v["name"] for v in p.volumes]
    assert names == [
        "dataset-confidential",
        "dataset-notebooks",
        "dataset-reports",
        "dataset-sales",
        "dataset-team-wide",
        "primehub-links-0",  # /srv/git, where the git dataset's link to its checkout is made
        "project-analysts",
        "project-vision",
    ]
    assert p.env["HANDBOOK_URL"] == "https://handbook.example.com/{page}"
    assert p.home_symlinks == ["/srv/git/notebooks"]


@pytest.mark.parametrize("value", ["vision\n2026-12-02 INFO forged log line", "vi\x1bsion", "a\rb", "x\u2028y"])
def test_control_characters_in_options_are_refused(value):
    with pytest.raises(BadRequest):
        plan("ana", {"group": value, "instance_type": "gpu-one", "image": "torch"})


def test_unknown_option_names_are_echoed_without_control_characters():
    with pytest.raises(BadRequest) as info:
        plan("ana", {"group": "vision", "evil\nINFO forged": "x"})
    assert "\n" not in str(info.value) and "evil\\nINFO" in str(info.value)
