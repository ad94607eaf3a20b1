"""Runs last (file order): no unseal key share (hex, base64, any rendering) and no root token of
any simulator initialised in this session appears in anything vaultkeeper produced: daemon
stdout/stderr, every sd_notify datagram, state files, metrics files, one-shot command output,
argv."""

from __future__ import annotations

import pytest

import vk_harness as h


def test_the_scanner_finds_a_planted_share():
    ledger = h.Ledger()
    ledger.register_init({"unseal_keys_hex": ["00112233445566778899aabbccddeeff10"],
                          "unseal_keys_b64": ["ABEiM0RVZneImaq7zN3u/xA="], "root_token": "hvs.example"}, "probe")
    ledger.capture("clean", b"nothing to see")
    assert ledger.leaks() == []
    ledger.capture("hex", b"key=00112233445566778899AABBCCDDEEFF10 in upper case")
    ledger.capture("b64", b'{"key":"ABEiM0RVZneImaq7zN3u/xA="}')
    ledger.capture("token", b"X-Vault-Token: hvs.example")
    leaks = ledger.leaks()
    assert any("hex" in x and "HEX" in x for x in leaks), leaks
    assert any("found in b64" in x for x in leaks), leaks
    assert any("root token found in token" in x for x in leaks), leaks


def test_no_key_material_in_any_captured_output():
    if not h.LEDGER.captures:
        pytest.skip("nothing captured: run the whole integration suite")
    h.assert_no_key_material_captured()
