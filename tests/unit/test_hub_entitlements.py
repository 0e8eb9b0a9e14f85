"""docs/behaviour.md "Who may launch what", rule by rule, on the scenario (see hub_scenario.py)."""

import pytest

from hub_scenario import catalog, export, user
from primehub_hub.entitlements import (
    EVERYONE,
    Group,
    UserInfo,
    dataset_decisions,
    everyone_group,
    find_launch_group,
    has_admin_role,
    launch_groups,
    mounted_datasets,
    offered_images,
    offered_instance_types,
    parse_grants,
)
from primehub_hub.realm_export import RealmExportError, user_info_from_realm_export


def names(offers):
    return [o.resource.name for o in offers]


def group_of(info, name):
    group = find_launch_group(info, name)
    assert group is not None, name
    return group


# --- grants ----------------------------------------------------------------------------------


def test_grants_are_read_from_role_names():
    grants = parse_grants(["it:small", "img:base", "ds:sales", "ds:rw:reports", "offline_access", "it:", "ds:rw:"])
    assert grants.instance_types == {"small"}
    assert grants.images == {"base"}
    assert grants.dataset_access == {"sales": False, "reports": True}


def test_read_write_wins_over_read_only_for_the_same_dataset():
    assert parse_grants(["ds:reports", "ds:rw:reports"]).dataset_access == {"reports": True}
    assert parse_grants(["ds:rw:reports", "ds:reports"]).dataset_access == {"reports": True}


@pytest.mark.parametrize("prefix", ["ph", "ph:"])
def test_with_a_prefix_only_prefixed_roles_are_grants(prefix):
    grants = parse_grants(["ph:it:large", "it:medium", "ph:ds:rw:x", "other:it:y"], prefix)
    assert grants.instance_types == {"large"}
    assert grants.dataset_access == {"x": True}


def test_prefix_in_the_scenario():
    pat = user("pat")
    group = group_of(pat, "prefixed-team")
    assert names(offered_instance_types(pat, group, catalog(), "ph")) == ["large"]
    assert names(offered_images(pat, group, catalog(), "ph")) == ["base"]
    # without the prefix the ph: roles are not grants, the plain ones (and everyone's) are
    assert names(offered_instance_types(pat, group, catalog())) == ["medium", "small"]


# --- everyone and launch groups ----------------------------------------------------------------


def test_everyone_is_never_a_launch_group_even_for_explicit_members():
    olga = user("olga")
    assert [g.name for g in olga.groups].count(EVERYONE) == 1
    assert EVERYONE not in [g.name for g in launch_groups(olga)]
    assert [g.name for g in launch_groups(olga)] == ["ops", "vision"]


def test_everyone_grants_reach_users_who_are_not_members_of_it():
    ana = user("ana")
    assert everyone_group(ana) is not None
    for group in launch_groups(ana):
        assert "small" in names(offered_instance_types(ana, group, catalog()))
        assert "base" in names(offered_images(ana, group, catalog()))


def test_a_user_without_groups_has_no_launch_group():
    assert launch_groups(user("nobody")) == []


def test_launch_groups_are_deduplicated_and_sorted():
    info = UserInfo("u", groups=[Group("b"), Group("a"), Group("b"), Group(EVERYONE)])
    assert [g.name for g in launch_groups(info)] == ["a", "b"]


# --- offers --------------------------------------------------------------------------------------


def test_offers_are_the_union_of_group_and_everyone_restricted_to_existing_resources(scenario_catalog):
    ana = user("ana")
    analysts = group_of(ana, "analysts")
    # ghost-type / ghost-img are granted but do not exist; no-grant/large exist but are not granted
    assert sorted(names(offered_instance_types(ana, analysts, scenario_catalog))) == ["medium", "small"]
    assert sorted(names(offered_images(ana, analysts, scenario_catalog))) == ["base", "lab"]
    vision = group_of(ana, "vision")
    assert sorted(names(offered_instance_types(ana, vision, scenario_catalog))) == [
        "amd-one",
        "gpu-one",
        "gpu-two",
        "small",
    ]
    assert sorted(names(offered_images(ana, vision, scenario_catalog))) == ["base", "cuda", "torch"]


def test_offers_do_not_leak_between_a_users_groups(scenario_catalog):
    ana = user("ana")
    assert "medium" not in names(offered_instance_types(ana, group_of(ana, "vision"), scenario_catalog))
    assert "gpu-one" not in names(offered_instance_types(ana, group_of(ana, "analysts"), scenario_catalog))


def test_an_offer_granted_by_group_and_everyone_appears_once_with_both_sources():
    info = UserInfo(
        "u",
        groups=[Group("g", realm_roles=["it:small", "it:small"]), Group(EVERYONE, realm_roles=["it:small"])],
    )
    offers = offered_instance_types(info, info.groups[0], catalog())
    assert names(offers) == ["small"]
    assert offers[0].granted_by == ("g", EVERYONE)


