# Minimal Vault/OpenBao policy for vaultkeeper's Raft snapshot duty: take a snapshot
# (`GET /v1/sys/storage/raft/snapshot` needs "read" on that path) and renew its own token
# (`auth/token/renew-self`). Nothing else: the role below leaves out the "default" policy, which
# would otherwise be the only thing granting the renewal (and a lot more besides).
#
# An AppRole for it, as root or another admin (OpenBao: type `bao` for `vault`):
#
#   vault policy write vaultkeeper-snapshot /usr/share/doc/vaultkeeper/examples/vault-policy-snapshot.hcl
#   vault auth enable approle
#   vault write auth/approle/role/vaultkeeper token_policies=vaultkeeper-snapshot \
#       token_ttl=10m token_max_ttl=30m secret_id_ttl=0 token_no_default_policy=true
#   umask 077
#   vault read -field=role_id auth/approle/role/vaultkeeper/role-id > role_id
#   vault write -f -field=secret_id auth/approle/role/vaultkeeper/secret-id > secret_id
#
# Then hand role_id and secret_id to vaultkeeper ([snapshot] role_id_file/secret_id_file, mode
# 0600 and owned by the vaultkeeper user; better: encrypted credentials, role_id_credential and
# secret_id_credential, see vaultkeeper.toml(5)) and delete the copies. vaultkeeper renews the
# token at two thirds of token_ttl and logs in afresh before token_max_ttl ends it.
#
# Restoring (`PUT sys/storage/raft/snapshot` / `snapshot-force`) is deliberately not allowed:
# restore with an operator's token (`vaultkeeper snapshot restore --token-file`).
path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
