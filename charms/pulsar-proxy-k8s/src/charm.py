#!/usr/bin/env python3
"""Entry point of the pulsar-proxy-k8s charm."""

import ops
from proxy_charm import PulsarProxyCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(PulsarProxyCharm)
