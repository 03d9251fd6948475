"""The statuses core library's wording helpers."""

from charms.pulsar_k8s.v0.statuses import with_problems
from hypothesis import given
from hypothesis import strategies as st


def test_no_problem_leaves_the_message_as_it_is():
    assert with_problems("broker ready", []) == "broker ready"


def test_one_problem_is_named():
    assert with_problems("ready", ["ns a/b: 403"]) == "ready; ns a/b: 403"


def test_more_problems_are_counted_after_the_first():
    assert (
        with_problems("ready", ["first", "second", "third"], "replication: ")
        == "ready; replication: first (+2 more)"
    )


@given(st.text(), st.lists(st.text(min_size=1), min_size=1), st.text())
def test_the_first_problem_is_always_shown_once(message, problems, prefix):
    line = with_problems(message, problems, prefix)
    assert line.startswith(f"{message}; {prefix}{problems[0]}")
    assert line.endswith(f" (+{len(problems) - 1} more)") == (len(problems) > 1)
