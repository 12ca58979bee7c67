"""The OpenAI-compatible router: caches, cascades, right-sizes and coalesces requests to model tiers."""
