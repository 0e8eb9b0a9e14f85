"""The private parts of JupyterHub, KubeSpawner and oauthenticator that primehub_hub still relies on,
pinned against the installed versions, so that an upgrade that changes one fails here, loudly and by
name, instead of somewhere in a spawn. Everything else the hub uses is documented API or hooks
(refresh_user_hook, modify_auth_state_hook, handle_logout/render_logout_page, httpfetch)."""

import inspect

import pytest
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.handlers.pages import SpawnHandler
from kubespawner import KubeSpawner
from oauthenticator.oauth2 import OAuthenticator

from primehub_hub.auth import PrimeHubAuthenticator
from primehub_hub.handlers import PrimeHubSpawnHandler
from primehub_hub.spawner import PrimeHubSpawner


def params(function):
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    "upstream, ours, expected",
    [
        # overridden: the form page keeps a refusal's status
        (SpawnHandler._render_form, PrimeHubSpawnHandler._render_form, ["self", "for_user", "spawner_options_form", "message"]),
        # overridden: the quota check runs under the group lock right before the pod is created
        (KubeSpawner._make_create_pod_request, PrimeHubSpawner._make_create_pod_request, ["self", "pod", "request_timeout"]),
    ],
)
def test_overridden_private_methods_keep_their_signatures(upstream, ours, expected):
    assert params(upstream) == expected, f"{upstream.__qualname__} changed: {inspect.signature(upstream)}"
    assert params(ours) == expected


@pytest.mark.parametrize(
    "function, expected",
    [
        (KubeSpawner._start, ["self"]),  # the start the fast-failure watch runs beside
        (KubeSpawner._start_watching_pods, ["self", "replace"]),
        (KubeSpawner._make_create_pvc_request, ["self", "pvc", "request_timeout"]),  # group volumes
        (OAuthenticator._token_to_auth_model, ["self", "token_info"]),  # a refreshed token -> auth model
    ],
)
def test_called_private_methods_keep_their_signatures(function, expected):
    assert params(function) == expected, f"{function.__qualname__} changed: {inspect.signature(function)}"


def test_private_attributes_still_mean_what_the_hub_reads_them_as():
    # PrimeHubSpawner.start hands KubeSpawner's progress() the future it waits on
    assert "self._start_future = " in inspect.getsource(KubeSpawner.start)
    assert "_start_future" in inspect.getsource(KubeSpawner.progress)
    # refresh.py tells "the user being resolved" from "another user" by the handler's cache
    assert "_jupyterhub_user" in inspect.getsource(BaseHandler.get_current_user)


def test_the_hooks_are_the_ones_oauthenticator_documents():
    authenticator = PrimeHubAuthenticator()
    for hook in ("refresh_user_hook", "modify_auth_state_hook"):
        assert hook in OAuthenticator.class_trait_names(config=True)
        assert callable(getattr(authenticator, hook))
    assert params(authenticator.refresh_user_hook) == ["authenticator", "user", "auth_state"]
    assert params(authenticator.modify_auth_state_hook) == ["authenticator", "auth_state"]
    assert params(OAuthenticator.httpfetch) == ["self", "url", "label", "parse_json", "raise_error", "kwargs"]
