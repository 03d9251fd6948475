"""Pulsar Functions: a validated function declaration, and the level-triggered reconcile.

A function is declared as the config dict operators hand to ``pulsar-admin functions`` (the
field names of Pulsar's ``FunctionConfig``)::

    {tenant, namespace, name, className, inputs, output, logTopic, parallelism, userConfig,
     processingGuarantees, py | jar}

``py`` is either inline Python code (any value with a line break) or the absolute path of a
``.py`` file inside the broker container; ``jar`` is the path of a jar inside the container.
A client relation may instead name a Juju secret it granted to the broker (``code-secret``:
its URI; content key ``code``: the Python source): ``parse_with_secret_code`` reads it and
validates it exactly like inline ``py`` code.
``parse_spec`` checks every field before any call and raises ``FunctionSpecError`` naming the
field. ``reconcile`` makes the declared set true on the functions worker: create the missing,
update the changed (a hash of config and code recorded per function), delete what the charm
created and nobody declares any more. Nothing here touches Juju or Pebble.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yaml
from charms.pulsar_k8s.v0.pulsar_client import (
    FUNCTION_CODE_KEY,
    FUNCTION_CODE_SECRET_FIELD,
    NAME_PATTERN,
)

FIELDS = (
    "tenant",
    "namespace",
    "name",
    "className",
    "inputs",
    "output",
    "logTopic",
    "parallelism",
    "userConfig",
    "processingGuarantees",
    "py",
    "jar",
)
GUARANTEES = ("ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE")
DEFAULT_GUARANTEES = "ATLEAST_ONCE"
MAX_PARALLELISM = 16
MAX_INPUTS = 16
MAX_CODE_BYTES = 64 * 1024
MAX_USER_CONFIG_BYTES = 16 * 1024
OPERATOR = "operator"
CODE_SECRET = FUNCTION_CODE_SECRET_FIELD  # a client declaration's secret holding the code
CODE_SECRET_KEY = FUNCTION_CODE_KEY  # the secret content key of that code
_SECRET_URI = re.compile(r"^secret:[A-Za-z0-9/_.:-]{1,200}$")

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_PY_CLASS = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})+$")
_JAVA_CLASS = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")
_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_TOPIC = re.compile(r"^(persistent|non-persistent)://([^/]+)/([^/]+)/([^/]+)$")


class FunctionSpecError(ValueError):
    """A declaration refused before any call; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class FunctionSpec:
    """One validated function; topics are fully qualified."""

    tenant: str
    namespace: str
    name: str
    class_name: str
    inputs: tuple[str, ...]
    output: str | None
    log_topic: str | None
    parallelism: int
    user_config: str  # canonical JSON of the userConfig object
    processing_guarantees: str
    runtime: str  # PYTHON or JAVA
    code: str | None  # inline Python code
    path: str | None  # a file inside the broker container

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.namespace}/{self.name}"

    @property
    def full_namespace(self) -> str:
        return f"{self.tenant}/{self.namespace}"

    @property
    def filename(self) -> str:
        """The name the package is uploaded under (Python imports the module by this name)."""
        if self.path is not None:
            return self.path.rsplit("/", 1)[1]
        return f"{self.class_name.rsplit('.', 1)[0]}.py"

    def topics(self) -> tuple[str, ...]:
        return tuple(t for t in (*self.inputs, self.output, self.log_topic) if t)

    def function_config(self) -> dict[str, Any]:
        """Return the ``functionConfig`` JSON of the admin REST call."""
        config: dict[str, Any] = {
            "tenant": self.tenant,
            "namespace": self.namespace,
            "name": self.name,
            "className": self.class_name,
            "inputs": list(self.inputs),
            "parallelism": self.parallelism,
            "userConfig": json.loads(self.user_config),
            "processingGuarantees": self.processing_guarantees,
            "runtime": self.runtime,
            "autoAck": True,
        }
        if self.output:
            config["output"] = self.output
        if self.log_topic:
            config["logTopic"] = self.log_topic
        return config

    def declaration(self) -> dict[str, Any]:
        """Return the normalised config dict of this spec (what the charm records)."""
        raw = {k: v for k, v in self.function_config().items() if k in FIELDS}
        raw["py" if self.runtime == "PYTHON" else "jar"] = self.code or self.path
        return raw

    def digest(self, package: bytes) -> str:
        """Return what a deployed function is compared by: a hash of its config and code."""
        text = json.dumps(self.function_config(), sort_keys=True)
        return hashlib.sha256(text.encode() + b"\0" + package).hexdigest()[:32]


