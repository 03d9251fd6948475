#!/usr/bin/env python3
"""Entry point of the pulsar-zookeeper-k8s charm."""

import ops
from zookeeper_charm import ZooKeeperCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(ZooKeeperCharm)
