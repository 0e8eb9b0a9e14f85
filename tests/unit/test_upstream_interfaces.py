"""The upstream methods hub-config overrides or calls beyond the documented hooks, pinned.

primehub_hub subclasses KubeSpawner, GenericOAuthenticator and two handlers, and some of what it
overrides or calls is private there. A release that renames one or changes its parameters would not
fail at import: the override would silently stop being called, or fail only on the path that uses
it. This test compares each one with the installed release (both `requirements-hub.txt` and
`requirements-next.txt` run it), so an upgrade fails here, by name, before it fails for a user.

When one fails: read the upstream changelog for that method, adapt the code that uses it (named in
the table), then update the pinned signature.
"""

import inspect

import pytest
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.handlers.login import LogoutHandler
from jupyterhub.spawner import Spawner
from jupyterhub.user import User
from kubespawner import KubeSpawner, objects, slugs
from kubespawner.reflector import ResourceReflector
from oauthenticator.oauth2 import OAuthenticator, OAuthLoginHandler

# (owner, name, pinned signature, async?, where primehub_hub relies on it)
SIGNATURES = [
    # JupyterHub
    (BaseHandler, "get_token", "(self)", False, "refresh.py _acting_for_other: API-token requests"),
    (BaseHandler, "clear_login_cookie", "(self, name=None)", False, "refresh.py _require_login"),
    (BaseHandler, "get_current_user", "(self)", True, "refresh.py reads the _jupyterhub_user it sets"),
    (LogoutHandler, "get", "(self)", True, "logout.py: calls the two hooks below, in this order"),
    (LogoutHandler, "handle_logout", "(self)", True, "logout.py handle_logout (documented hook)"),
    (LogoutHandler, "render_logout_page", "(self)", True, "logout.py render_logout_page (documented hook)"),
    # KubeSpawner
    (KubeSpawner, "start", "(self)", False, "spawn_scheduling.py start: wraps _start with the scheduling watch"),
    (KubeSpawner, "_start", "(self)", True, "spawn_scheduling.py _start_watched"),
    (
        KubeSpawner,
        "_make_create_pod_request",
        "(self, pod, request_timeout)",
        True,
        "spawn_quota.py: quota check under the group lock",
    ),
    (
        KubeSpawner,
        "_make_create_pvc_request",
        "(self, pvc, request_timeout)",
        True,
        "spawn_quota.py _ensure_shared_volumes",
    ),
    (KubeSpawner, "_start_watching_pods", "(self, replace=False)", True, "spawn_quota.py _active_pods"),
    (
        KubeSpawner,
        "_start_reflector",
        "(self, kind: str, reflector_class: Type[kubespawner.reflector.ResourceReflector], replace: bool = False, **kwargs)",
        True,
        "spawner.py _start_reflector: the pod and event reflectors made notifying (watch.py)",
    ),
    (
        ResourceReflector,
        "_list_and_update",
        "(self, resource_version=None)",
        True,
        "watch.py: a relist reports what changed",
    ),
    (KubeSpawner, "load_user_options", "(self)", True, "spawner.py: the launch plan, called by _start"),
    (
        Spawner,
        "_run_apply_user_options",
        "(self, user_options)",
        True,
        "spawner.py apply_primehub_options: called as apply_user_options(spawner, user_options)",
    ),
    (KubeSpawner, "get_env", "(self)", False, "spawner.py get_env"),
    (KubeSpawner, "stop", "(self, now=False)", True, "spawn_scheduling.py _remove_pod_after_failure"),
    (
        objects,
        "make_pvc",
        "(name, storage_class, access_modes, selector, storage, labels=None, annotations=None)",
        False,
        "spawn_quota.py _ensure_shared_volumes",
    ),
    (slugs, "safe_slug", "(name, is_valid=is_valid_default, max_length=None)", False, "quotas.py label_value"),
    (slugs, "is_valid_label", "(s)", False, "quotas.py label_value"),
    (
        slugs,
        "escape_slug",
        "(name)",
        False,
        "quotas.py primehub_label, volumes.py home_claim_name: PrimeHub's escaping",
    ),
    # OAuthenticator
    (
        OAuthenticator,
        "_token_to_auth_model",
        "(self, token_info)",
        True,
        "refresh.py _renewed_login: a refreshed token -> auth model",
    ),
    (OAuthenticator, "token_to_user", "(self, token_info)", True, "refresh.py IssuerFallback.token_to_user"),
    (OAuthenticator, "get_token_info", "(self, handler, params)", True, "refresh.py refreshed_token_info"),
    (
        OAuthenticator,
        "httpfetch",
        "(self, url, label='fetching', parse_json=True, raise_error=True, **kwargs)",
        True,
        "auth.py httpfetch (overridden: unreachable Keycloak); refresh.py IssuerFallback",
    ),
    (
        OAuthenticator,
        "build_refresh_token_request_params",
        "(self, refresh_token)",
        False,
        "refresh.py refreshed_token_info",
    ),
    (
        OAuthenticator,
        "build_token_info_request_headers",
        "(self)",
        False,
        "refresh.py IssuerFallback.refresh_at_issuer",
    ),
    (
        OAuthenticator,
        "build_userdata_request_headers",
        "(self, access_token, token_type)",
        False,
        "refresh.py IssuerFallback.token_to_user",
    ),
    (OAuthenticator, "get_callback_url", "(self, handler=None)", False, "auth.py get_callback_url"),
    (
        OAuthenticator,
        "refresh_user",
        "(self, user, handler=None, **kwargs)",
        True,
        "auth.py refresh_user: hands the request to refresh_user_hook",
    ),
    (OAuthenticator, "update_auth_model", "(self, auth_model)", True, "auth.py update_auth_model"),
    (OAuthLoginHandler, "get", "(self)", False, "auth.py PrimeHubLoginHandler.get"),
]


