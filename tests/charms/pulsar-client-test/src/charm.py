#!/usr/bin/env python3
"""Entry point of the pulsar-client-test charm."""

import ops
from pulsar_client_test_charm import PulsarClientTestCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(PulsarClientTestCharm)
