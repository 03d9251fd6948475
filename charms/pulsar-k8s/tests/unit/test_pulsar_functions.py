"""Pulsar Functions: the declaration's validation, the reconcile, the actions."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ops
import pulsar_admin
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops import pebble, testing
from pulsar_config import PulsarConfig
from pulsar_functions import (
    FIELDS,
    Desired,
    FunctionSpecError,
    SecretCodeError,
    check_owned,
    load_config_text,
    parse_spec,
    parse_with_secret_code,
    reconcile,
    status_summary,
)
from pulsar_peer_state import FUNCTIONS_DECLARED_KEY, FUNCTIONS_DEPLOYED_KEY
from pulsar_render import functions_worker_settings
from pulsar_view import VIEW_CHECK, VIEW_PATH
from test_pulsar_charm import SECRET, bk_relation, expected_files, peers, state, zk_relation

CODE = (
    "from pulsar import Function\n\n"
    "class Up(Function):\n    def process(self, i, c):\n        return str(i).upper()\n"
)
BASE: dict[str, Any] = {
    "tenant": "acme",
    "namespace": "words",
    "name": "up",
    "className": "up.Up",
    "py": CODE,
    "inputs": ["in"],
    "output": "out",
    "logTopic": "persistent://acme/words/log",
    "userConfig": {"count-topic": "counts"},
}
KEY = "acme/words/up"


def spec(**changes: Any):
    return parse_spec({**BASE, **changes})


# -- the declaration -----------------------------------------------------------------------------


def test_a_valid_declaration_is_normalised():
    s = spec()
    assert s.key == KEY and s.runtime == "PYTHON" and s.filename == "up.py"
    assert s.inputs == ("persistent://acme/words/in",)
    assert s.output == "persistent://acme/words/out"
    config = s.function_config()
    assert config["userConfig"] == {"count-topic": "counts"}
    assert config["processingGuarantees"] == "ATLEAST_ONCE" and config["parallelism"] == 1
    assert parse_spec(s.declaration()) == s  # what the charm records reads back identical


def test_a_py_path_names_the_module():
    s = spec(py="/pulsar/examples/up.py")
    assert s.path == "/pulsar/examples/up.py" and s.code is None and s.filename == "up.py"
    with pytest.raises(FunctionSpecError, match=r"^className: the module of a py file"):
        spec(py="/pulsar/examples/other.py")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tenant": "a b"}, "tenant"),
        ({"namespace": None}, "namespace"),
        ({"name": "../x"}, "name"),
        ({"inputs": []}, "inputs"),
        ({"inputs": ["persistent://a/b"]}, "inputs"),
        ({"output": "in"}, "output"),
        ({"logTopic": "a\nb"}, "logTopic"),
        ({"parallelism": "two"}, "parallelism"),
        ({"parallelism": True}, "parallelism"),
        ({"parallelism": 0}, "parallelism"),
        ({"userConfig": ["x"]}, "userConfig"),
        ({"userConfig": {"x": float("nan")}}, "userConfig"),
        ({"processingGuarantees": "SOMETIMES"}, "processingGuarantees"),
        ({"className": "Up"}, "className"),
        ({"py": "def broken(:\n"}, "py"),
        ({"py": "/etc/../passwd.py"}, "py"),
        ({"py": "relative/up.py"}, "py"),
        ({"jar": "/pulsar/x.jar"}, "py"),
        ({"cleanupSubscription": True}, "cleanupSubscription"),
    ],
)
def test_every_field_is_checked_and_named(changes, field):
    with pytest.raises(FunctionSpecError) as refused:
        spec(**changes)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_config_text_is_yaml_or_json_object():
    assert load_config_text("config", json.dumps(BASE)) == BASE
    assert load_config_text("config", "tenant: acme\nname: up\n") == {
        "tenant": "acme",
        "name": "up",
    }
    for bad in ("", "[1, 2]", "{not: [yaml", "just text"):
        with pytest.raises(FunctionSpecError, match=r"^config: "):
            load_config_text("config", bad)


def test_a_function_outside_the_callers_namespace_is_refused():
    check_owned(spec(), "acme/words")
    with pytest.raises(FunctionSpecError, match=r"^namespace: acme/words is not"):
        check_owned(spec(), "other/ns")
    with pytest.raises(FunctionSpecError, match=r"^output: persistent://other/ns/x is outside"):
        check_owned(spec(output="persistent://other/ns/x"), "acme/words")


def test_the_digest_follows_code_and_config():
    s = spec()
    assert s.digest(b"a") == spec().digest(b"a")
    assert s.digest(b"a") != s.digest(b"b")
    assert s.digest(b"a") != spec(parallelism=2).digest(b"a")


def test_the_worker_runs_instances_with_the_submitters_token():
    from pulsar_render import BrokerInputs
    from test_pulsar_charm import BK_URI, UNIT_ADDRESS, ZK_HOSTS

    config = PulsarConfig(functions_worker_enabled=True)
    settings = functions_worker_settings(BrokerInputs(config, UNIT_ADDRESS, ZK_HOSTS, BK_URI))
    assert settings["functionAuthProviderClassName"].endswith("ClearTextFunctionTokenAuthProvider")
    assert settings["authorizationEnabled"] and settings["authenticationEnabled"]


# -- the reconcile -------------------------------------------------------------------------------


@dataclass
class FakeWorker:
    """The worker's function list per namespace, and every call made with which token."""

    functions: dict[str, set[str]] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    token: str | None = None

    def with_token(self, token: str | None) -> FakeWorker:
        self.token = token
        return self

    def _result(self, name: str, key: str, body: str = "") -> pulsar_admin.AdminResult:
        self.calls.append((name, key, self.token))
        status = self.fail.get(name, 200)
        return pulsar_admin.AdminResult(status, body if status < 300 else '{"reason": "boom"}')

    def list_functions(self, namespace: str):
        return self._result(
            "list", namespace, json.dumps(sorted(self.functions.get(namespace, ())))
        )

    def create_function(self, spec, package):
        result = self._result("create", spec.key)
        if result.ok:
            self.functions.setdefault(spec.full_namespace, set()).add(spec.name)
        return result

    def update_function(self, spec, package):
        return self._result("update", spec.key)

    def delete_function(self, key):
        result = self._result("delete", key)
        if result.ok:
            namespace, name = key.rsplit("/", 1)
            self.functions.get(namespace, set()).discard(name)
        return result

    def function_status(self, key):
        return self._result("status", key, STATUS_BODY)


