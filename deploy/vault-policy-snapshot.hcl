# Minimal Vault policy for vaultkeeper's Raft snapshot duty: read (GET) the snapshot, nothing
# else. Taking a snapshot with `GET /v1/sys/storage/raft/snapshot` needs "read" on this path.
#
#   vault policy write vaultkeeper-snapshot /usr/share/doc/vaultkeeper/examples/vault-policy-snapshot.hcl
#   vault write auth/approle/role/vaultkeeper token_policies=vaultkeeper-snapshot \
#       token_ttl=10m token_max_ttl=30m secret_id_ttl=0 token_no_default_policy=true
#
# Restoring (`POST sys/storage/raft/snapshot` / `snapshot-force`) is deliberately not allowed.
path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
