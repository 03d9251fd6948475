"""TLS through the ``certificates`` relation (interface ``tls-certificates``), for every charm.

A thin layer over the PyPI library ``charmlibs-interfaces-tls-certificates`` (requirer side,
``TLSCertificatesRequiresV4`` in unit mode): the library generates each unit's private key,
keeps it in a unit-owned Juju secret (it never leaves the unit otherwise), sends the CSR and
renews the certificate before it expires. This module decides what the CSR asks for (the
unit's stable name, the application's Service name, anything else clients use) and turns what
the provider answered into a typed :class:`TlsState` the charms render their files from.

Usage::

    self.tls = TlsRequirer(self, sans=tls_sans(self.unit.name, self.app.name, self.model.name))
    ...
    state = self.tls.state()        # InvalidField when the provider's answer is refused
    if state.waiting:
        return statuses.awaiting("a certificate on the certificates relation")
    files = state.material.files(paths) if state.material else {}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import ops
from charmlibs.interfaces.tls_certificates import (
    CertificateRequestAttributes,
    Mode,
    PrivateKey,
    ProviderCertificate,
    TLSCertificatesError,
    TLSCertificatesRequiresV4,
)
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.validation import InvalidField, is_hostname
from charms.pulsar_k8s.v0.view_check import (
    VIEW_DIR,
    check_script,
    exec_check,
    record_content,
    record_view,
    recorded_state,
)
from charms.pulsar_k8s.v0.workload import Workload
from cryptography.hazmat.primitives import serialization

LIBID = "3f1a7c2e9b4d4e6f8a0c5d7e9f1b3a5c"
LIBAPI = 0
LIBPATCH = 4

logger = logging.getLogger(__name__)

RELATION = "certificates"
# X.509 limits a common name to 64 characters; the SANs carry the full names.
_MAX_COMMON_NAME = 64


def service_fqdn(app_name: str, model_name: str) -> str:
    """Return the Kubernetes Service name in front of every unit of the application."""
    return f"{app_name}.{model_name}.svc.cluster.local"


def tls_sans(
    unit_name: str, app_name: str, model_name: str, extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """DNS names the unit's certificate covers: its stable pod name, the Service, ``extra``.

    The pod name is what every listener binds to and what Pulsar's lookups hand to clients;
    the Service name is what the client relation publishes.
    """
    number = unit_name.rsplit("/", 1)[-1]
    names = [
        f"{app_name}-{number}.{app_name}-endpoints.{model_name}.svc.cluster.local",
        service_fqdn(app_name, model_name),
        f"{app_name}-endpoints.{model_name}.svc.cluster.local",
        *extra,
    ]
    return tuple(dict.fromkeys(name for name in names if name))


def parse_extra_sans(text: object) -> tuple[str, ...] | None:
    """Comma-separated DNS names (e.g. a load balancer's) for the certificate; None if invalid.

    Blank items are ignored; an IP address or anything that is not a host name is refused.
    """
    if not isinstance(text, str):
        return None
    names = [item.strip() for item in text.split(",") if item.strip()]
    for name in names:
        try:
            ipaddress.ip_address(name)
            return None
        except ValueError:
            pass
        if not is_hostname(name):
            return None
    return tuple(dict.fromkeys(names))


def certificate_request(unit_name: str, sans: Iterable[str]) -> CertificateRequestAttributes:
    """Build one unit's request: common name = unit name, every client name as a SAN."""
    return CertificateRequestAttributes(
        common_name=unit_name[:_MAX_COMMON_NAME], sans_dns=frozenset(sans)
    )


def pkcs8_pem(private_key: str) -> str:
    """Return the key as unencrypted PKCS#8 PEM (Pulsar's Java TLS stack reads only PKCS#8)."""
    key = serialization.load_pem_private_key(private_key.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class TlsPaths:
    """Where a charm puts the three PEM files in its container."""

    certificate: str
    private_key: str
    ca: str


@dataclass(frozen=True)
class TlsMaterial:
    """One unit's certificate: the leaf (with intermediates), its key, and the CA to trust.

    ``private_key`` is PKCS#8 PEM; ``repr`` hides it so it never reaches a log line.
    """

    certificate: str
    ca: str
    private_key: str = field(repr=False)
    sans: tuple[str, ...] = ()

    def files(self, paths: TlsPaths) -> dict[str, str]:
        """Return the PEM files by container path (push the key private, 0600)."""
        return {
            paths.certificate: self.certificate,
            paths.private_key: self.private_key,
            paths.ca: self.ca,
        }


@dataclass(frozen=True)
class TlsState:
    """What the charms render from: related or not, and the certificate once it is there."""

    related: bool = False
    material: TlsMaterial | None = None

    @property
    def enabled(self) -> bool:
        return self.material is not None

    @property
    def waiting(self) -> bool:
        """Related, but no certificate for this unit's current request yet."""
        return self.related and self.material is None


# Where the charms running Pulsar's TLS stack (brokers, proxies, bookies) keep their PEM files.
PULSAR_TLS_DIR = "/pulsar/conf/tls"
PULSAR_TLS_PATHS = TlsPaths(
    certificate=f"{PULSAR_TLS_DIR}/certificate.pem",
    private_key=f"{PULSAR_TLS_DIR}/private-key.pem",
    ca=f"{PULSAR_TLS_DIR}/ca.pem",
)
PULSAR_TLS_PRIVATE_PATHS = frozenset({PULSAR_TLS_PATHS.private_key})
# How often Pulsar and BookKeeper re-read those files: a renewal reaches them without a restart.
CERT_REFRESH_SECONDS = 60


@dataclass(frozen=True)
class ServingTls:
    """What a Pulsar listener's configuration depends on: TLS on or off, the plain binary port."""

    enabled: bool = False
    plaintext: bool = True

    @classmethod
    def of(cls, state: TlsState, plaintext_enabled: bool) -> ServingTls:
        if not state.enabled:
            return cls()
        return cls(enabled=True, plaintext=plaintext_enabled)


def serving_tls_properties(
    tls: ServingTls, *, tls_port_key: str, tls_port: int, plain_port_key: str, web_tls_port: int
) -> dict[str, str]:
    """Return the keys broker.conf and proxy.conf share for serving TLS (none when TLS is off).

    With plain text closed, ``plain_port_key`` is set empty: an empty port disables the
    listener, as the shipped files do for the TLS ports.
    """
    if not tls.enabled:
        return {}
    properties = {
        tls_port_key: str(tls_port),
        "webServicePortTls": str(web_tls_port),
        "tlsCertificateFilePath": PULSAR_TLS_PATHS.certificate,
        "tlsKeyFilePath": PULSAR_TLS_PATHS.private_key,
        "tlsTrustCertsFilePath": PULSAR_TLS_PATHS.ca,
        "tlsAllowInsecureConnection": "false",
        "tlsRequireTrustedClientCertOnConnect": "false",
        "tlsCertRefreshCheckDurationSec": str(CERT_REFRESH_SECONDS),
    }
    if not tls.plaintext:
        properties[plain_port_key] = ""
    return properties


def pulsar_tls_files(state: TlsState) -> dict[str, str | bytes]:
    """Return the PEM files at ``PULSAR_TLS_PATHS`` (none when TLS is off); push the key 0600."""
    if state.material is None:
        return {}
    return dict(state.material.files(PULSAR_TLS_PATHS))


def material_from(
    certificate: ProviderCertificate, private_key: PrivateKey, relation: str = RELATION
) -> TlsMaterial:
    """Check the provider's answer against this unit's key and build the files' content.

    Raises ``InvalidField`` (relation, field) when the certificate is revoked, is not for this
    unit's key, or its chain does not end at the CA it names.
    """
    if certificate.revoked:
        raise InvalidField(relation, "certificate", "is revoked; waiting for a new one")
    if not certificate.certificate.matches_private_key(private_key):
        raise InvalidField(relation, "certificate", "does not match this unit's private key")
    leaf = str(certificate.certificate).strip()
    ca = str(certificate.ca).strip()
    # The leaf first, then every intermediate; the root CA goes in the trust file only.
    intermediates = [str(c).strip() for c in certificate.chain if str(c).strip() not in (leaf, ca)]
    try:
        key = pkcs8_pem(str(private_key))
    except ValueError:
        raise InvalidField(relation, "private-key", "cannot be read") from None
    sans = tuple(sorted(certificate.certificate.sans_dns or ()))
    return TlsMaterial(
        certificate="\n".join([leaf, *intermediates]) + "\n",
        ca=ca + "\n",
        private_key=key,
        sans=sans,
    )


class _GuardedRequirer(TLSCertificatesRequiresV4):
    """The library's requirer, except that an answer it cannot parse never fails a hook.

    The library's own relation handler raises ``TLSCertificatesError`` on a certificate that
    is valid JSON but not PEM; here that is logged, and :meth:`TlsRequirer.state` reports it
    as refused data (a Waiting status naming the relation) until the provider answers again.
    """

    def _configure(self, event: ops.EventBase | None = None) -> None:
        try:
            super()._configure(event)
        except (TLSCertificatesError, ValueError) as exc:
            logger.warning("certificates relation: answer not usable (%s)", type(exc).__name__)


class TlsRequirer(ops.Object):
    """One unit's certificate on the ``certificates`` relation.

    Construct it BEFORE observing the charm's reconcile events, so that the library has stored
    and requested what it needs when the reconcile reads :meth:`state` in the same hook. The
    reconcile also observes ``certificate_available`` (:attr:`available`).
    """

    def __init__(
        self,
        charm: ops.CharmBase,
        *,
        sans: Iterable[str],
        relation_name: str = RELATION,
    ):
        super().__init__(charm, f"tls-{relation_name}")
        self._charm = charm
        self._relation_name = relation_name
        self.request = certificate_request(charm.unit.name, sans)
        self.certificates = _GuardedRequirer(
            charm,
            relation_name,
            certificate_requests=[self.request],
            mode=Mode.UNIT,
        )

    @property
    def available(self) -> ops.BoundEvent:
        """The library's ``certificate_available`` event (a reconcile should observe it)."""
        return self.certificates.on.certificate_available

    @property
    def relation(self) -> ops.Relation | None:
        return self._charm.model.get_relation(self._relation_name)

    def state(self) -> TlsState:
        """Return the unit's TLS state; ``InvalidField`` when the provider's answer is refused."""
        relation = self.relation
        if relation is None or relation.app is None:
            return TlsState()
        try:
            certificate, private_key = self.certificates.get_assigned_certificate(self.request)
        except (TLSCertificatesError, ValueError) as exc:
            logger.warning("certificates relation: unreadable answer (%s)", type(exc).__name__)
            raise InvalidField(self._relation_name, "certificates", "cannot be read") from None
        if certificate is None or private_key is None:
            return TlsState(related=True)
        return TlsState(related=True, material=material_from(certificate, private_key))


# ---- CA rotation: PEM bundles (one parser for every charm) ---------------------------------

_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)


def split_certificates(pem: str) -> list[str]:
    """Every certificate of a PEM text, each normalised (64-column body, one newline at the end).

    Anything that is not a well-formed certificate block is left out; never raises.
    """
    if not isinstance(pem, str):
        return []
    blocks: list[str] = []
    for match in _PEM_CERTIFICATE.finditer(pem):
        body = "".join(match.group(1).split())
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            continue
        if not body:
            continue
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        blocks.append(
            "\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----"])
        )
    return [block + "\n" for block in blocks]


