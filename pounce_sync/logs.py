"""Logging set-up: errors to stderr, access lines to stdout, thread names in both."""

import logging
import sys

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_FORMAT = "%(asctime)s [%(levelname)s] [%(threadName)s] %(message)s"


def configure_logging(level: str) -> None:
    numeric = TRACE if level == "trace" else getattr(logging, level.upper())
    formatter = logging.Formatter(_FORMAT)
    for name, stream in (("pounce_sync.error", sys.stderr), ("pounce_sync.access", sys.stdout)):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.setLevel(numeric)
        logger.propagate = False