def _shape(function):
    """A signature as text, with function defaults by name (their repr has an address)."""
    params = []
    for p in inspect.signature(function).parameters.values():
        if p.default is not inspect.Parameter.empty and callable(p.default):
            p = p.replace(default=_Named(p.default.__name__))
        params.append(p)
    return str(inspect.Signature(params))


class _Named:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


@pytest.mark.parametrize(
    "owner,name,pinned,is_async,used_by", SIGNATURES, ids=[f"{o.__name__}.{n}" for o, n, *_ in SIGNATURES]
)
def test_upstream_method_is_still_what_primehub_hub_overrides_or_calls(owner, name, pinned, is_async, used_by):
    function = getattr(owner, name, None)
    assert function is not None, f"{owner.__name__}.{name} is gone upstream; primehub_hub uses it in {used_by}"
    assert _shape(function) == pinned, (
        f"{owner.__name__}.{name} changed upstream: was {pinned}, now {_shape(function)}; "
        f"primehub_hub uses it in {used_by}"
    )
    assert inspect.iscoroutinefunction(function) == is_async, f"{owner.__name__}.{name}: async changed ({used_by})"


# Private attributes, not methods: the upstream code that sets or reads each must still do so.
ATTRIBUTES = [
    (BaseHandler.get_current_user, "self._jupyterhub_user", "refresh.py _acting_for_other tells whose request it is"),
    (
        LogoutHandler.get,
        "self._jupyterhub_user = None",
        "logout.py handle_logout still sees the user: upstream clears it only after",
    ),
    (
        KubeSpawner.progress,
        "self._start_future",
        "spawn_scheduling.py start sets it, so the progress page follows the watched start",
    ),
    (KubeSpawner._start, "self.load_user_options()", "spawner.py load_user_options decides the launch"),
    (
        User.spawn,
        "spawner._run_apply_user_options(spawner.user_options)",
        "spawner.py: JupyterHub's apply_user_options hook checks and applies every spawn's options",
    ),
    (
        Spawner._run_apply_user_options,
        "self.apply_user_options(self, user_options)",
        "spawner.py apply_primehub_options takes (spawner, user_options)",
    ),
    (KubeSpawner._start, "self._make_create_pod_request", "spawn_quota.py checks quotas where the pod is created"),
    (
        ResourceReflector._watch_and_update,
        "self.resources[ref_key] = resource",
        "watch.py: each watch event is a write to the dict",
    ),
    (ResourceReflector._watch_and_update, "self.resources.pop(ref_key, None)", "watch.py: a deletion is a pop"),
    (ResourceReflector._list_and_update, "self.resources = {", "watch.py wraps the relisted dict"),
    (KubeSpawner._start_watching_pods, "self._start_reflector(", "spawner.py makes the pod reflector notifying"),
    (KubeSpawner._start_watching_events, "self._start_reflector(", "spawner.py makes the event reflector notifying"),
]


@pytest.mark.parametrize("where,needle,used_by", ATTRIBUTES, ids=[f"{w.__qualname__}:{n}" for w, n, _ in ATTRIBUTES])
def test_upstream_private_attribute_is_still_used_the_same_way(where, needle, used_by):
    assert needle in inspect.getsource(where), f"{where.__qualname__} no longer uses {needle}; {used_by}"


def test_spawner_log_name_is_still_a_property():
    # spawner.py logs dropped remembered choices with it
    assert isinstance(inspect.getattr_static(Spawner, "_log_name"), property)


def test_the_hooks_are_the_ones_oauthenticator_documents():
    """refresh.py's functions are set as oauthenticator's hooks, with the arguments it calls them with."""
    from primehub_hub.auth import PrimeHubAuthenticator

    authenticator = PrimeHubAuthenticator()
    for hook, params in (
        ("refresh_user_hook", ["authenticator", "user", "auth_state"]),
        ("modify_auth_state_hook", ["authenticator", "auth_state"]),
    ):
        assert hook in OAuthenticator.class_trait_names(config=True), f"oauthenticator has no {hook} any more"
        assert list(inspect.signature(getattr(authenticator, hook)).parameters) == params
    # LogoutHandler.get calls handle_logout before it forgets the user, then render_logout_page
    source = inspect.getsource(LogoutHandler.get)
    assert (
        source.index("handle_logout()")
        < source.index("self._jupyterhub_user = None")
        < source.index("render_logout_page()")
    )
