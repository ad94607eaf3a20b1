# SPDX-License-Identifier: Apache-2.0
"""No unseal key share (hex, base64, any rendering) and no root token of any simulator
initialised in this session appears in anything vaultkeeper produced: daemon stdout/stderr, every
sd_notify datagram, state files, metrics files, one-shot command output, argv.

The check itself is not a test here: it is the teardown of the session fixture
`vk_fixtures.no_secrets_leaked`, which runs after every test of the session whatever the file
order or `-k` selection, and fails the session on a leak. This file proves the scanner finds
what it looks for, and that the check is wired into every test."""

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


def test_the_session_leak_check_is_active(request):
    # Autouse and session-scoped: set up before any test of the session, torn down after all.
    assert "no_secrets_leaked" in request.fixturenames


def test_the_session_check_fails_on_a_leak(monkeypatch):
    planted = h.Ledger()
    planted.register_init({"unseal_keys_hex": ["00112233445566778899aabbccddeeff10"],
                           "unseal_keys_b64": ["ABEiM0RVZneImaq7zN3u/xA="], "root_token": "hvs.example"}, "probe")
    planted.capture("vk notify datagram", b"READY=1")
    monkeypatch.setattr(h, "LEDGER", planted)
    h.assert_no_key_material_captured()  # clean so far
    planted.capture("vk stdout", b"share 00112233445566778899aabbccddeeff10")
    with pytest.raises(AssertionError, match="secrets found"):
        h.assert_no_key_material_captured()


def test_a_daemons_output_is_captured(sim, daemons, config, keyfile):
    """The capture machinery the session check relies on: without it the check would be vacuous."""
    d = daemons(config(sim, key_file=keyfile(sim)), name="capture-probe")
    sim.wait_unsealed()
    d.wait_ready()
    d.close()
    labels = {label for label, _ in h.LEDGER.captures}
    assert "capture-probe notify datagram" in labels, sorted(labels)[:20]
    assert any(label == "capture-probe stderr" and b"message_id=" in data for label, data in h.LEDGER.captures)
    assert "capture-probe argv" in labels
    shares = sim.init_json()["unseal_keys_hex"]
    assert shares and all(share.lower().encode() in h.LEDGER.secrets for share in shares)
