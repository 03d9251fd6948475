"""The super-user session never speaks plain text to a member that serves TLS (issue 9)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from zookeeper_tls import SessionPeer, split_certificates, super_session

CA_A = "-----BEGIN CERTIFICATE-----\nQUFB\n-----END CERTIFICATE-----\n"
CA_B = "-----BEGIN CERTIFICATE-----\nQkJC\n-----END CERTIFICATE-----\n"
HOSTS = ["zk-0", "zk-1", "zk-2"]


def test_without_a_certificate_every_host_in_plain_text():
    peers = [SessionPeer(h, secure_port=True, cas=(CA_A,)) for h in HOSTS]
    assert super_session(HOSTS, peers, None) == (HOSTS, "")


def test_before_any_member_serves_2182_plain_text():
    peers = [SessionPeer(h, secure_port=False) for h in HOSTS]
    assert super_session(HOSTS, peers, CA_A) == (HOSTS, "")


def test_a_member_restarting_is_left_out_not_spoken_to_in_plain_text():
    # a new client's credentials roll the ensemble: zk-1 restarts, the others serve 2182
    peers = [
        SessionPeer("zk-0", True, (CA_A,)),
        SessionPeer("zk-1", False),
        SessionPeer("zk-2", True, (CA_A, CA_B)),
    ]
    hosts, bundle = super_session(HOSTS, peers, CA_A)
    assert hosts == ["zk-0", "zk-2"]
    assert sorted(split_certificates(bundle)) == sorted(split_certificates(CA_A + CA_B))


def test_only_the_hosts_asked_for():
    peers = [SessionPeer(h, True, (CA_A,)) for h in HOSTS]
    assert super_session(["zk-2"], peers, CA_A)[0] == ["zk-2"]


@given(
    secure=st.lists(st.booleans(), min_size=3, max_size=3),
    asked=st.lists(st.sampled_from(HOSTS), unique=True),
    own=st.sampled_from([None, "", CA_A]),
)
def test_tls_whenever_possible_and_only_to_hosts_asked_for(secure, asked, own):
    peers = [SessionPeer(h, s, (CA_B,)) for h, s in zip(HOSTS, secure, strict=True)]
    hosts, bundle = super_session(asked, peers, own)
    assert set(hosts) <= set(asked)
    possible = [h for h in asked if secure[HOSTS.index(h)]]
    if own and possible:
        assert hosts == possible and CA_A in bundle and CA_B in bundle
    else:
        assert hosts == asked and bundle == ""
