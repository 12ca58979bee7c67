"""The operator's integration tests, run against a real cluster (opt-in: KUBECONFIG and TOKENFLEET_E2E=1).

The very same test functions as tests/integration/operator/test_operator_reconcile.py; only the
fixtures differ (tests/e2e/conftest.py: the cluster in $KUBECONFIG instead of the emulator).
"""

import pytest

from tests.integration.operator.test_operator_reconcile import *  # noqa: F401,F403 (collected here again)

pytestmark = pytest.mark.e2e
