"""Errors a user may see.

JupyterHub shows `jupyterhub_message` on its error page and on the spawn progress page, and
passes `web.HTTPError` raised early in a spawn through to the browser or API client with its
status. Every refusal therefore is an HTTPError whose text is the sentence the user reads.
"""

import logging

from tornado import web

try:
    # JupyterHub 6 (jupyterhub#5464): a spawn refused by policy is a SpawnException, logged without
    # a traceback and counted as a "failure" with a reason label in the spawn metrics, not as an error.
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5: an HTTPError with jupyterhub_message does the same job
    SpawnException = None

_SPAWN_EXCEPTION = (SpawnException,) if SpawnException is not None else ()


class PrimeHubError(web.HTTPError):
    """A failure with a message meant for the user, not a traceback."""

    status = 500

    def __init__(self, message, status=None):
        status = status or self.status
        if _SPAWN_EXCEPTION and isinstance(self, SpawnException):
            SpawnException.__init__(self, message, reason=self.spawn_reason, status_code=status)
        else:
            # "%s" keeps a literal '%' in the message from being treated as a format directive
            web.HTTPError.__init__(self, status, "%s", message)
        self.message = message
        self.jupyterhub_message = message

    def __str__(self):
        return self.message


class SpawnRefusal(PrimeHubError, *_SPAWN_EXCEPTION):
    """A launch refused by a rule (entitlement, quota, capacity, configuration), not a broken system.

    Under JupyterHub 6 it is also a SpawnException whose reason is `spawn_reason`.
    """

    spawn_reason = "refused"


class BadRequest(SpawnRefusal):
    """The submitted options are malformed (wrong type, too long, unknown field)."""

    status = 400
    spawn_reason = "bad-options"


class Refused(SpawnRefusal):
    """The user is not entitled to what they asked for."""

    status = 403
    spawn_reason = "not-entitled"


class QuotaExceeded(Refused):
    """The launch would exceed a user or group quota."""

    spawn_reason = "quota"


class NoLaunchGroup(Refused):
    """The user belongs to no group they could launch under."""

    spawn_reason = "no-launch-group"


class KeycloakUserGone(Refused):
    """The user was deleted or disabled in Keycloak: they lose the hub (not the same as Keycloak down)."""

    spawn_reason = "user-gone"


class ConfigurationError(SpawnRefusal):
    """The platform is misconfigured (e.g. a group's shared volume has no capacity)."""

    status = 409
    spawn_reason = "misconfigured"


class KeycloakUnavailable(PrimeHubError):
    """Keycloak could not be reached or refused the hub's own requests."""

    status = 503


class CatalogUnavailable(PrimeHubError):
    """The instance types, images and datasets could not be read from Kubernetes."""

    status = 503


class SchedulingFailed(SpawnRefusal):
    """Kubernetes reported that no node can run the server."""

    status = 503
    spawn_reason = "unschedulable"


class MountFailed(SpawnRefusal):
    """Kubernetes placed the server but cannot mount one of its volumes (a missing node folder, an
    NFS server that does not answer)."""

    status = 503
    spawn_reason = "mount-failed"


class ImagePullFailed(SpawnRefusal):
    """Kubernetes placed the server but cannot pull its image (an address with a typo, a registry that
    does not answer, a pull secret that is missing or wrong)."""

    status = 503
    spawn_reason = "image-pull-failed"


class RefusalTracebacks(logging.Filter):
    """Log a refused launch as one line with its reason, not as a traceback.

    JupyterHub 5 logs whatever the apply_user_options hook raises with `log.exception` ("Exception
    applying user_options"), so every forged form, missing entitlement or full quota would print a
    traceback as if the hub were broken. A refusal by a rule becomes a warning naming the reason; a
    configuration error keeps its traceback (the operator has something to fix).
    """

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, SpawnRefusal) and not isinstance(error, ConfigurationError):
            record.args = (record.getMessage(), error.message)
            record.msg = "%s: %s"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def quiet_refusals(logger):
    """Put RefusalTracebacks on `logger` once (the hub's log, which every spawner shares)."""
    if not any(isinstance(f, RefusalTracebacks) for f in logger.filters):
        logger.addFilter(RefusalTracebacks())
