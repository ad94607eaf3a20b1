# OpenBao inside the e2e container: one Raft node, TLS listener on loopback. The suite rewrites
# the two tls_*_file lines for the certbot scenario (then they name certbot's live/ files).
ui = false
log_level = "info"

storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "e2e"
}

listener "tcp" {
  address         = "127.0.0.1:8200"
  cluster_address = "127.0.0.1:8201"
  tls_cert_file   = "@TLS_CERT@"
  tls_key_file    = "@TLS_KEY@"
}

api_addr     = "https://127.0.0.1:8200"
cluster_addr = "https://127.0.0.1:8201"
