"""Environment variables a user adds to their own server in the options form. Pure.

The form has a text box of `NAME=value` lines; the REST API takes the same text or an object
`{"NAME": "value"}`. The variables are remembered with the other choices. They can never replace
a variable the hub sets (JupyterHub's, KubeSpawner's, the launch's and the datasets'): the server
check refuses such a name with a clear message, and the pod's environment is built with the
hub's values last, so a remembered variable that has since become the hub's loses quietly.
"""

import re

from .datasets import reserved_env_name
from .errors import BadRequest

MAX_VARIABLES = 64
MAX_VALUE_LENGTH = 4096
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def reserved_reason(name, hub_env=()):
    """Why `name` cannot be set by the user ('' when it can)."""
    if reserved_env_name(name):  # the one list, shared with dataset variables (datasets.py)
        return f"{name} is set by the hub"
    if name in hub_env:
        return f"{name} is set by the hub for this launch (a dataset or the launch itself)"
    return ""


def parse_env(value, *, strict):
    """{name: value} from `NAME=value` lines or an object; refuses (strict) or drops (lenient) bad entries."""
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, str):
        pairs = []
        for number, line in enumerate(value.replace("\r\n", "\n").split("\n"), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, text = line.partition("=")
            if not sep:
                if strict:
                    raise BadRequest(f"Environment variables: line {number} is not NAME=value.")
                continue
            pairs.append((name.strip(), text))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        if strict:
            raise BadRequest("Environment variables must be NAME=value lines or an object of names and values.")
        return {}
    env = {}
    for name, text in pairs:
        problem = _problem(name, text, env)
        if problem:
            if strict:
                raise BadRequest(f"Environment variables: {problem}.")
            continue
        env[name] = text
    if len(env) > MAX_VARIABLES:
        if strict:
            raise BadRequest(f"Environment variables: at most {MAX_VARIABLES} can be set.")
        env = dict(list(env.items())[:MAX_VARIABLES])
    return env


def _problem(name, text, seen):
    if not isinstance(name, str) or not NAME.match(name):
        return f"{str(name)[:40]!r} is not a variable name (letters, digits and _, not starting with a digit)"
    if not isinstance(text, str) or len(text) > MAX_VALUE_LENGTH or "\x00" in text:
        return f"the value of {name} must be text of at most {MAX_VALUE_LENGTH} characters"
    if name in seen:
        return f"{name} is given twice"
    return reserved_reason(name)


def env_text(env):
    """The form's text for remembered variables."""
    return "\n".join(f"{k}={v}" for k, v in (env or {}).items())


def user_env_for_launch(env, hub_env, *, strict):
    """The user's variables that may go into this launch, refusing (strict) or dropping the hub's."""
    kept = {}
    for name, value in (env or {}).items():
        reason = reserved_reason(name, hub_env)
        if reason:
            if strict:
                raise BadRequest(f"Environment variables: {reason}; choose another name.")
            continue
        kept[name] = value
    return kept
