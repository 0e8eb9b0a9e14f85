"""Write the demo realm (keycloak-realm/primehub-realm.json + keycloak-realm/demo-overlay.json) to a file,
for a Keycloak of the local stack or the tests to import. Never import it anywhere else: it has
users with known passwords (one a realm admin) and a known client secret.

    demo_realm.py OUT.json
"""

from __future__ import annotations

import sys

import realmlib


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(realmlib.write_demo_realm(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