def test_reconcile_creates_then_is_a_no_op_then_updates_then_deletes():
    worker = FakeWorker()
    want = {KEY: Desired(spec(), CODE.encode(), "operator")}
    record, problems = reconcile(worker.with_token, want, {})
    assert problems == {} and worker.functions == {"acme/words": {"up"}}
    assert record == {KEY: {"digest": spec().digest(CODE.encode()), "owner": "operator"}}
    worker.calls.clear()
    assert reconcile(worker.with_token, want, record) == (record, {})
    assert [c[0] for c in worker.calls] == ["list"]  # nothing changed: nothing written
    changed = {KEY: Desired(spec(), b"new code", "operator")}
    record, _ = reconcile(worker.with_token, changed, record)
    assert worker.calls[-1][:2] == ("update", KEY)
    record, _ = reconcile(worker.with_token, {}, record)
    assert worker.calls[-1][:2] == ("delete", KEY) and record == {}


def test_a_lost_create_is_recreated_and_foreign_functions_are_left_alone():
    worker = FakeWorker(functions={"acme/words": {"handmade"}})
    recorded = {KEY: {"digest": "old", "owner": "operator"}}
    want = {KEY: Desired(spec(), CODE.encode(), "relation-7", token="relation-token")}
    _, problems = reconcile(worker.with_token, want, recorded)
    assert problems == {}
    assert ("create", KEY, "relation-token") in worker.calls  # deployed with the role's token
    assert "handmade" in worker.functions["acme/words"]
    assert not any(c[0] == "delete" for c in worker.calls)


