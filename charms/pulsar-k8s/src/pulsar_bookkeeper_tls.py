"""The broker's BookKeeper client over TLS: pure renderers from what the bookies publish.

The ``bookkeeper`` relation says ``tls`` once every bookie serves TLS (BookKeeper's START_TLS on
the bookie port) and gives the CA they chain to. Checked in the pinned Pulsar's
``BookKeeperClientFactoryImpl`` (bytecode of the shipped broker jar): the ``bookkeeperTLS*``
settings are handed to the BookKeeper client only when ``bookkeeperTLSClientAuthentication`` is
true, and then the client loads a key pair (``TLSContextFactory`` with
``tlsClientAuthentication``). So TLS to the bookies needs the broker's own certificate (the
broker's ``certificates`` relation): it is the client key pair, which the bookies do not ask
for (their ``tlsClientAuthentication`` is false), so it is never checked. The bookies' server
certificate is checked against the published CA (no host name check: BookKeeper's client
default).

The v2 wire protocol stays (``bookkeeperUseV2WireProtocol``, Pulsar's default): BookKeeper 4.17
negotiates START_TLS in v3, then speaks v2 inside TLS.

The BookKeeper client re-reads the PEM files every
``bookkeeperTlsCertFilesRefreshDurationSeconds``: a renewed certificate or a new CA file is
picked up without a restart; turning TLS on or off changes broker.conf (a rolling restart).
"""

from __future__ import annotations

from charms.pulsar_k8s.v0.tls import CERT_REFRESH_SECONDS, PULSAR_TLS_DIR
from pulsar_tls import TLS_PATHS

BOOKKEEPER_CA_PATH = f"{PULSAR_TLS_DIR}/bookkeeper-ca.pem"


def bookkeeper_client_tls_properties(enabled: bool) -> dict[str, str]:
    """broker.conf keys of the BookKeeper client for TLS (empty when off: plain text)."""
    if not enabled:
        return {}
    return {
        "bookkeeperTLSProviderFactoryClass": "org.apache.bookkeeper.tls.TLSContextFactory",
        # the switch Pulsar reads the bookkeeperTLS* keys under (see the module docstring)
        "bookkeeperTLSClientAuthentication": "true",
        "bookkeeperTLSKeyFileType": "PEM",
        "bookkeeperTLSKeyFilePath": TLS_PATHS.private_key,
        "bookkeeperTLSCertificateFilePath": TLS_PATHS.certificate,
        "bookkeeperTLSTrustCertTypes": "PEM",
        "bookkeeperTLSTrustCertsFilePath": BOOKKEEPER_CA_PATH,
        "bookkeeperTlsCertFilesRefreshDurationSeconds": str(CERT_REFRESH_SECONDS),
    }


def bookkeeper_tls_files(ca: str) -> dict[str, str]:
    """Return the bookies' CA file (none when the broker talks plain text to them)."""
    return {BOOKKEEPER_CA_PATH: ca} if ca else {}
