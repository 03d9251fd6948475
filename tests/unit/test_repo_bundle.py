"""bundle.yaml deploys the charms as they are declared in their charmcraft.yaml files."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest

from tools.repo import (
    EXPECTED_CHARMS,
    IMAGE_RESOURCE,
    ROOT,
    CharmSpec,
    load_charm,
    load_yaml,
    pulsar_image,
)

# The smallest healthy deployment of each charm: ZooKeeper needs an odd quorum of at least
# 3, BookKeeper at least 3 bookies (ensemble 3 by default), one broker.
MIN_UNITS = {
    "pulsar-zookeeper-k8s": 3,
    "bookkeeper-k8s": 3,
    "pulsar-k8s": 1,
    # Two proxies: a client that lists both reconnects through one while the other is lost.
    "pulsar-proxy-k8s": 2,
}
ODD_UNITS = {"pulsar-zookeeper-k8s"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([MGTP]?)i?B?$", re.IGNORECASE)
_UNIT = {"": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


def size_mib(size: Any) -> float:
    """Juju storage size (``5G``, ``512M``, ``1T``; plain numbers are MiB) in MiB."""
    match = _SIZE.match(str(size).strip())
    if not match:
        raise ValueError(f"not a Juju storage size: {size!r}")
    return float(match.group(1)) * _UNIT[match.group(2).upper()]


def storage_size(directive: Any) -> Any:
    """The size part of a bundle storage directive (``10G``, ``rootfs,10G``, ``{size: 10G}``)."""
    if isinstance(directive, dict):
        return directive.get("size")
    parts = [p for p in str(directive).split(",") if _SIZE.match(p.strip())]
    return parts[0] if parts else None


def bundle_problems(root: pathlib.Path) -> list[str]:
    """Everything wrong with ``root``/bundle.yaml against ``root``/charms/*/charmcraft.yaml."""
    bundle = load_yaml(root / "bundle.yaml")
    problems: list[str] = []
    if bundle.get("bundle") != "kubernetes":
        problems.append("bundle: must be 'kubernetes'")
    apps: dict[str, dict[str, Any]] = bundle.get("applications") or {}
    missing = sorted(set(EXPECTED_CHARMS) - set(apps))
    if missing:
        problems.append(f"applications must include {sorted(EXPECTED_CHARMS)}, missing {missing}")
    image = pulsar_image(root)
    charms: dict[str, CharmSpec] = {}
    for app, spec in sorted(apps.items()):
        charm_path = str(spec.get("charm", ""))
        if not charm_path.startswith("./charms/"):
            problems.append(f"{app}: charm must be a local path under ./charms/, got {charm_path}")
            continue
        charm_dir = root / "charms" / pathlib.PurePosixPath(charm_path).parts[1]
        if not (charm_dir / "charmcraft.yaml").is_file():
            problems.append(f"{app}: {charm_dir.relative_to(root)}/charmcraft.yaml is missing")
            continue
        charm = charms[app] = load_charm(charm_dir)
        expected_file = f"./charms/{charm_dir.name}/{charm.packed_charm_name()}"
        if charm_path != expected_file:
            problems.append(
                f"{app}: charm {charm_path} is not what `charmcraft pack` in "
                f"{charm_dir.relative_to(root)} writes ({expected_file})"
            )
        if app != charm.name:
            problems.append(f"{app}: application name must be the charm name {charm.name}")
        # units
        units = spec.get("scale", spec.get("num_units"))
        if "scale" in spec and "num_units" in spec:
            problems.append(f"{app}: give either scale or num_units, not both")
        minimum = MIN_UNITS.get(app, 1)
        if not isinstance(units, int) or units < minimum:
            problems.append(f"{app}: needs at least {minimum} units, bundle has {units!r}")
        elif app in ODD_UNITS and units % 2 == 0:
            problems.append(f"{app}: needs an odd number of units for a quorum, has {units}")
        # resources
        resources = spec.get("resources") or {}
        for name, res in sorted(charm.resources.items()):
            upstream = res.get("upstream-source")
            if upstream != image:
                problems.append(
                    f"{app}: charmcraft.yaml {name} upstream-source {upstream} != {image}"
                )
            if res.get("type") == "oci-image" and resources.get(name) != image:
                problems.append(
                    f"{app}: resource {name} must be {image}, not {resources.get(name)}"
                )
        for name in sorted(set(resources) - set(charm.resources)):
            problems.append(f"{app}: resource {name} is not declared by the charm")
        if IMAGE_RESOURCE not in charm.resources:
            problems.append(f"{app}: the charm declares no {IMAGE_RESOURCE} resource")
        # storage
        storage = spec.get("storage") or {}
        for name in sorted(set(storage) - set(charm.storage)):
            problems.append(f"{app}: storage {name} is not declared by the charm")
        for name, declared in sorted(charm.storage.items()):
            if name not in storage:
                problems.append(f"{app}: storage {name} has no size in the bundle")
                continue
            try:
                given = size_mib(storage_size(storage[name]))
                needed = size_mib(declared.get("minimum-size", "0"))
            except ValueError as exc:
                problems.append(f"{app}: storage {name}: {exc}")
                continue
            if given < needed:
                problems.append(f"{app}: storage {name} {storage[name]} < minimum-size")
        # trust: only for charms that talk to the Kubernetes API themselves
        requirements = charm_dir / "requirements.txt"
        needs_trust = requirements.is_file() and "lightkube" in requirements.read_text().lower()
        if bool(spec.get("trust", False)) != needs_trust:
            problems.append(
                f"{app}: trust must be {str(needs_trust).lower()} "
                f"({'it uses' if needs_trust else 'it does not use'} the Kubernetes API)"
            )
    problems += relation_problems(bundle.get("relations") or [], charms)
    return problems


def relation_problems(relations: list[Any], charms: dict[str, CharmSpec]) -> list[str]:
    """Relations must join existing provides/requires endpoints of one interface."""
    problems: list[str] = []
    used: dict[tuple[str, str], int] = {}
    seen: set[frozenset[str]] = set()
    for pair in relations:
        if not (isinstance(pair, list) and len(pair) == 2):
            problems.append(f"relation {pair!r}: must be a pair of app:endpoint")
            continue
        ends = []
        for end in pair:
            app, _, name = str(end).partition(":")
            if app not in charms:
                problems.append(f"relation {pair}: unknown or unreadable application {app}")
                break
            if not name:
                problems.append(f"relation {pair}: give the endpoint explicitly ({app}:?)")
                break
            ep = charms[app].endpoints.get(name)
            if ep is None:
                problems.append(f"relation {pair}: {app} has no endpoint {name}")
                break
            ends.append((app, ep))
        if len(ends) != 2:
            continue
        (_, a), (_, b) = ends
        if frozenset(pair) in seen:
            problems.append(f"relation {pair}: listed twice")
        seen.add(frozenset(pair))
        if {a.role, b.role} != {"provides", "requires"}:
            problems.append(f"relation {pair}: roles {a.role}/{b.role}, need provides+requires")
        if a.interface != b.interface:
            problems.append(f"relation {pair}: interfaces differ ({a.interface}/{b.interface})")
        for app, ep in ends:
            used[(app, ep.name)] = used.get((app, ep.name), 0) + 1
    for app, charm in sorted(charms.items()):
        for ep in charm.endpoints.values():
            count = used.get((app, ep.name), 0)
            if ep.limit is not None and count > ep.limit:
                problems.append(f"{app}:{ep.name}: {count} relations exceed its limit {ep.limit}")
            if ep.role == "requires" and not ep.optional and count == 0:
                problems.append(f"{app}:{ep.name}: required endpoint is not related")
    return problems


def test_repository_bundle():
    problems = bundle_problems(ROOT)
    assert not problems, "bundle.yaml:\n" + "\n".join(problems)


def test_bundle_relations_are_the_suite_topology():
    relations = {frozenset(r) for r in load_yaml(ROOT / "bundle.yaml")["relations"]}
    assert relations == {
        frozenset({"pulsar-zookeeper-k8s:zookeeper", "bookkeeper-k8s:zookeeper"}),
        frozenset({"pulsar-zookeeper-k8s:zookeeper", "pulsar-k8s:zookeeper"}),
        frozenset({"bookkeeper-k8s:bookkeeper", "pulsar-k8s:bookkeeper"}),
        frozenset({"pulsar-k8s:pulsar-proxy", "pulsar-proxy-k8s:pulsar-proxy"}),
    }


# The check itself, on a sample repository.


def test_sample_bundle_passes(sample_repo):
    assert bundle_problems(sample_repo.root) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda b, c: b["applications"]["pulsar-zookeeper-k8s"].update(scale=4), "odd number"),
        (lambda b, c: b["applications"]["pulsar-zookeeper-k8s"].update(scale=1), "at least 3"),
        (lambda b, c: b["applications"]["bookkeeper-k8s"].update(scale=2), "at least 3"),
        (
            lambda b, c: b["applications"]["pulsar-k8s"]["resources"].update(
                {"pulsar-image": "apachepulsar/pulsar:9.9.8"}
            ),
            "resource pulsar-image must be",
        ),
        (
            lambda b, c: c["pulsar-k8s"]["resources"]["pulsar-image"].update(
                {"upstream-source": "apachepulsar/pulsar:latest"}
            ),
            "upstream-source",
        ),
        (
            lambda b, c: b["relations"].append(
                ["pulsar-k8s:nope", "pulsar-zookeeper-k8s:zookeeper"]
            ),
            "has no endpoint nope",
        ),
        (
            lambda b, c: b["relations"].append(
                ["pulsar-zookeeper-k8s:zookeeper", "pulsar-k8s:bookkeeper"]
            ),
            "interfaces differ",
        ),
        (
            lambda b, c: b["relations"].append(
                ["pulsar-k8s:zookeeper", "bookkeeper-k8s:zookeeper"]
            ),
            "need provides+requires",
        ),
        (lambda b, c: b["relations"].pop(), "required endpoint is not related"),
        (
            lambda b, c: b["relations"].append(
                ["bookkeeper-k8s:zookeeper", "pulsar-zookeeper-k8s:zookeeper"]
            ),
            "listed twice",
        ),
        (
            lambda b, c: c["pulsar-k8s"]["requires"]["bookkeeper"].update(interface="bk"),
            "interfaces differ",
        ),
        (
            lambda b, c: b["applications"]["bookkeeper-k8s"]["storage"].update(ledgers="512M"),
            "< minimum-size",
        ),
        (
            lambda b, c: b["applications"]["bookkeeper-k8s"]["storage"].pop("journal"),
            "storage journal has no size",
        ),
        (
            lambda b, c: b["applications"]["pulsar-zookeeper-k8s"]["storage"].update(logs="1G"),
            "storage logs is not declared",
        ),
        (lambda b, c: b["applications"]["pulsar-k8s"].update(charm="pulsar-k8s"), "local path"),
        (
            lambda b, c: b["applications"]["pulsar-k8s"].update(
                charm="./charms/pulsar-k8s/pulsar-k8s_ubuntu-22.04-amd64.charm"
            ),
            "charmcraft pack",
        ),
        (lambda b, c: b["applications"]["pulsar-k8s"].update(trust=True), "trust must be false"),
        (lambda b, c: b["applications"].pop("pulsar-k8s"), "applications must include"),
    ],
)
def test_sample_bundle_problem_detected(sample_repo, mutation, expected: str):
    mutation(sample_repo.bundle, sample_repo.charms)
    sample_repo.write()
    problems = bundle_problems(sample_repo.root)
    assert any(expected in p for p in problems), problems


def test_sample_trust_follows_kubernetes_api_use(sample_repo):
    (sample_repo.charm_dir("pulsar-k8s") / "requirements.txt").write_text("lightkube==0.17\n")
    assert any("pulsar-k8s: trust must be true" in p for p in bundle_problems(sample_repo.root))
    sample_repo.bundle["applications"]["pulsar-k8s"]["trust"] = True
    sample_repo.write()
    assert bundle_problems(sample_repo.root) == []


def test_size_parsing():
    assert size_mib("512M") == 512
    assert size_mib("5G") == 5 * 1024
    assert size_mib("1T") == 1024**2
    assert size_mib(storage_size("rootfs,10G")) == 10 * 1024
    assert size_mib(storage_size({"size": "2G"})) == 2048
    with pytest.raises(ValueError):
        size_mib("big")