def test_failures_are_reported_per_function_and_not_recorded():
    worker = FakeWorker(fail={"create": 503})
    want = {KEY: Desired(spec(), CODE.encode(), "operator")}
    record, problems = reconcile(worker.with_token, want, {})
    assert record == {} and problems[KEY] == "creating failed: HTTP 503: boom"
    worker = FakeWorker(fail={"list": 0})
    record, problems = reconcile(worker.with_token, {}, {KEY: {"digest": "d", "owner": "o"}})
    assert KEY in record and problems[KEY].startswith("listing functions failed")


STATUS_BODY = json.dumps(
    {
        "numInstances": 2,
        "numRunning": 1,
        "instances": [
            {
                "status": {
                    "numSuccessfullyProcessed": 5,
                    "numUserExceptions": 1,
                    "latestUserExceptions": [{"exceptionString": "old", "timestampMs": 1}],
                }
            },
            {
                "status": {
                    "numSuccessfullyProcessed": 2,
                    "numSystemExceptions": 1,
                    "latestSystemExceptions": [{"exceptionString": "new", "timestampMs": 9}],
                }
            },
        ],
    }
)


def test_status_summary():
    assert status_summary(STATUS_BODY) == {
        "instances": "2",
        "running": "1",
        "processed": "7",
        "user-exceptions": "1",
        "system-exceptions": "1",
        "last-exception": "new",
    }
    assert status_summary("not json")["instances"] == "0"


# -- the charm: actions and the leader's reconcile -------------------------------------------


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> FakeWorker:
    fake = FakeWorker()

    def factory(url: str, token: str, timeout: float = 0, web: Any = None) -> FakeWorker:
        fake.token = token
        return fake

    monkeypatch.setattr(pulsar_admin, "PulsarAdmin", factory)
    return fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


def worker_state(root: Path, *, leader: bool = True, enabled: bool = True, app_data=None):
    config = PulsarConfig(functions_worker_enabled=enabled)
    return state(
        root,
        leader=leader,
        running=True,
        config={"functions-worker-enabled": enabled},
        files=expected_files(config),
        relations=[zk_relation(SECRET), bk_relation(), peers(app_data=app_data)],
        secrets=[SECRET],
    )


def _peer_data(out: testing.State) -> dict[str, str]:
    peer = next(r for r in out.relations if isinstance(r, testing.PeerRelation))
    return dict(peer.local_app_data)


def test_deploy_function_records_and_creates(ctx, root, worker):
    out = ctx.run(
        ctx.on.action("deploy-function", params={"config": json.dumps(BASE)}), worker_state(root)
    )
    assert ctx.action_results is not None and ctx.action_results["function"] == KEY
    data = _peer_data(out)
    assert KEY in json.loads(data[FUNCTIONS_DECLARED_KEY])
    assert json.loads(data[FUNCTIONS_DEPLOYED_KEY])[KEY]["owner"] == "operator"
    assert ("create", KEY, worker.token) in worker.calls


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not: [yaml", r"^config: "),
        (json.dumps({**BASE, "parallelism": "two"}), r"^parallelism: "),
        (json.dumps({**BASE, "py": "def broken(:\n"}), r"^py: not valid Python"),
    ],
)
def test_a_malformed_config_fails_before_any_call(ctx, root, worker, config, message):
    with pytest.raises(testing.ActionFailed, match=message):
        ctx.run(ctx.on.action("deploy-function", params={"config": config}), worker_state(root))
    assert worker.calls == []


def test_deploy_needs_the_leader_and_the_worker(ctx, root, worker):
    action = ctx.on.action("deploy-function", params={"config": json.dumps(BASE)})
    with pytest.raises(testing.ActionFailed, match="on the leader unit"):
        ctx.run(action, worker_state(root, leader=False))
    with pytest.raises(testing.ActionFailed, match="functions-worker-enabled is false"):
        ctx.run(action, worker_state(root, enabled=False))
    assert worker.calls == []


def test_a_failed_create_fails_the_action_and_is_not_kept(ctx, root, worker):
    worker.fail["create"] = 400
    with pytest.raises(testing.ActionFailed, match="creating failed: HTTP 400: boom"):
        out = ctx.run(
            ctx.on.action("deploy-function", params={"config": json.dumps(BASE)}),
            worker_state(root),
        )
    out = ctx.run(ctx.on.update_status(), worker_state(root))
    assert FUNCTIONS_DECLARED_KEY not in _peer_data(out)