def test_the_invalid_instance_type_is_not_in_the_catalog(scenario_catalog):
    assert "broken-it" not in scenario_catalog.instance_types
    assert set(scenario_catalog.instance_types) == {
        "small",
        "medium",
        "large",
        "gpu-one",
        "gpu-two",
        "amd-one",
        "no-grant",
    }


# --- datasets ------------------------------------------------------------------------------------


def mounted(info, group_name, cat=None):
    cat = cat or catalog()
    return {m.dataset.name: m.writable for m in mounted_datasets(info, group_of(info, group_name), cat)}


def test_datasets_mounted_under_the_launch_group_and_from_other_groups():
    ana = user("ana")
    assert mounted(ana, "analysts") == {
        "handbook": False,  # global
        "sales": False,
        "reports": True,  # ds:rw: from the launch group
        "confidential": False,  # launch-group-only, granted to this group
        "notebooks": False,  # from vision, not launch-group-only
        "team-wide": False,  # "True" is not "true": not launch-group-only
    }


def test_launch_group_only_dataset_is_not_mounted_from_another_group():
    ana = user("ana")
    under_vision = mounted(ana, "vision")
    assert "confidential" not in under_vision
    _, skipped = dataset_decisions(ana, group_of(ana, "vision"), catalog())
    assert [s.dataset.name for s in skipped] == ["confidential"]
    assert "launch-group-only" in skipped[0].reason and "analysts" in skipped[0].reason


def test_writable_only_when_the_launch_group_or_everyone_grants_read_write():
    ana = user("ana")
    # analysts grant ds:rw:reports, vision grants ds:reports: read-only under vision
    assert mounted(ana, "vision")["reports"] is False
    assert mounted(ana, "analysts")["reports"] is True
    info = UserInfo(
        "u",
        groups=[Group("g", realm_roles=["ds:sales"]), Group(EVERYONE, realm_roles=["ds:rw:sales"])],
    )
    assert mounted(info, "g") == {"sales": True}


def test_a_global_launch_group_only_dataset_is_mounted_everywhere():
    info = UserInfo("u", groups=[Group("g"), Group(EVERYONE, realm_roles=["ds:confidential"])])
    assert mounted(info, "g") == {"confidential": False}


def test_datasets_without_grant_or_without_resource_are_not_mounted():
    ana = user("ana")
    for group in ("analysts", "vision"):
        assert "orphan-ds" not in mounted(ana, group)
        assert "ghost-ds" not in mounted(ana, group)


# --- admin ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, admin",
    [
        ("root", True),  # client role realm-admin on the user
        ("olga", True),  # through the parent group org of org/ops
        ("paula", True),  # through the composite realm role platform-admin
        ("ana", False),
        ("ivan", False),
    ],
)
def test_admin_is_realm_management_realm_admin_directly_or_through_groups(name, admin):
    assert user(name).is_admin is admin


def test_has_admin_role():
    assert has_admin_role({"realm-management": ["view-users", "realm-admin"]})
    assert not has_admin_role({"realm-management": ["view-users"], "other": ["realm-admin"]})
    assert not has_admin_role({})


def test_realm_export_errors_are_clear():
    with pytest.raises(RealmExportError, match="not in the realm export"):
        user_info_from_realm_export(export(), "who")
    broken = export()
    broken["users"].append({"username": "lost", "groups": ["/missing"]})
    with pytest.raises(RealmExportError, match="/missing"):
        user_info_from_realm_export(broken, "lost")


def test_user_info_round_trips_through_a_dict():
    ana = user("ana")
    assert UserInfo.from_dict(ana.to_dict()) == ana
    assert ana.attributes["timezone"] == "Asia/Taipei"
    assert group_of(ana, "analysts").label == "Analysts"
    assert group_of(ana, "analysts").id == "g-analysts"


# --- groups are told apart by Keycloak id or path, not by bare name ---------------------------------


def test_a_subgroup_named_everyone_neither_replaces_the_global_group_nor_hides_itself():
    from primehub_hub.entitlements import Group, everyone_group, launch_groups
    from primehub_hub.keycloak import user_info_from_representations

    sub = Group("everyone", realm_roles=["it:big"], id="g-sub", path="/org/everyone")
    real = Group("everyone", realm_roles=["it:small"], id="g-e", path="/everyone")
    info = user_info_from_representations({"username": "u"}, [sub], real)
    assert everyone_group(info) is real
    assert [g.path for g in launch_groups(info)] == ["/org/everyone"]


def test_same_named_subgroups_stay_apart_and_launching_by_that_name_is_refused_clearly():
    from primehub_hub.entitlements import Group, UserInfo, find_launch_group, launch_groups
    from primehub_hub.errors import ConfigurationError

    a, b = Group("ml", id="g-a", path="/a/ml"), Group("ml", id="g-b", path="/b/ml")
    info = UserInfo("u", groups=[a, b])
    assert launch_groups(info) == [a, b]
    with pytest.raises(ConfigurationError, match=r"2 groups named 'ml' \(/a/ml, /b/ml\)"):
        find_launch_group(info, "ml")
