"""The bookie's TLS: pure renderers from the unit's ``TlsState`` to bookkeeper.conf and files.

Checked against BookKeeper 4.17.2 (the pinned Pulsar's): TLS is negotiated in-band on the
bookie port. A client that has a ``tlsProviderFactoryClass`` connects in plain text and sends a
protocol-v3 ``START_TLS`` request as its first message; the bookie answers it and puts a TLS
handler in front of the connection (``BookieRequestProcessor.processStartTLSRequestV3``, which
logs ``Session is protected by: <cipher>`` once the handshake is done). This works with the
v2 wire protocol too: a v2 client decodes the v3 ``START_TLS`` answer, then talks v2 inside TLS
(``BookieProtoEncoding.ResponseDecoder``), so the brokers keep ``bookkeeperUseV2WireProtocol``.

A bookie cannot refuse plain-text clients: there is no "TLS required" setting; only a bookie
authorization plugin over client certificates (``BookieAuthZFactory`` with
``tlsClientAuthentication``) would, and Pulsar's brokers have no per-unit client certificates
here. So TLS protects the brokers' traffic from the moment they start TLS; the plain-text
protocol stays reachable on 3181 (see docs/how-to/enable-tls.md).

``TLSContextFactory`` reads PEM key and trust stores (``tlsKeyStoreType=PEM``: ``tlsKeyStore``
is the PKCS#8 key, ``tlsCertificatePath`` the chain) and re-reads them every
``tlsCertFilesRefreshDurationSeconds`` when their modification time changed: a renewed
certificate is pushed and picked up without a restart.

The bookie HTTP API (8000) stays plain HTTP: BookKeeper's Vert.x server takes only a JKS key
store with a clear-text password in bookkeeper.conf (``httpServerKeyStorePath`` /
``httpServerKeyStorePassword``), and the charm's Pebble checks and Prometheus read it.
"""

from __future__ import annotations

from charms.pulsar_k8s.v0.tls import (
    CERT_REFRESH_SECONDS,
    PULSAR_TLS_PATHS,
    PULSAR_TLS_PRIVATE_PATHS,
    pulsar_tls_files,
)

TLS_PATHS = PULSAR_TLS_PATHS
TLS_PRIVATE_PATHS = PULSAR_TLS_PRIVATE_PATHS
TLS_PROVIDER_FACTORY = "org.apache.bookkeeper.tls.TLSContextFactory"


def bookie_tls_properties(enabled: bool) -> dict[str, str]:
    """bookkeeper.conf keys for TLS (empty when off: BookKeeper's default, no TLS).

    The same file is the client configuration of the bookie's autorecovery and of the
    ``bin/bookkeeper shell`` tools the charm runs: they start TLS to the bookies and trust
    the CA; no client certificate is asked for (``tlsClientAuthentication=false``).
    """
    if not enabled:
        return {}
    return {
        "tlsProviderFactoryClass": TLS_PROVIDER_FACTORY,
        # The JDK's TLS: no native library needed in the image.
        "tlsProvider": "JDK",
        "tlsKeyStoreType": "PEM",
        "tlsKeyStore": TLS_PATHS.private_key,
        "tlsCertificatePath": TLS_PATHS.certificate,
        "tlsTrustStoreType": "PEM",
        "tlsTrustStore": TLS_PATHS.ca,
        "tlsClientAuthentication": "false",
        "tlsCertFilesRefreshDurationSeconds": str(CERT_REFRESH_SECONDS),
    }


tls_files = pulsar_tls_files