def test_a_recorded_declaration_converges_on_any_event(ctx, root, worker):
    declared = json.dumps({KEY: spec().declaration()})
    out = ctx.run(
        ctx.on.update_status(), worker_state(root, app_data={FUNCTIONS_DECLARED_KEY: declared})
    )
    assert ("create", KEY, worker.token) in worker.calls
    assert "1/1 functions" in out.unit_status.message
    worker.calls.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert [c[0] for c in worker.calls] == ["list"]


def test_delete_function_removes_it(ctx, root, worker):
    declared = json.dumps({KEY: spec().declaration()})
    deployed = json.dumps({KEY: {"digest": spec().digest(CODE.encode()), "owner": "operator"}})
    worker.functions = {"acme/words": {"up"}}
    app_data = {FUNCTIONS_DECLARED_KEY: declared, FUNCTIONS_DEPLOYED_KEY: deployed}
    out = ctx.run(
        ctx.on.action("delete-function", params={"function": KEY}),
        worker_state(root, app_data=app_data),
    )
    assert ("delete", KEY, worker.token) in worker.calls and worker.functions[
        "acme/words"
    ] == set()
    assert FUNCTIONS_DECLARED_KEY not in _peer_data(
        out
    ) and FUNCTIONS_DEPLOYED_KEY not in _peer_data(out)
    with pytest.raises(testing.ActionFailed, match="not declared"):
        ctx.run(ctx.on.action("delete-function", params={"function": KEY}), out)


def test_function_status_and_list(ctx, root, worker):
    ctx.run(ctx.on.action("function-status", params={"function": KEY}), worker_state(root))
    assert ctx.action_results is not None and ctx.action_results["processed"] == "7"
    with pytest.raises(testing.ActionFailed, match=r"^function: required"):
        ctx.run(ctx.on.action("function-status", params={"function": "a/b"}), worker_state(root))
    worker.functions = {"acme/words": {"up"}}
    ctx.run(
        ctx.on.action("list-functions", params={"namespace": "acme/words"}), worker_state(root)
    )
    assert ctx.action_results is not None and json.loads(ctx.action_results["worker"]) == ["up"]


def test_a_corrupt_declaration_record_waits_naming_the_field(ctx, root, worker):
    out = ctx.run(
        ctx.on.update_status(), worker_state(root, app_data={FUNCTIONS_DECLARED_KEY: "{"})
    )
    assert out.unit_status == ops.WaitingStatus(
        f"cluster relation: {FUNCTIONS_DECLARED_KEY} is not JSON; waiting for valid data"
    )


# -- functions declared on a client relation ------------------------------------------------------


class FakeBrokerAdmin(FakeWorker):
    """The worker plus the tenant/namespace/permission calls the client serving makes."""

    def _ok(self, name: str, *args: Any) -> pulsar_admin.AdminResult:
        self.calls.append((name, json.dumps(args), self.token))
        return pulsar_admin.AdminResult(204, "")

    def ensure_tenant(self, tenant, clusters, admin_roles=()):
        return self._ok("ensure_tenant", tenant)

    def remove_tenant_admin(self, tenant, role):
        return self._ok("remove_tenant_admin", tenant, role)

    def create_namespace(self, namespace):
        return self._ok("create_namespace", namespace)

    def grant(self, namespace, role, actions):
        return self._ok("grant", namespace, role, sorted(actions))

    def revoke(self, namespace, role):
        return self._ok("revoke", namespace, role)


@pytest.fixture
def broker_admin(monkeypatch: pytest.MonkeyPatch) -> FakeBrokerAdmin:
    fake = FakeBrokerAdmin()

    def factory(url: str, token: str, timeout: float = 0, web: Any = None) -> FakeBrokerAdmin:
        fake.token = token
        return fake

    monkeypatch.setattr(pulsar_admin, "PulsarAdmin", factory)
    return fake


