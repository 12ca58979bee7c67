"""tokenfleet: LLM inference fleets at the lowest cost per token that meets their targets."""

__version__ = "0.1.0"

GROUP = "tokenfleet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