def load_config_text(field: str, text: object) -> dict[str, Any]:
    """Load a YAML or JSON object given as text (an action parameter)."""
    if not isinstance(text, str) or not text.strip():
        raise FunctionSpecError(field, "required: a YAML or JSON object")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise FunctionSpecError(field, f"is not valid YAML or JSON{where}") from None
    if not isinstance(value, dict):
        raise FunctionSpecError(field, "must be a YAML or JSON object (a dict of fields)")
    return value


def parse_spec(raw: Mapping[str, Any]) -> FunctionSpec:
    """Validate a declaration; FunctionSpecError names the first field refused."""
    if not isinstance(raw, Mapping):
        raise FunctionSpecError("config", "must be an object")
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise FunctionSpecError(unknown[0], f"unknown field (accepted: {', '.join(FIELDS)})")
    tenant = _name(raw, "tenant")
    namespace = _name(raw, "namespace")
    name = _name(raw, "name")
    inputs = raw.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise FunctionSpecError("inputs", "required: a list of topics")
    if len(inputs) > MAX_INPUTS:
        raise FunctionSpecError("inputs", f"at most {MAX_INPUTS} topics")
    topics = tuple(dict.fromkeys(_topic("inputs", t, tenant, namespace) for t in inputs))
    output = _optional_topic(raw, "output", tenant, namespace)
    log_topic = _optional_topic(raw, "logTopic", tenant, namespace)
    if output is not None and output in topics:
        raise FunctionSpecError("output", "must not be one of the inputs (a feedback loop)")
    parallelism = raw.get("parallelism", 1)
    if isinstance(parallelism, bool) or not isinstance(parallelism, int):
        raise FunctionSpecError("parallelism", f"an integer from 1 to {MAX_PARALLELISM}")
    if not 1 <= parallelism <= MAX_PARALLELISM:
        raise FunctionSpecError("parallelism", f"an integer from 1 to {MAX_PARALLELISM}")
    user_config = _user_config(raw.get("userConfig", {}))
    guarantees = raw.get("processingGuarantees", DEFAULT_GUARANTEES)
    if guarantees not in GUARANTEES:
        raise FunctionSpecError("processingGuarantees", f"one of {', '.join(GUARANTEES)}")
    class_name = raw.get("className")
    py, jar = raw.get("py"), raw.get("jar")
    if (py is None) == (jar is None):
        raise FunctionSpecError("py", "exactly one of py (Python) or jar (Java) is required")
    if py is not None:
        if not isinstance(class_name, str) or not _PY_CLASS.fullmatch(class_name):
            raise FunctionSpecError("className", "required: 'module.Class' for a Python function")
        code, path = _python_code(py, class_name)
        runtime = "PYTHON"
    else:
        if not isinstance(class_name, str) or not _JAVA_CLASS.fullmatch(class_name):
            raise FunctionSpecError("className", "required: a Java class name")
        code, path = None, _path("jar", jar, ".jar")
        runtime = "JAVA"
    return FunctionSpec(
        tenant=tenant,
        namespace=namespace,
        name=name,
        class_name=class_name,
        inputs=topics,
        output=output,
        log_topic=log_topic,
        parallelism=parallelism,
        user_config=user_config,
        processing_guarantees=str(guarantees),
        runtime=runtime,
        code=code,
        path=path,
    )


class SecretCodeError(Exception):
    """The code secret could not be read (missing, not granted); the message says why."""