def with_previous_ca(current: str, previous: str | None) -> str:
    """Return ``current``'s certificates, then the first other one ``previous`` held.

    For a client that must keep trusting the chain a server presented until the server re-reads
    its files: unchanged while ``current`` is; a new CA keeps the one it replaced, which leaves at
    the next rotation. Malformed blocks are left out; never raises.
    """
    now = split_certificates(current)
    older = [cert for cert in split_certificates(previous or "") if cert not in now]
    return "".join([*now, *older[:1]])


def ca_fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate's DER, hex ("" when there is none)."""
    blocks = split_certificates(pem)
    if not blocks:
        return ""
    body = "".join(blocks[0].splitlines()[1:-1])
    return hashlib.sha256(base64.b64decode(body)).hexdigest()


def trust_bundle(cas: Iterable[str]) -> str:
    """One PEM file holding every certificate of ``cas`` once, in a stable order."""
    unique: dict[str, str] = {}
    for pem in cas:
        for block in split_certificates(pem):
            unique.setdefault(ca_fingerprint(block), block)
    return "".join(unique[fp] for fp in sorted(unique))


def bundle_fingerprints(bundle: str) -> frozenset[str]:
    """Return the fingerprints of every certificate of a bundle."""
    return frozenset(ca_fingerprint(block) for block in split_certificates(bundle))


