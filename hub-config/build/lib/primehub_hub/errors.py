"""Errors a user may see.

JupyterHub shows `jupyterhub_message` on its error page and on the spawn progress page, and
passes `web.HTTPError` raised early in a spawn through to the browser or API client with its
status. Every refusal therefore is an HTTPError whose text is the sentence the user reads.
"""

from tornado import web


class PrimeHubError(web.HTTPError):
    """A failure with a message meant for the user, not a traceback."""

    status = 500

    def __init__(self, message, status=None):
        status = status or self.status
        # "%s" keeps a literal '%' in the message from being treated as a format directive
        super().__init__(status, "%s", message)
        self.message = message
        self.jupyterhub_message = message

    def __str__(self):
        return self.message


class BadRequest(PrimeHubError):
    """The submitted options are malformed (wrong type, too long, unknown field)."""

    status = 400


class Refused(PrimeHubError):
    """The user is not entitled to what they asked for."""

    status = 403


class QuotaExceeded(Refused):
    """The launch would exceed a user or group quota."""


class NoLaunchGroup(Refused):
    """The user belongs to no group they could launch under."""


class ConfigurationError(PrimeHubError):
    """The platform is misconfigured (e.g. a group's shared volume has no capacity)."""

    status = 409


class KeycloakUnavailable(PrimeHubError):
    """Keycloak could not be reached or refused the hub's own requests."""

    status = 503


class CatalogUnavailable(PrimeHubError):
    """The instance types, images and datasets could not be read from Kubernetes."""

    status = 503


class SchedulingFailed(PrimeHubError):
    """Kubernetes reported that no node can run the server."""

    status = 503
