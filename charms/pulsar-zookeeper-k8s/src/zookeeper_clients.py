"""Which client requests the provider serves under the configured ``acl-policy``.

``shared``: every valid request is served; applications asking for the same chroot each get
their own ACL entries on the chroot znode (what lets older Pulsar charms share ``/pulsar``).

``exclusive``: what Charmhub's ZooKeeper does, made deterministic. Each served relation's user
holds the only ACL over its chroot and everything under it, so two relations may not hold
overlapping chroots (``/a`` and ``/a/b``): of overlapping requests the oldest relation (lowest
id) is served and the others are refused with a reason, instead of whichever is served last
locking the other out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from charms.pulsar_zookeeper_k8s.v0.zookeeper import ClientRequest, chroots_overlap
from zookeeper_config import ACL_POLICIES

SHARED, EXCLUSIVE = ACL_POLICIES


def assign_chroots(requests: Iterable[ClientRequest], policy: str) -> list[ClientRequest]:
    """Return ``requests`` by relation id; under ``exclusive``, overlapping ones get ``error``."""
    ordered = sorted(requests, key=lambda r: r.relation_id)
    if policy != EXCLUSIVE:
        return ordered
    served: list[ClientRequest] = []
    result: list[ClientRequest] = []
    for request in ordered:
        if request.error is None:
            holder = next((s for s in served if chroots_overlap(s.chroot, request.chroot)), None)
            if holder is not None:
                request = dataclasses.replace(
                    request,
                    error=(
                        f"{request.chroot} overlaps {holder.chroot} held by {holder.app_name} "
                        "(acl-policy=exclusive)"
                    ),
                )
            else:
                served.append(request)
        result.append(request)
    return result
