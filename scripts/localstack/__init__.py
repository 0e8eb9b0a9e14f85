"""The local stack: a real Kubernetes control plane, Keycloak and the hub on loopback, plus the node
agent (the one test double). `python -m localstack up|down|status` with scripts/ on PYTHONPATH, or
`make up` / `make down`."""
