#!/usr/bin/env python3
"""Entry point of the bookkeeper-k8s charm."""

import ops
from bookkeeper_charm import BookKeeperCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(BookKeeperCharm)
