# SPDX-License-Identifier: Apache-2.0
"""No unseal share (any rendering), root token or AppRole secret ID of any real OpenBao cluster
set up in this session appears in anything vaultkeeper produced here: daemon stdout/stderr, every
sd_notify datagram, state and metrics files, one-shot command output, argv, /proc environ.

The check runs as the teardown of the session fixture `vk_fixtures.no_secrets_leaked` (shared
with the simulator integration tests), after every test of the session whatever the file order
or `-k` selection, and fails the session on a leak; the scanner's own tests are in
Tests/IntegrationTests/test_zz_no_secrets.py."""

from __future__ import annotations


def test_the_session_leak_check_is_active(request):
    # Autouse and session-scoped: set up before any test of the session, torn down after all.
    assert "no_secrets_leaked" in request.fixturenames