def function_relation(functions: list[dict[str, Any]]) -> testing.Relation:
    data = {
        "namespace": "acme/words",
        "requested-secrets": '["username", "token"]',
        "functions": json.dumps(functions),
    }
    return testing.Relation("pulsar", remote_app_name="shop", remote_app_data=data)


def relation_state(root: Path, relation: testing.Relation) -> testing.State:
    config = PulsarConfig(functions_worker_enabled=True)
    return state(
        root,
        running=True,
        config={"functions-worker-enabled": True},
        files=expected_files(config),
        relations=[zk_relation(SECRET), bk_relation(), peers(), relation],
        secrets=[SECRET],
    )


def test_a_relation_deploys_its_functions_with_its_role(ctx, root, broker_admin):
    relation = function_relation([BASE])
    out = ctx.run(ctx.on.relation_changed(relation), relation_state(root, relation))
    role = f"relation-{relation.id}"
    grants = [c for c in broker_admin.calls if c[0] == "grant"]
    assert grants and "functions" in json.loads(grants[-1][1])[2]
    create = next(c for c in broker_admin.calls if c[0] == "create")
    assert (
        create[1] == KEY and create[2] not in (None, "") and create[2] != broker_admin.calls[0][2]
    )
    assert json.loads(_peer_data(out)[FUNCTIONS_DEPLOYED_KEY])[KEY]["owner"] == role
    assert not out.get_relation(relation.id).local_app_data.get("status")
    # The relation goes: its function goes with it.
    broker_admin.calls.clear()
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert ("delete", KEY) in [c[:2] for c in broker_admin.calls]
    assert FUNCTIONS_DEPLOYED_KEY not in _peer_data(out)


def test_a_relation_cannot_deploy_into_another_namespace(ctx, root, broker_admin):
    relation = function_relation([{**BASE, "tenant": "other"}])
    out = ctx.run(ctx.on.relation_changed(relation), relation_state(root, relation))
    assert not any(c[0] == "create" for c in broker_admin.calls)
    (status,) = json.loads(out.get_relation(relation.id).local_app_data["status"])
    assert status["code"] == 5005
    assert status["message"].startswith("functions: [0].namespace: other/words is not")
    # the client keeps its namespace and token: only the function is refused
    assert out.get_relation(relation.id).local_app_data.get("secret-user")


def test_a_malformed_functions_field_is_refused_on_the_relation(ctx, root, broker_admin):
    relation = function_relation([])
    relation = testing.Relation(
        "pulsar",
        remote_app_name="shop",
        remote_app_data={**relation.remote_app_data, "functions": "{not json"},
    )
    out = ctx.run(ctx.on.relation_changed(relation), relation_state(root, relation))
    (status,) = json.loads(out.get_relation(relation.id).local_app_data["status"])
    assert status["code"] == 5005 and status["message"] == "functions: is not JSON"


def code_secret(code: str | dict[str, str] = CODE) -> testing.Secret:
    """A secret the client ("shop") owns and granted to the broker on its relation."""
    content = code if isinstance(code, dict) else {"code": code}
    return testing.Secret(tracked_content=content, owner=None)


def secret_state(root: Path, relation: testing.Relation, *secrets: testing.Secret):
    base = relation_state(root, relation)
    return dataclasses.replace(base, secrets=[*base.secrets, *secrets])


def in_secret(secret: testing.Secret | object, **changes: Any) -> dict[str, Any]:
    uri = secret.id if isinstance(secret, testing.Secret) else secret
    return {**{k: v for k, v in BASE.items() if k != "py"}, "code-secret": uri, **changes}


