"""The test modules here opt in to ``openatc.testing`` with ``pytest_plugins`` and also import its
helpers at the top; registering it for assertion rewriting first keeps pytest from warning that the
module was imported before it could be rewritten. (``pytest_plugins`` itself may only be declared in
the root conftest or in test modules, not in a conftest below the root.)
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("openatc.testing")
