"""Runs last: no unseal share (any rendering), root token or AppRole secret ID of any real
OpenBao cluster set up in this session appears in anything vaultkeeper produced here: daemon
stdout/stderr, every sd_notify datagram, state and metrics files, one-shot command output, argv,
/proc environ."""

from __future__ import annotations

import pytest

import vk_harness as h


def test_no_key_material_in_any_captured_output():
    if not h.LEDGER.captures:
        pytest.skip("nothing captured: run the whole real-OpenBao layer")
    h.assert_no_key_material_captured()
