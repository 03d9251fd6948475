"""docs/reference is generated from the charms and up to date with them."""

from __future__ import annotations

import pytest
import yaml

from tools import docs_reference
from tools.repo import ROOT, CharmSpec, charm_names, load_charm

RUN = "run `python -m tools.docs_reference` and commit docs/reference"


def missing_mentions(charm: CharmSpec, page: str) -> list[str]:
    """Every option, action (and parameter), endpoint, storage and resource not in ``page``."""
    names = [f"option {o}" for o in charm.options]
    names += [f"action {a}" for a in charm.actions]
    names += [
        f"parameter {a}.{p}"
        for a, spec in charm.actions.items()
        for p in ((spec or {}).get("params") or {})
    ]
    names += [f"endpoint {e}" for e in charm.endpoints]
    names += [f"storage {s}" for s in charm.storage]
    names += [f"resource {r}" for r in charm.resources]
    names += [f"container {c}" for c in charm.containers]
    return [n for n in names if f"`{n.split(' ', 1)[1].split('.')[-1]}`" not in page]


def test_reference_is_up_to_date():
    problems = docs_reference.stale_pages(ROOT)
    assert not problems, f"docs/reference is stale ({RUN}):\n" + "\n".join(problems)


@pytest.mark.parametrize("charm", charm_names())
def test_reference_covers_every_charm_feature(charm: str):
    charm_dir = ROOT / "charms" / charm
    assert (charm_dir / "charmcraft.yaml").is_file(), f"{charm_dir}/charmcraft.yaml is missing"
    spec = load_charm(charm_dir)
    page_path = ROOT / "docs" / "reference" / f"{spec.name}.md"
    assert page_path.is_file(), f"{page_path} is missing: {RUN}"
    page = page_path.read_text()
    missing = missing_mentions(spec, page)
    assert not missing, f"{page_path} does not mention {missing}: {RUN}"
    index = (ROOT / "docs" / "reference" / "index.md").read_text()
    assert f"]({spec.name}.md)" in index, f"index.md does not link {spec.name}.md: {RUN}"


def test_rendering_is_deterministic():
    assert docs_reference.render_all(ROOT) == docs_reference.render_all(ROOT)


# The generator, on a sample repository.


def test_sample_render_write_and_check(sample_repo, capsys):
    root = sample_repo.root
    assert docs_reference.main(["--check", "--root", str(root)]) == 1
    assert "python -m tools.docs_reference" in capsys.readouterr().err
    assert docs_reference.main(["--root", str(root)]) == 0
    assert docs_reference.main(["--check", "--root", str(root)]) == 0
    reference = root / "docs" / "reference"
    assert sorted(p.name for p in reference.iterdir()) == [
        "bookkeeper-k8s.md",
        "index.md",
        "pulsar-k8s.md",
        "pulsar-zookeeper-k8s.md",
    ]
    # a charm change makes the page stale, and a rewrite fixes it
    sample_repo.charms["pulsar-k8s"]["config"]["options"]["new-option"] = {"type": "boolean"}
    sample_repo.write()
    assert docs_reference.main(["--check", "--root", str(root)]) == 1
    assert "docs/reference/pulsar-k8s.md: out of date" in capsys.readouterr().err
    docs_reference.main(["--root", str(root)])
    assert "`new-option` | boolean | - |" in (reference / "pulsar-k8s.md").read_text()
    # a page for a charm that no longer exists is stale too
    (reference / "gone-k8s.md").write_text("# gone\n")
    assert docs_reference.stale_pages(root) == [
        "docs/reference/gone-k8s.md: not generated from any charm"
    ]
    docs_reference.main(["--root", str(root)])
    assert not (reference / "gone-k8s.md").exists()


def test_sample_page_content(sample_repo):
    charm = load_charm(sample_repo.charm_dir("bookkeeper-k8s"))
    page = docs_reference.render_charm(charm, sample_repo.root)
    assert page.startswith("# bookkeeper-k8s\n")
    assert "Sample bookkeeper-k8s \\| for tests." in page  # pipes escaped in one-liners
    assert "The bookkeeper-k8s sample charm.\nSecond line.\n" in page
    assert "| `heap-mb` | int | `512` | Heap \\| MiB. |" in page
    assert "| `log-level` | string | `info` | Log level. |" in page
    assert "### `get-status`" in page
    assert "| `verbose` | boolean | `false` | no | - |" in page
    assert "| `zookeeper` | requires | `zookeeper` | 1 | - | - |" in page
    assert "| `bookkeeper` | provides | `bookkeeper` | - | - | - |" in page
    assert "| `cluster` | peers | `bookkeeper_peers` | - | - | - |" in page
    assert "| `journal` | filesystem | /pulsar/data/j | 1G | - | - |" in page
    assert (
        "| `pulsar-image` | oci-image | `apachepulsar/pulsar:9.9.9` | The Pulsar image. |" in page
    )
    assert page.endswith("|\n") and "\n\n\n" not in page
    assert missing_mentions(charm, page) == []


def test_sample_output_ignores_key_order(sample_repo, make_sample_repo):
    other = make_sample_repo("reordered")
    for name, data in other.charms.items():
        reordered = dict(reversed(list(data.items())))
        reordered["config"] = {"options": dict(reversed(list(data["config"]["options"].items())))}
        (other.charm_dir(name) / "charmcraft.yaml").write_text(
            yaml.safe_dump(reordered, sort_keys=False)
        )
    first = docs_reference.render_all(sample_repo.root)
    assert docs_reference.render_all(other.root) == first


def test_sample_missing_mentions_detected(sample_repo):
    charm = load_charm(sample_repo.charm_dir("pulsar-zookeeper-k8s"))
    page = docs_reference.render_charm(charm, sample_repo.root).replace("`heap-mb`", "heap")
    assert missing_mentions(charm, page) == ["option heap-mb"]