def present_new_certificate(
    new_ca: str, presented_ca: str, others_trusted: Iterable[frozenset[str] | None]
) -> bool:
    """Whether a unit presents its newest certificate now, or keeps the one it presents.

    ``new_ca``: the CA of its newest certificate; ``presented_ca``: the CA of the certificate
    its running server presents ("" : none, it runs plain text or does not run);
    ``others_trusted``: the CA fingerprints each other party's running server trusts (None:
    unknown, e.g. not running). The same CA (a renewal) or nothing presented yet: at once.
    A new CA: only once every other party trusts it, so none refuses this unit.
    """
    new = ca_fingerprint(new_ca)
    if not presented_ca or ca_fingerprint(presented_ca) == new:
        return True
    return all(trusted is not None and new in trusted for trusted in others_trusted)


def needed_cas(newest_ca: str, presented_ca: str) -> list[str]:
    """Return the CAs a unit asks every trust store to hold.

    Its newest certificate's CA and the CA of the certificate its running server presents
    ("" : none): one CA outside a CA rotation, two during one.
    """
    blocks = [block for ca in (newest_ca, presented_ca) for block in split_certificates(ca)]
    return list(dict.fromkeys(blocks))


# ---- CA rotation where the server re-reads its PEM files (brokers, bookies) ------------------
#
# Pulsar's listeners and BookKeeper's TLS re-read the PEM files at most every
# CERT_REFRESH_SECONDS, on the next connection after the files' modification time changed: a
# connection opened SETTLE_S after a push sees the new files. Every unit publishes in its peer
# relation the CAs it needs trusted (TLS_CAS_KEY) and the CAs its running server surely trusts
# (TRUSTED_CAS_KEY, fingerprints); its trust file (and what its client relations publish) is
# the bundle of every unit's CAs. A unit presents a certificate from a new CA only once every
# unit, itself included, trusts that CA: its clients got the two-CA bundle at least SETTLE_S
# before. A CA leaves the bundle once no unit presents it any more (SETTLE_S after the switch).