def test_a_granted_code_secret_deploys_and_a_new_revision_updates(ctx, root, broker_admin):
    secret = code_secret()
    relation = function_relation([in_secret(secret)])
    out = ctx.run(ctx.on.relation_changed(relation), secret_state(root, relation, secret))
    assert ("create", KEY) in [c[:2] for c in broker_admin.calls]
    assert not out.get_relation(relation.id).local_app_data.get("status")
    recorded = json.loads(_peer_data(out)[FUNCTIONS_DEPLOYED_KEY])[KEY]
    assert recorded["digest"] == spec().digest(CODE.encode())  # same as the inline form
    # Nothing changed: nothing is written to the worker.
    broker_admin.calls.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert [c[0] for c in broker_admin.calls if c[0] in ("create", "update", "delete")] == []
    # The client publishes a new revision: secret-changed updates the function.
    new_code = CODE.replace("upper()", "lower()")
    (tracked,) = [s for s in out.secrets if s.id == secret.id]
    newer = dataclasses.replace(tracked, latest_content={"code": new_code})
    out = dataclasses.replace(out, secrets=[s for s in out.secrets if s.id != secret.id] + [newer])
    broker_admin.calls.clear()
    out = ctx.run(ctx.on.secret_changed(newer), out)
    assert [c[:2] for c in broker_admin.calls if c[0] in ("create", "update")] == [("update", KEY)]
    recorded = json.loads(_peer_data(out)[FUNCTIONS_DEPLOYED_KEY])[KEY]
    assert recorded["digest"] == spec().digest(new_code.encode())


@pytest.mark.parametrize(
    ("secrets", "declared", "message"),
    [
        ((), in_secret("secret:cs5l6kvmp25c7ac0kbng"), "no secret secret:cs5l6kvmp25c7ac0kbng"),
        ((code_secret({"x": "y"}),), None, "the secret has no 'code' key"),
        ((code_secret("def broken(:\n"),), None, "not valid Python (line 1"),
        ((code_secret("x" * (64 * 1024 + 1)),), None, "code is limited to 65536 bytes"),
        ((code_secret(),), {"py": CODE}, "give the code either in code-secret or py/jar"),
        ((), in_secret("not a uri"), "the URI of a Juju secret"),
        ((), in_secret(["secret:x"]), "the URI of a Juju secret"),
    ],
)
def test_a_missing_or_bad_code_secret_is_refused_naming_the_field(
    ctx, root, broker_admin, secrets, declared, message
):
    if declared is None or "py" in declared:
        declared = in_secret(secrets[0], **(declared or {}))
    relation = function_relation([declared])
    out = ctx.run(ctx.on.relation_changed(relation), secret_state(root, relation, *secrets))
    assert not any(c[0] in ("create", "update") for c in broker_admin.calls)
    (status,) = json.loads(out.get_relation(relation.id).local_app_data["status"])
    assert status["code"] == 5005
    assert status["message"].startswith("functions: [0].code-secret: ")
    assert message in status["message"]
    assert out.get_relation(relation.id).local_app_data.get("secret-user")  # still served


def test_an_ungranted_code_secret_is_refused_naming_the_field(
    ctx, root, broker_admin, monkeypatch: pytest.MonkeyPatch
):
    secret = code_secret()
    relation = function_relation([in_secret(secret)])
    real = ops.Model.get_secret

    def get_secret(self, *, id=None, label=None):
        if id == secret.id:
            raise ops.ModelError("ERROR permission denied")
        return real(self, id=id, label=label)

    monkeypatch.setattr(ops.Model, "get_secret", get_secret)
    out = ctx.run(ctx.on.relation_changed(relation), secret_state(root, relation, secret))
    (status,) = json.loads(out.get_relation(relation.id).local_app_data["status"])
    assert status["code"] == 5005
    assert status["message"].startswith(f"functions: [0].code-secret: secret {secret.id} is not")
    assert "grant it to pulsar-k8s" in status["message"]
    assert not any(c[0] == "create" for c in broker_admin.calls)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from([*FIELDS, "code-secret", "x"]), JSON_VALUES),
    content=st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=60), max_size=3),
)
def test_any_code_secret_declaration_parses_or_names_the_field(changes, content):
    """Whatever the declaration and the secret hold: a spec, or a refusal naming a field."""

    def read(uri: str) -> dict[str, str]:
        if content is None:
            raise SecretCodeError(f"no secret {uri}")
        return content

    raw = {**in_secret("secret:cs5l6kvmp25c7ac0kbng"), **changes}
    try:
        parsed = parse_with_secret_code(raw, read)
    except FunctionSpecError as exc:
        assert exc.field in (*FIELDS, "code-secret", "x"), exc
    else:
        assert parsed.code is not None or parsed.path is not None


