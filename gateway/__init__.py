"""The marketing contact gateway core: daemon, plugin contract, contact control, outbox."""

from gateway.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