TLS_CAS_KEY = "tls-cas"
TRUSTED_CAS_KEY = "trusted-cas"
# The CA of the certificate in PULSAR_TLS_PATHS.certificate (what the server presents).
PRESENTED_CA_PATH = f"{PULSAR_TLS_DIR}/presented-ca.pem"
SETTLE_S = CERT_REFRESH_SECONDS + 15
# A Pebble check that fails SETTLE_S after the charm pushed PEM files: the wake-up of the next
# step of a rotation (no update-status).
RELOAD_CHECK = "tls-reload"
RELOAD_LAYER = "tls-reload"
RELOAD_VIEW_PATH = f"{VIEW_DIR}/tls-files"
FRESH, SETTLED = "fresh", "settled"


@dataclass(frozen=True)
class PeerTrust:
    """What one unit published: the CAs it needs trusted, the CAs its server trusts."""

    cas: tuple[str, ...] = ()
    # fingerprints; None: not published (no TLS, or not known yet)
    trusted: frozenset[str] | None = None


def _json_strings(raw: object) -> list[str] | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        values = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(values, list):
        return None
    return [v for v in values if isinstance(v, str)]


def parse_peer_trust(data: Mapping[str, str]) -> PeerTrust:
    """Read a unit's published trust; malformed values read as absent (never raises)."""
    cas = _json_strings(data.get(TLS_CAS_KEY)) or []
    blocks = tuple(dict.fromkeys(b for ca in cas for b in split_certificates(ca)))
    trusted = _json_strings(data.get(TRUSTED_CAS_KEY))
    fingerprints = (
        frozenset(t for t in trusted if re.fullmatch(r"[0-9a-f]{64}", t))
        if trusted is not None
        else None
    )
    return PeerTrust(blocks, fingerprints)


def peer_trust_data(trust: PeerTrust) -> dict[str, str]:
    """Return the unit databag values of ``trust`` ("" removes a key: no TLS)."""
    if not trust.cas:
        return {TLS_CAS_KEY: "", TRUSTED_CAS_KEY: ""}
    return {
        TLS_CAS_KEY: json.dumps(list(trust.cas)),
        TRUSTED_CAS_KEY: json.dumps(sorted(trust.trusted or ())),
    }


@dataclass(frozen=True)
class RunningFiles:
    """The PEM files in the container: what the server presents and trusts (after SETTLE_S)."""

    certificate: str = ""
    private_key: str = field(default="", repr=False)
    presented_ca: str = ""
    trust: str = ""


@dataclass(frozen=True)
class ReloadPlan:
    """What one unit pushes and publishes now."""

    # the certificate and key to present; ``ca``: the trust bundle
    material: TlsMaterial
    presented_ca: str
    # what the unit publishes about itself
    published: PeerTrust