# -- the REST calls ------------------------------------------------------------------------------


def test_create_posts_multipart_config_and_code_with_the_token(monkeypatch: pytest.MonkeyPatch):
    sent: list[Any] = []

    class Response:
        status = 204

        def __enter__(self):
            return self

        def __exit__(self, *args: Any) -> None:
            return None

        def read(self) -> bytes:
            return b""

    def urlopen(request, timeout: float = 0, context=None):
        sent.append((request, timeout))
        return Response()

    monkeypatch.setattr(pulsar_admin.urllib.request, "urlopen", urlopen)
    admin = pulsar_admin.PulsarAdmin("http://b:8080/", "admin-token")
    assert admin.with_token("role-token").create_function(spec(), CODE.encode()).ok
    request, timeout = sent[0]
    assert request.get_method() == "POST" and timeout == pulsar_admin.FUNCTIONS_TIMEOUT
    assert request.full_url == "http://b:8080/admin/v3/functions/acme/words/up"
    assert request.get_header("Authorization") == "Bearer role-token"
    boundary = request.get_header("Content-type").split("boundary=")[1]
    parts = request.data.split(f"--{boundary}".encode())
    assert b'name="functionConfig"' in parts[1]
    assert json.loads(parts[1].split(b"\r\n\r\n", 1)[1]) == spec().function_config()
    assert b'name="data"; filename="up.py"' in parts[2]
    assert parts[2].split(b"\r\n\r\n", 1)[1] == CODE.encode() + b"\r\n"
    assert parts[3] == b"--\r\n"


def test_nothing_is_called_until_the_worker_has_a_leader(ctx, root, worker, fake_broker):
    fake_broker.worker_ready = False
    declared = json.dumps({KEY: spec().declaration()})
    out = ctx.run(
        ctx.on.update_status(), worker_state(root, app_data={FUNCTIONS_DECLARED_KEY: declared})
    )
    assert worker.calls == []
    assert out.unit_status == ops.ActiveStatus(
        "broker ready (cluster pulsar); functions worker starting"
    )
    container = out.get_container("pulsar")
    assert "functions-worker-view" in container.plan.checks  # the event that wakes the charm
    assert (root / "logs/charm-view/functions-worker-state").read_text().split()[0] == "down"
    fake_broker.worker_ready = True  # the view check fails: live "ready", recorded "down"
    check = testing.CheckInfo(
        "functions-worker-view", status=pebble.CheckStatus.DOWN, failures=1, threshold=1
    )
    woken = dataclasses.replace(container, check_infos={check})
    out = ctx.run(
        ctx.on.pebble_check_failed(woken, check), dataclasses.replace(out, containers={woken})
    )
    assert ("create", KEY, worker.token) in worker.calls
    assert (root / "logs/charm-view/functions-worker-state").read_text().split()[0] == "ready"


def test_a_failed_worker_call_schedules_its_retry(ctx, root, worker):
    """A create the worker refused is retried on the broker-view check event, not update-status."""
    declared = json.dumps({KEY: spec().declaration()})
    worker.fail["create"] = 503
    out = ctx.run(
        ctx.on.update_status(), worker_state(root, app_data={FUNCTIONS_DECLARED_KEY: declared})
    )
    view = (root / Path(VIEW_PATH).relative_to("/pulsar")).read_text()
    assert view.startswith("retry:ready ")
    worker.fail.clear()
    worker.calls.clear()
    check = testing.CheckInfo(VIEW_CHECK, status=pebble.CheckStatus.DOWN, failures=1, threshold=1)
    container = dataclasses.replace(out.get_container("pulsar"), check_infos={check})
    out = ctx.run(
        ctx.on.pebble_check_failed(container, check),
        dataclasses.replace(out, containers={container}),
    )
    assert ("create", KEY, worker.token) in worker.calls
    assert "1/1 functions" in out.unit_status.message
    assert not (root / Path(VIEW_PATH).relative_to("/pulsar")).read_text().startswith("retry:")
