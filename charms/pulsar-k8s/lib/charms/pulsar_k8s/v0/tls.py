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

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import ops
from charmlibs.interfaces.tls_certificates import (
    CertificateRequestAttributes,
    Mode,
    PrivateKey,
    ProviderCertificate,
    TLSCertificatesError,
    TLSCertificatesRequiresV4,
)
from charms.pulsar_k8s.v0.validation import InvalidField, is_hostname
from cryptography.hazmat.primitives import serialization

LIBID = "3f1a7c2e9b4d4e6f8a0c5d7e9f1b3a5c"
LIBAPI = 0
LIBPATCH = 2

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
