#!/usr/bin/env python3
"""Entry point of the pulsar-k8s charm."""

import ops
from pulsar_charm import PulsarBrokerCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(PulsarBrokerCharm)
