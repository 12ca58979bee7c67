"""The user-facing API (custom resources) and the router config schema shared with the operator."""
