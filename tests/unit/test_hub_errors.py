"""Refusals reach JupyterHub as errors it knows how to show and to count.

Under JupyterHub 6 a refused launch is its SpawnException (jupyterhub#5464): logged without a
traceback and counted in the spawn metrics as a "failure" with a reason label, while an outage
(Keycloak, the catalog) stays an error. Under JupyterHub 5 the same classes are plain HTTPErrors.
The user reads the same sentence and the client gets the same status under both.
"""

import jupyterhub.spawner
import pytest
from tornado import web

from primehub_hub.errors import (
    BadRequest,
    CatalogUnavailable,
    ConfigurationError,
    ImagePullFailed,
    KeycloakUnavailable,
    MountFailed,
    NoLaunchGroup,
    QuotaExceeded,
    Refused,
    SchedulingFailed,
)

SPAWN_EXCEPTION = getattr(jupyterhub.spawner, "SpawnException", None)

REFUSALS = [
    (BadRequest, 400, "bad-options"),
    (Refused, 403, "not-entitled"),
    (QuotaExceeded, 403, "quota"),
    (NoLaunchGroup, 403, "no-launch-group"),
    (ConfigurationError, 409, "misconfigured"),
    (SchedulingFailed, 503, "unschedulable"),
    (MountFailed, 503, "mount-failed"),
    (ImagePullFailed, 503, "image-pull-failed"),
]


@pytest.mark.parametrize("cls,status,reason", REFUSALS, ids=[c.__name__ for c, _, _ in REFUSALS])
def test_a_refusal_keeps_its_sentence_and_status_and_is_a_spawn_failure_where_jupyterhub_has_one(cls, status, reason):
    message = "Cannot start the server: 120% of your CPU quota in group 'Vision'."
    error = cls(message)
    assert isinstance(error, web.HTTPError) and error.status_code == status
    assert str(error) == message and error.jupyterhub_message == message
    assert error.get_message() == message, "a literal '%' is not a format directive"
    if SPAWN_EXCEPTION is not None:
        assert isinstance(error, SPAWN_EXCEPTION) and error.reason == reason
        assert error.message == message and error.log_message == message


@pytest.mark.parametrize("cls", [KeycloakUnavailable, CatalogUnavailable])
def test_an_outage_stays_an_error_not_a_refusal(cls):
    error = cls("The login service (Keycloak) cannot be reached right now.")
    assert error.status_code == 503 and str(error).startswith("The login service")
    if SPAWN_EXCEPTION is not None:
        assert not isinstance(error, SPAWN_EXCEPTION)