def parse_with_secret_code(
    raw: Mapping[str, Any], read_secret: Callable[[str], Mapping[str, str]]
) -> FunctionSpec:
    """Validate a client declaration whose code may be in a Juju secret (``code-secret``).

    ``read_secret(uri)`` returns the secret's content or raises ``SecretCodeError``. The code is
    checked like inline ``py`` code (size, syntax); every refusal names ``code-secret``.
    """
    if not isinstance(raw, Mapping) or CODE_SECRET not in raw:
        return parse_spec(raw)
    uri = raw[CODE_SECRET]
    if "py" in raw or "jar" in raw:
        raise FunctionSpecError(CODE_SECRET, "give the code either in code-secret or py/jar")
    if not isinstance(uri, str) or not _SECRET_URI.fullmatch(uri):
        raise FunctionSpecError(CODE_SECRET, "the URI of a Juju secret ('secret:...')")
    try:
        content = read_secret(uri)
    except SecretCodeError as exc:
        raise FunctionSpecError(CODE_SECRET, str(exc)) from None
    code = content.get(CODE_SECRET_KEY) if isinstance(content, Mapping) else None
    if not isinstance(code, str) or not code.strip():
        raise FunctionSpecError(
            CODE_SECRET, f"the secret has no '{CODE_SECRET_KEY}' key holding Python code"
        )
    if "\n" not in code:
        code += "\n"  # one line of code is still code, never a path
    rest = {k: v for k, v in raw.items() if k != CODE_SECRET}
    try:
        return parse_spec({**rest, "py": code})
    except FunctionSpecError as exc:
        if exc.field == "py":
            raise FunctionSpecError(CODE_SECRET, exc.reason.replace("inline ", "")) from None
        raise


def check_owned(spec: FunctionSpec, namespace: str) -> None:
    """Refuse a function, or any of its topics, outside ``namespace`` (the caller's own)."""
    if spec.full_namespace != namespace:
        raise FunctionSpecError(
            "namespace",
            f"{spec.full_namespace} is not this relation's namespace ({namespace})",
        )
    for field, topic in (
        *(("inputs", t) for t in spec.inputs),
        ("output", spec.output),
        ("logTopic", spec.log_topic),
    ):
        match = _TOPIC.fullmatch(topic or "")
        if topic and match and f"{match.group(2)}/{match.group(3)}" != namespace:
            raise FunctionSpecError(field, f"{topic} is outside the namespace {namespace}")


def parse_key(value: object) -> tuple[str, str, str]:
    """``tenant/namespace/name`` of a function (an action parameter)."""
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 3 or not all(NAME_PATTERN.fullmatch(p) for p in parts):
        raise FunctionSpecError("function", "required: 'tenant/namespace/name'")
    return parts[0], parts[1], parts[2]


# -- the level-triggered reconcile ---------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """A declared function with its code, who declared it and the token it is deployed with."""

    spec: FunctionSpec
    package: bytes
    owner: str  # "operator" or the relation role
    token: str | None = None  # None: the admin token

    @property
    def digest(self) -> str:
        return self.spec.digest(self.package)


class FunctionsAdmin(Protocol):
    def list_functions(self, namespace: str) -> Any: ...
    def create_function(self, spec: FunctionSpec, package: bytes) -> Any: ...
    def update_function(self, spec: FunctionSpec, package: bytes) -> Any: ...
    def delete_function(self, key: str) -> Any: ...


