"""What stands in for `docker run --privileged` on this machine.

Its Docker cannot grant --privileged: the capability bounding set lacks CAP_SYS_RESOURCE, so runc
refuses. Every other capability, no seccomp/AppArmor confinement, unmasked /proc and /sys paths and
access to all devices give a kind node what it needs. Used by the node image assembly and by the docker
shim kind runs through (bin/docker). No imports: the shim runs it with any python3.
"""

FLAGS = [
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt",
    "systempaths=unconfined",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--device-cgroup-rule",
    "a *:* rwm",
]