def plan_reload(
    newest: TlsMaterial,
    running: RunningFiles,
    settled: bool,
    own: PeerTrust,
    peers: Iterable[PeerTrust],
) -> ReloadPlan:
    """One unit's certificate, trust bundle and published trust (pure).

    ``newest``: the provider's certificate; ``running``: the files in the container;
    ``settled``: they were pushed SETTLE_S ago or more (the server reads them);
    ``own``: what this unit published last; ``peers``: what the other units published (units
    publishing no CA run no TLS and are left out).
    """
    peers = [peer for peer in peers if peer.cas]
    in_file = bundle_fingerprints(running.trust)
    # What the running server surely trusts: the file once settled; before, only what it
    # trusted already and the file still holds.
    trusted_now = in_file if settled else (own.trusted or frozenset()) & in_file
    presented_ca = running.presented_ca if running.certificate else ""
    present_new = present_new_certificate(
        newest.ca, presented_ca, [trusted_now, *(peer.trusted for peer in peers)]
    )
    if present_new or not running.private_key:
        certificate, key, presenting_ca = newest.certificate, newest.private_key, newest.ca
    else:
        certificate, key, presenting_ca = running.certificate, running.private_key, presented_ca
    switching = bool(presented_ca) and certificate != running.certificate
    cas = needed_cas(newest.ca, presenting_ca)
    if switching or not settled:
        # the server may still present the previous certificate until it re-reads the files
        cas += needed_cas(presented_ca, "") + list(own.cas)
    cas = list(dict.fromkeys(cas))
    bundle = trust_bundle([*cas, *(ca for peer in peers for ca in peer.cas)])
    trusted = trusted_now & bundle_fingerprints(bundle)
    material = replace(newest, certificate=certificate, private_key=key, ca=bundle)
    return ReloadPlan(material, presenting_ca, PeerTrust(tuple(cas), trusted))


def files_settled(view: str | None, now: float) -> bool:
    """Whether the PEM files were pushed SETTLE_S ago or more (no record: long ago)."""
    if recorded_state(view) != FRESH:
        return True
    parts = (view or "").split()
    try:
        stamp = int(parts[1])
    except (IndexError, ValueError):
        return True
    return now - stamp >= SETTLE_S


def reload_layer() -> dict:
    """Return the layer of the check that wakes the charm SETTLE_S after a push of PEM files."""
    path = RELOAD_VIEW_PATH
    live = (
        f'read -r s t 2>/dev/null < {path}; t="${{t:-0}}"; '
        f"if [ \"$s\" = {FRESH} ] && [ $(( $(printf '%(%s)T' -1) - t )) -lt {SETTLE_S} ]; "
        f"then printf {FRESH}; else printf {SETTLED}; fi"
    )
    return {
        "summary": "TLS files re-read",
        "checks": {RELOAD_CHECK: exec_check(check_script(live, path))},
    }


class ReloadingTrust:
    """One unit's side of a CA rotation on a server that re-reads its PEM files.

    ``converge`` pushes the files and publishes the unit's trust; it returns the state to
    render and publish from: ``material.ca`` is the bundle of every unit's CAs.
    """

    def __init__(self, charm: ops.CharmBase, workload: Workload, peer_relation: str):
        self._charm = charm
        self._workload = workload
        self._peer = peer_relation

    def converge(self, state: TlsState, stale: bool = False) -> TlsState:
        """Push the PEM files and publish; ``stale``: the reload check just failed."""
        relation = self._charm.model.get_relation(self._peer)
        own_data = relation.data[self._charm.unit] if relation is not None else None
        if state.material is None:
            if own_data is not None:
                write_if_different(own_data, peer_trust_data(PeerTrust()))
            return state
        now = time.time()
        settled = files_settled(self._workload.read_text(RELOAD_VIEW_PATH), now)
        peers = (
            [parse_peer_trust(relation.data[unit]) for unit in relation.units]
            if relation is not None
            else []
        )
        plan = plan_reload(
            state.material,
            self._running(),
            settled,
            parse_peer_trust(own_data) if own_data is not None else PeerTrust(),
            peers,
        )
        files = {**plan.material.files(PULSAR_TLS_PATHS), PRESENTED_CA_PATH: plan.presented_ca}
        if self._workload.changed_files(files):
            self._workload.push(files)
            self._workload.push({RELOAD_VIEW_PATH: record_content(FRESH, now)})
        else:
            record_view(
                self._workload, RELOAD_VIEW_PATH, SETTLED if settled else FRESH, stale and settled
            )
        layer = reload_layer()
        if self._workload.layer_differs(layer):
            self._workload.add_layer(RELOAD_LAYER, layer)
        if own_data is not None:
            write_if_different(own_data, peer_trust_data(plan.published))
        return replace(state, material=plan.material)

    def _running(self) -> RunningFiles:
        read = self._workload.read_text
        certificate = read(PULSAR_TLS_PATHS.certificate) or ""
        trust = read(PULSAR_TLS_PATHS.ca) or ""
        # files of an older revision have no presented-ca.pem: their ca.pem held that CA alone
        presented = read(PRESENTED_CA_PATH) or (trust if certificate else "")
        return RunningFiles(
            certificate, read(PULSAR_TLS_PATHS.private_key) or "", presented, trust
        )