def reconcile(
    admin_for: Callable[[str | None], FunctionsAdmin],
    desired: Mapping[str, Desired],
    deployed: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Make the worker hold exactly ``desired`` among what the charm deployed.

    ``deployed`` is the record {key: {"digest", "owner"}} of what the charm created; only those
    are ever deleted. Returns the new record and {key: problem} for what did not converge.
    """
    record = {k: dict(v) for k, v in deployed.items()}
    problems: dict[str, str] = {}
    admin = admin_for(None)
    listed: dict[str, set[str]] = {}
    keys = set(desired) | set(record)
    for namespace in sorted({k.rsplit("/", 1)[0] for k in keys}):
        result = admin.list_functions(namespace)
        if result.status == 404:  # the namespace (or tenant) does not exist
            listed[namespace] = set()
        elif result.ok:
            listed[namespace] = set(_json_list(result.body))
        else:
            for key in keys:
                if key.rsplit("/", 1)[0] == namespace:
                    problems[key] = f"listing functions failed: {result.describe()}"
    for key, want in sorted(desired.items()):
        namespace, name = key.rsplit("/", 1)
        if namespace not in listed:
            continue
        present = name in listed[namespace]
        previous = record.get(key)
        if present and previous is not None and previous.get("digest") == want.digest:
            continue
        client = admin_for(want.token)
        if present:
            result = client.update_function(want.spec, want.package)
        else:
            result = client.create_function(want.spec, want.package)
        if result.ok:
            record[key] = {"digest": want.digest, "owner": want.owner}
        else:
            problems[key] = f"{'updating' if present else 'creating'} failed: {result.describe()}"
    for key in sorted(set(record) - set(desired)):
        namespace, name = key.rsplit("/", 1)
        if namespace not in listed:
            continue  # the list failed: reported above, retried on the next reconcile
        if name not in listed[namespace]:
            del record[key]
            continue
        result = admin.delete_function(key)
        if result.ok or result.status == 404:
            del record[key]
        else:
            problems[key] = f"deleting failed: {result.describe()}"
    return record, problems


def status_summary(body: str) -> dict[str, str]:
    """Summarise ``GET .../status``: instances, running, counts, the last exception."""
    try:
        status = json.loads(body)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    instances = [i for i in status.get("instances") or [] if isinstance(i, dict)]
    processed = failed = system = 0
    last = ""
    last_time = -1
    for instance in instances:
        info = instance.get("status") or {}
        processed += int(info.get("numSuccessfullyProcessed") or 0)
        failed += int(info.get("numUserExceptions") or 0)
        system += int(info.get("numSystemExceptions") or 0)
        for exc in [
            *(info.get("latestUserExceptions") or []),
            *(info.get("latestSystemExceptions") or []),
        ]:
            if isinstance(exc, dict) and int(exc.get("timestampMs") or 0) > last_time:
                last_time = int(exc.get("timestampMs") or 0)
                last = str(exc.get("exceptionString") or "")[:500]
    return {
        "instances": str(int(status.get("numInstances") or 0)),
        "running": str(int(status.get("numRunning") or 0)),
        "processed": str(processed),
        "user-exceptions": str(failed),
        "system-exceptions": str(system),
        "last-exception": last or "none",
    }


# -- field checks ---------------------------------------------------------------------------


def _name(raw: Mapping[str, Any], field: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise FunctionSpecError(field, "required: letters, digits, '_', '.', '-'")
    return value


def _topic(field: str, value: object, tenant: str, namespace: str) -> str:
    """Check a short name (in the function's namespace) or a full ``persistent://t/n/x``."""
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        return f"persistent://{tenant}/{namespace}/{value}"
    match = _TOPIC.fullmatch(value) if isinstance(value, str) else None
    if match and all(NAME_PATTERN.fullmatch(match.group(i)) for i in (2, 3, 4)):
        return str(value)
    raise FunctionSpecError(
        field, "a topic name or 'persistent://tenant/namespace/topic' (letters, digits, _.-)"
    )


def _optional_topic(raw: Mapping[str, Any], field: str, tenant: str, ns: str) -> str | None:
    value = raw.get(field)
    return None if value in (None, "") else _topic(field, value, tenant, ns)


def _user_config(value: object) -> str:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise FunctionSpecError("userConfig", "an object with string keys")
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        raise FunctionSpecError("userConfig", "must hold JSON values only") from None
    if len(text.encode()) > MAX_USER_CONFIG_BYTES:
        raise FunctionSpecError("userConfig", f"at most {MAX_USER_CONFIG_BYTES} bytes as JSON")
    return text


def _path(field: str, value: object, suffix: str) -> str:
    if (
        not isinstance(value, str)
        or not _PATH.fullmatch(value)
        or not value.endswith(suffix)
        or "/../" in f"{value}/"
        or "/./" in f"{value}/"
    ):
        raise FunctionSpecError(
            field, f"an absolute path of a {suffix} file inside the broker container"
        )
    return value


def _python_code(value: object, class_name: str) -> tuple[str | None, str | None]:
    module = class_name.rsplit(".", 1)[0]
    if isinstance(value, str) and "\n" in value:
        if len(value.encode()) > MAX_CODE_BYTES:
            raise FunctionSpecError("py", f"inline code is limited to {MAX_CODE_BYTES} bytes")
        if "." in module:
            raise FunctionSpecError("className", "inline code is one module: 'module.Class'")
        try:
            compile(value, f"{module}.py", "exec")  # parsed only, never run here
        except SyntaxError as exc:
            raise FunctionSpecError(
                "py", f"not valid Python (line {exc.lineno}: {exc.msg})"
            ) from None
        except ValueError:
            raise FunctionSpecError("py", "not valid Python (a NUL byte)") from None
        return value, None
    path = _path("py", value, ".py")
    stem = path.rsplit("/", 1)[1][: -len(".py")]
    if module != stem:
        raise FunctionSpecError(
            "className", f"the module of a py file is its name: '{stem}.<Class>'"
        )
    return None, path


def _json_list(body: str) -> list[str]:
    try:
        value = json.loads(body)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
