"""A self-signed CA for the rig, on the provider side of the tls-certificates library."""

from __future__ import annotations

from datetime import timedelta

import ops
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
    ProviderCertificate,
    TLSCertificatesProvidesV4,
)

RELATION = "certificates"
CA_LABEL = "rig-tls-provider-ca"
CA_VALIDITY = timedelta(days=365)


class RigTlsProviderCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.certificates = TLSCertificatesProvidesV4(self, RELATION)
        for event in (
            self.on.config_changed,
            self.on.leader_elected,
            self.on.update_status,
            self.on[RELATION].relation_joined,
            self.on[RELATION].relation_changed,
            self.on[RELATION].relation_departed,
        ):
            framework.observe(event, self._reconcile)

    def _ca(self) -> tuple[Certificate, PrivateKey]:
        """The CA for the configured common name (a new name makes a new CA)."""
        name = str(self.config.get("ca-common-name") or "rig-ca")
        try:
            secret = self.model.get_secret(label=CA_LABEL)
            content = secret.get_content(refresh=True)
        except ops.SecretNotFoundError:
            secret, content = None, {}
        if content.get("common-name") == name:
            return (
                Certificate.from_string(content["certificate"]),
                PrivateKey.from_string(content["private-key"]),
            )
        key = PrivateKey.generate()
        ca = Certificate.generate_self_signed_ca(
            CertificateRequestAttributes(common_name=name, is_ca=True), key, CA_VALIDITY
        )
        new = {"common-name": name, "certificate": str(ca), "private-key": str(key)}
        if secret is None:
            self.app.add_secret(new, label=CA_LABEL)
        else:
            secret.set_content(new)
        return ca, key

    def _reconcile(self, _: ops.EventBase) -> None:
        if not self.unit.is_leader():
            self.unit.status = ops.ActiveStatus()
            return
        ca, key = self._ca()
        hours = int(self.config.get("certificate-validity-hours") or 24)
        issued = {
            (c.relation_id, str(c.certificate_signing_request)): c
            for c in self.certificates.get_issued_certificates()
        }
        for request in self.certificates.get_certificate_requests():
            csr = request.certificate_signing_request
            current = issued.get((request.relation_id, str(csr)))
            if current is not None and str(current.ca) == str(ca):
                cert = current.certificate
                validity = cert.expiry_time - cert.validity_start_time
                if abs(validity - timedelta(hours=hours)) < timedelta(minutes=1):
                    continue
                # A new validity is a renewal: the same request signed again.
            certificate = Certificate.generate(
                csr=csr, ca=ca, ca_private_key=key, validity=timedelta(hours=hours)
            )
            self.certificates.set_relation_certificate(
                ProviderCertificate(
                    relation_id=request.relation_id,
                    certificate=certificate,
                    certificate_signing_request=csr,
                    ca=ca,
                    chain=[certificate, ca],
                )
            )
        self.unit.status = ops.ActiveStatus(f"CA {ca.common_name}")
