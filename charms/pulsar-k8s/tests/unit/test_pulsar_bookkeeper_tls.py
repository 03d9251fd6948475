"""The brokers' BookKeeper client over TLS (issue 9): when the `bookkeeper` relation says the
bookies serve TLS, the broker trusts the published CA and starts TLS with its own certificate,
one restart per unit; a bad CA waits naming the field; no certificate stays plain text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ops
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from pulsar_bookkeeper_tls import (
    BOOKKEEPER_CA_PATH,
    CERT_REFRESH_SECONDS,
    bookkeeper_client_tls_properties,
    bookkeeper_tls_files,
)
from pulsar_config import PulsarConfig
from pulsar_render import BROKER_CONF_PATH, BrokerInputs, broker_properties
from pulsar_tls import TLS_PATHS
from test_pulsar_charm import (
    BK_URI,
    UNIT_ADDRESS,
    ZK_HOSTS,
    bk_relation,
    expected_files,
    full_state,
)
from test_pulsar_tls import _answered, root  # noqa: F401  # root: a fixture

CA = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"


def conf(root_: Path) -> dict[str, str]:
    text = (root_ / Path(BROKER_CONF_PATH).relative_to("/pulsar")).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def with_bookies_tls(state: testing.State, tls: str = "enabled", ca: str = CA) -> testing.State:
    """The bookkeeper relation of ``state`` saying the bookies serve TLS with ``ca``."""
    old = next(r for r in state.relations if r.endpoint == "bookkeeper")
    data = {**bk_relation().remote_app_data, "tls": tls, "tls-ca": ca}
    assert isinstance(old, testing.Relation)
    new = dataclasses.replace(old, remote_app_data=data)
    return dataclasses.replace(state, relations=[*(r for r in state.relations if r != old), new])


# ---- renderers ----------------------------------------------------------------------------


@given(enabled=st.booleans())
def test_only_the_bookkeeper_client_keys_change(enabled):
    base = BrokerInputs(PulsarConfig(), UNIT_ADDRESS, ZK_HOSTS, BK_URI)
    plain = broker_properties(base)
    tls = broker_properties(dataclasses.replace(base, bookkeeper_tls=enabled))
    changed = {k for k in tls if tls[k] != plain.get(k)}
    assert changed == set(bookkeeper_client_tls_properties(enabled))
    assert all(k.lower().startswith("bookkeepertls") for k in changed)


def test_the_client_trusts_the_bookies_ca_with_the_brokers_key_pair():
    props = bookkeeper_client_tls_properties(True)
    assert props["bookkeeperTLSProviderFactoryClass"] == (
        "org.apache.bookkeeper.tls.TLSContextFactory"
    )
    # the pinned Pulsar passes the bookkeeperTLS* keys on only under this switch
    assert props["bookkeeperTLSClientAuthentication"] == "true"
    assert props["bookkeeperTLSTrustCertsFilePath"] == BOOKKEEPER_CA_PATH
    assert (props["bookkeeperTLSTrustCertTypes"], props["bookkeeperTLSKeyFileType"]) == (
        "PEM",
        "PEM",
    )
    assert props["bookkeeperTLSKeyFilePath"] == TLS_PATHS.private_key
    assert props["bookkeeperTLSCertificateFilePath"] == TLS_PATHS.certificate
    assert props["bookkeeperTlsCertFilesRefreshDurationSeconds"] == str(CERT_REFRESH_SECONDS)
    assert bookkeeper_client_tls_properties(False) == {}
    assert bookkeeper_tls_files("") == {}
    assert bookkeeper_tls_files(CA) == {BOOKKEEPER_CA_PATH: CA}


# ---- the reconcile ------------------------------------------------------------------------


def test_tls_bookies_turn_the_client_to_tls_with_one_restart(ctx, root, calls):  # noqa: F811
    state, _ = _answered(ctx, root, calls)
    on = ctx.run(ctx.on.config_changed(), state)
    assert "bookkeeperTLSClientAuthentication" not in conf(root)
    calls.log.clear()
    out = ctx.run(ctx.on.update_status(), with_bookies_tls(on))
    props = conf(root)
    assert props["bookkeeperTLSClientAuthentication"] == "true"
    assert (root / Path(BOOKKEEPER_CA_PATH).relative_to("/pulsar")).read_text() == CA
    # one restart (the lock is free), the CA file pushed first
    assert calls.names().count("start_broker") == 1
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)"), out.unit_status

    # converged: nothing written again
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert calls.names() == []
    assert again.unit_status == out.unit_status


@pytest.mark.parametrize("ca", ["", "not a certificate", CA + "bookkeeperTLSKeyFilePath=/x\n"])
def test_a_bad_or_missing_ca_waits_naming_the_field_and_touches_nothing(
    ctx,
    root,  # noqa: F811
    calls,
    ca,
):
    before = full_state(root, running=True, files=expected_files())
    out = ctx.run(ctx.on.update_status(), with_bookies_tls(before, ca=ca))
    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert "bookkeeper relation: tls-ca" in out.unit_status.message
    assert calls.names() == []


def test_without_its_own_certificate_the_broker_stays_plain_text_and_says_so(
    ctx,
    root,  # noqa: F811
    calls,
):
    before = full_state(root, running=True, files=expected_files())
    out = ctx.run(ctx.on.update_status(), with_bookies_tls(before))
    assert "bookkeeperTLSClientAuthentication" not in conf(root)
    assert "start_broker" not in calls.names()
    assert out.unit_status == ops.ActiveStatus(
        "broker ready (cluster pulsar); plain text to bookies: relate certificates for TLS"
    )


def test_bookies_back_to_plain_text_turn_the_client_back(ctx, root, calls):  # noqa: F811
    state, _ = _answered(ctx, root, calls)
    on = ctx.run(ctx.on.update_status(), with_bookies_tls(ctx.run(ctx.on.config_changed(), state)))
    assert conf(root)["bookkeeperTLSClientAuthentication"] == "true"
    calls.log.clear()
    out = ctx.run(ctx.on.update_status(), with_bookies_tls(on, tls="", ca=""))
    assert "bookkeeperTLSClientAuthentication" not in conf(root)
    assert calls.names().count("start_broker") == 1
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)"), out.unit_status
