"""Handles the tests use for the servers of the stack, whatever backend started them."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes


@dataclass
class Cluster:
    kubeconfig: str
    namespace: str
    api_url: str
    kubectl_bin: str
    log_dir: Path
    restart_apiserver: object = field(default=None, repr=False)
    # Which node plays which part of the demo catalog (the local stack has one of each).
    nodes: dict = field(default_factory=lambda: {"cpu": "cpu-node", "gpu": "gpu-node"})

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args],
            text=True,
            capture_output=True,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def api(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=self.kubeconfig)

    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api())

    def wait(self, check, timeout: float, what: str, interval: float = 0.2):
        """Poll `check` until it returns something truthy; fail naming `what` and the log folder."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (logs: {self.log_dir})")


@dataclass
class Keycloak:
    url: str
    browser_url: str
    admin_user: str
    admin_password: str
    realm: str
    realm_file: Path
    client_id: str = "jupyterhub"
    client_secret: str = "local-dev-only-secret"
    stop: object = field(default=None, repr=False)
    start: object = field(default=None, repr=False)

    def admin(self):
        from keycloak import KeycloakAdmin

        adm = KeycloakAdmin(
            server_url=self.url + "/",
            username=self.admin_user,
            password=self.admin_password,
            realm_name="master",
            user_realm_name="master",
            verify=True,
        )
        adm.change_current_realm(self.realm)
        return adm

    def _post(self, path: str, data: dict) -> dict:
        req = urllib.request.Request(f"{self.url}{path}", data=urllib.parse.urlencode(data).encode())
        with urllib.request.urlopen(req, timeout=15) as r:
            return json.loads(r.read())

    def password_token(self, username: str, password: str) -> dict:
        return self._post(
            f"/realms/{self.realm}/protocol/openid-connect/token",
            {
                "grant_type": "password",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "username": username,
                "password": password,
                "scope": "openid",
            },
        )

    def service_token(self) -> dict:
        return self._post(
            f"/realms/{self.realm}/protocol/openid-connect/token",
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )


@dataclass
class Hub:
    url: str
    api_url: str
    api_token: str
    log_dir: Path
    restart: object = field(default=None, repr=False)

    def api(self, method: str, path: str, body=None, token: str | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.api_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {token or self.api_token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text.strip() else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text
