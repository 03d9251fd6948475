"""The bundle's shape in the rig: ZooKeeper x3, bookies x3, brokers x1 (or x2), three relations.

The proxies (``proxies=2`` as in ``bundle.yaml``) are deployed only when a scenario asks for
them, so the other scenarios keep their JVM count.

Mirrors ``bundle.yaml`` (scales and relations) with small JVMs so that seven of them fit on a
test machine. The charm classes are imported lazily, so this module can be imported before the
charms exist.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tests.cluster.rig_charm_spec import load_charm_spec
from tests.cluster.rig_juju import Model, RigApp

logger = logging.getLogger(__name__)

ZOOKEEPER = "pulsar-zookeeper-k8s"
BOOKKEEPER = "bookkeeper-k8s"
BROKER = "pulsar-k8s"
PROXY = "pulsar-proxy-k8s"
SERVICES = {ZOOKEEPER: "zookeeper", BOOKKEEPER: "bookie", BROKER: "broker"}
"""Each application's Pebble service (the JVM)."""

SMALL_JVMS: dict[str, dict[str, Any]] = {
    ZOOKEEPER: {"heap-mb": 128},
    BOOKKEEPER: {"heap-mb": 256, "direct-memory-mb": 256},
    BROKER: {"heap-mb": 384, "direct-memory-mb": 256},
    PROXY: {"heap-mb": 128, "direct-memory-mb": 128},
}
"""Memory options passed through app config (only those the charm actually has)."""

RELATIONS = (
    (f"{ZOOKEEPER}:zookeeper", f"{BOOKKEEPER}:zookeeper"),
    (f"{ZOOKEEPER}:zookeeper", f"{BROKER}:zookeeper"),
    (f"{BOOKKEEPER}:bookkeeper", f"{BROKER}:bookkeeper"),
    (f"{BROKER}:pulsar-proxy", f"{PROXY}:pulsar-proxy"),
)


def charm_classes() -> dict[str, type]:
    from bookkeeper_charm import BookKeeperCharm  # type: ignore[import-not-found]
    from proxy_charm import PulsarProxyCharm  # type: ignore[import-not-found]
    from pulsar_charm import PulsarBrokerCharm  # type: ignore[import-not-found]
    from zookeeper_charm import ZooKeeperCharm  # type: ignore[import-not-found]

    return {
        ZOOKEEPER: ZooKeeperCharm,
        BOOKKEEPER: BookKeeperCharm,
        BROKER: PulsarBrokerCharm,
        PROXY: PulsarProxyCharm,
    }


def small_config(app: str, charm_type: type, extra: Mapping[str, Any] | None = None) -> dict:
    """The small-JVM settings the charm understands, plus ``extra``."""
    options = (load_charm_spec(charm_type).config or {}).get("options", {})
    config = {k: v for k, v in SMALL_JVMS.get(app, {}).items() if k in options}
    missing = set(SMALL_JVMS.get(app, {})) - set(config)
    if missing:
        logger.warning("%s has no option(s) %s: its JVM keeps the default size", app, missing)
    config.update(extra or {})
    return config


def deploy_bundle(
    model: Model,
    *,
    zookeepers: int = 3,
    bookies: int = 3,
    brokers: int = 1,
    proxies: int = 0,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    relate: bool = True,
    pulsar_version: str | None = None,
) -> dict[str, RigApp]:
    """Deploy the bundle's applications and relations (events are queued; call ``settle``).

    ``pulsar_version``: every application's image runs that Pulsar (default: ``PULSAR_VERSION``).
    """
    classes = charm_classes()
    scales = {ZOOKEEPER: zookeepers, BOOKKEEPER: bookies, BROKER: brokers, PROXY: proxies}
    apps = {}
    for name, charm_type in classes.items():
        if scales[name] <= 0:
            continue
        extra = (config or {}).get(name)
        apps[name] = model.deploy(
            name,
            charm_type,
            units=scales[name],
            config=small_config(name, charm_type, extra),
            pulsar_version=pulsar_version,
        )
    if relate:
        for a, b in RELATIONS:
            if a.split(":")[0] in apps and b.split(":")[0] in apps:
                model.integrate(a, b)
    return apps
