"""The exact + semantic response cache service (``tokenfleet cache``): see docs/cache.md."""
