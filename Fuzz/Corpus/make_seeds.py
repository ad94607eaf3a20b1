#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (Fuzz/Corpus/<target>/), a handful of small
real inputs each. Run once and commit the output; re-run to refresh. Needs openssl, age and
Tests/ArchiveTests/make_snapshot.py. The Vault answers were captured from a real OpenBao 2.x
dev server (`bao server -dev`, sys/health, seal-status, an AppRole login, renew-self, an error)
and are kept in Fuzz/Corpus/vault-answers/ so this script does not need a server (the token
and accessor of the login and renew answers were replaced by placeholders of the same length).

Every seed starts with the selector byte the target reads first (FuzzInput), except for
fuzz-config and fuzz-keyshares, which read the whole input."""
import gzip, io, os, subprocess, sys, tempfile, pathlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# The test identity the age seeds are encrypted to (also in FuzzAgeFile.swift). Test only.
AGE_IDENTITY = b"AGE-SECRET-KEY-1N5Y3HSYMNJ5JFS0722JUAMXASG9444UNYXLTA5JA6EFQAG97Q55S0EYAHS"
AGE_RECIPIENT = "age1ugvxkq980k5c964j0u5768gw66gmuvfrxuzfc2myaqjxgfkwmqdqr7egp7"


def write(target, name, data):
    d = HERE / target
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(data)


def run(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, **kw).stdout


def config():
    example = (ROOT / "deploy/vaultkeeper.toml.example").read_bytes()
    write("fuzz-config", "example.toml", example)
    write("fuzz-config", "minimal.toml", b'[vault]\naddress = "https://127.0.0.1:8200"\n')
    write("fuzz-config", "peers.toml", b'[vault]\naddress = "https://10.0.0.1:8200"\ntimeout = "3s"\n\n'
          b'[[peer]]\naddress = "https://10.0.0.2:8200"\n\n[[peer]]\naddress = "https://[fd00::3]:8200"\n\n'
          b'[health]\ninterval = "5s"\nfast_interval = "250ms"\nmax_backoff = "30s"\n\n'
          b'[unseal]\nenabled = true\ncredential = "unseal-keys"\nafter = "restart"\n')
    write("fuzz-config", "snapshot.toml", b'[vault]\naddress = "unix:///run/vault/vault.sock"\n\n'
          b'[snapshot]\nenabled = true\ndirectory = "/tmp"\ntoken_credential = "snapshot-token"\ninterval = "1h"\n'
          b'keep_last = 24\nkeep_daily = 7\nmax_age = "30d"\nmin_free_space = "1GiB"\n\n'
          b'[snapshot.s3]\nendpoint = "https://s3.eu-central-1.amazonaws.com"\nbucket = "backups"\nprefix = "vault/"\n'
          b'region = "eu-central-1"\naccess_key_id_credential = "s3-id"\nsecret_access_key_credential = "s3-secret"\n')
    write("fuzz-config", "syntax-error.toml", b'[vault\naddress = "x"\n')


def toml():
    """Every other small valid case and every twelfth invalid one of the TOML conformance
    corpus (Tests/VaultKeeperTests/TOMLCorpus): variety without a large corpus."""
    corpus = ROOT / "Tests/VaultKeeperTests/TOMLCorpus"
    valid = [f for f in sorted(corpus.glob("valid/**/*.toml")) if f.stat().st_size < 1500]
    for f in valid[::2]:
        write("fuzz-toml", "valid-" + "-".join(f.relative_to(corpus / "valid").with_suffix("").parts) + ".toml", f.read_bytes())
    for f in sorted(corpus.glob("invalid/**/*.toml"))[::12]:
        write("fuzz-toml", "invalid-" + "-".join(f.relative_to(corpus / "invalid").with_suffix("").parts) + ".toml", f.read_bytes())


def keyshares():
    hexkeys = [os.urandom(33).hex() for _ in range(5)]
    import base64, json
    b64 = [base64.b64encode(bytes.fromhex(h)).decode() for h in hexkeys]
    cli = {"unseal_keys_b64": b64, "unseal_keys_hex": hexkeys, "unseal_shares": 5, "unseal_threshold": 3,
           "recovery_keys_b64": [], "recovery_keys_hex": [], "recovery_keys_shares": 0, "recovery_keys_threshold": 0,
           "root_token": "s.0123456789abcdefABCDEF01"}
    write("fuzz-keyshares", "operator-init.json", json.dumps(cli, indent=2).encode() + b"\n")
    api = {"keys": hexkeys[:3], "keys_base64": b64[:3], "root_token": "s.0123456789abcdefABCDEF01"}
    write("fuzz-keyshares", "sys-init.json", json.dumps(api).encode())
    write("fuzz-keyshares", "plain.txt", ("# three of five\n" + "\n".join(b64[:2]) + "\n" + hexkeys[2] + "\n").encode())
    write("fuzz-keyshares", "recovery.json", json.dumps({"recovery_keys_b64": b64[:1], "unseal_keys_b64": None}).encode())


def vault_json():
    answers = HERE / "vault-answers"
    # selector: low 3 bits pick the call, the rest the status (FuzzVaultJSON.swift)
    statuses = [200, 429, 472, 473, 474, 501, 503, 530, 204, 307, 400, 403, 500, 502]
    def sel(call, status):
        return bytes([(statuses.index(status) << 3) | call])
    a = lambda n: (answers / n).read_bytes()
    write("fuzz-vault-json", "health-active", sel(0, 200) + a("health-active.json"))
    write("fuzz-vault-json", "health-sealed", sel(1, 503) + a("health-sealed.json"))
    write("fuzz-vault-json", "seal-status", sel(2, 200) + a("seal-status.json"))
    write("fuzz-vault-json", "unseal-sealed", sel(3, 200) + a("seal-status-sealed.json"))
    write("fuzz-vault-json", "unseal-wrong-key", sel(3, 400) + b'{"errors":["cipher: message authentication failed"]}')
    write("fuzz-vault-json", "renew", sel(4, 200) + a("renew.json"))
    write("fuzz-vault-json", "login", sel(5, 200) + a("login.json"))
    write("fuzz-vault-json", "errors", sel(6, 503) + a("errors-denied.json"))
    write("fuzz-vault-json", "redirect", sel(7, 307) + b"https://10.0.0.2:8200/v1/sys/storage/raft/snapshot")


def certificates():
    with tempfile.TemporaryDirectory() as t:
        def ossl(*args):
            run("openssl", *args, cwd=t)
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "3650", "-subj", "/CN=fuzz test CA")
        leaves = {"ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "rsa": ["-newkey", "rsa:2048"],
                  "ed25519": ["-newkey", "ed25519"]}
        ext = pathlib.Path(t, "ext.cnf")
        ext.write_text("subjectAltName=DNS:vault.example.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        for kind, newkey in leaves.items():
            ossl("req", *newkey, "-nodes", "-keyout", f"{kind}.key", "-out", f"{kind}.csr", "-subj", "/CN=vault.example.test")
            ossl("x509", "-req", "-in", f"{kind}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "3650",
                 "-extfile", "ext.cnf", "-out", f"{kind}.pem")
        r = lambda n: pathlib.Path(t, n).read_bytes()
        # selector 0: inspect(cert NUL key NUL ca); 1: the served chain (leaf NUL ca)
        write("fuzz-certificates", "ec-leaf-key-ca", b"\x00" + r("ec.pem") + b"\x00" + r("ec.key") + b"\x00" + r("ca.pem"))
        write("fuzz-certificates", "rsa-leaf-key", b"\x00" + r("rsa.pem") + b"\x00" + r("rsa.key"))
        ossl("pkey", "-in", "rsa.key", "-traditional", "-out", "rsa-pkcs1.key")
        write("fuzz-certificates", "rsa-pkcs1-mismatch", b"\x00" + r("ec.pem") + b"\x00" + r("rsa-pkcs1.key") + b"\x00" + r("ca.pem"))
        ossl("ec", "-in", "ec.key", "-out", "ec-sec1.key")
        write("fuzz-certificates", "ec-sec1", b"\x00" + r("ec.pem") + r("ca.pem") + b"\x00" + r("ec-sec1.key"))
        write("fuzz-certificates", "ed25519", b"\x02" + r("ed25519.pem") + b"\x00" + r("ed25519.key") + b"\x00" + r("ca.pem"))
        ossl("pkey", "-in", "ec.key", "-aes256", "-passout", "pass:x", "-out", "ec-enc.key")
        write("fuzz-certificates", "encrypted-key", b"\x00" + r("ec.pem") + b"\x00" + r("ec-enc.key"))
        write("fuzz-certificates", "served-chain", b"\x01" + r("ec.pem") + b"\x00" + r("ca.pem"))


def snapshots():
    with tempfile.TemporaryDirectory() as t:
        maker = ROOT / "Tests/ArchiveTests/make_snapshot.py"
        for name, args in {"good": [], "tiny-state": ["--state-bytes", "1"], "bad-hash": ["--fault", "bad-hash"],
                           "size-mismatch": ["--fault", "size-mismatch"], "extra-entry": ["--fault", "extra-entry"]}.items():
            out = pathlib.Path(t, name + ".snap")
            if "--state-bytes" not in args:
                args = args + ["--state-bytes", "600"]
            run(sys.executable, str(maker), str(out), *args)
            gz = out.read_bytes()
            if len(gz) > 8192:
                continue
            tar = gzip.decompress(gz)
            write("fuzz-snapshot-gzip", name, b"\x02" + gz)
            write("fuzz-snapshot-tar", name, b"\x02" + tar)
        # a cut-off download
        write("fuzz-snapshot-gzip", "truncated", b"\x01" + (HERE / "fuzz-snapshot-gzip/good").read_bytes()[1:200])


def age():
    with tempfile.TemporaryDirectory() as t:
        ident = pathlib.Path(t, "id.txt")
        ident.write_bytes(b"# test identity\n" + AGE_IDENTITY + b"\n")
        other = run("age-keygen", "-y", str(ident)).decode().strip()
        assert other == AGE_RECIPIENT, other
        snap = (HERE / "fuzz-snapshot-gzip/tiny-state").read_bytes()[1:]
        for name, plaintext in {"hello": b"hello, vaultkeeper\n", "empty": b"", "snapshot": snap}.items():
            enc = run("age", "-r", AGE_RECIPIENT, input=plaintext)
            write("fuzz-age-file", name, b"\x01" + enc)
        other_id = run("age-keygen").decode()
        other_rcpt = [l for l in other_id.splitlines() if l.startswith("# public key: ")][0].split(": ")[1]
        write("fuzz-age-file", "two-recipients", b"\x02" + run("age", "-r", other_rcpt, "-r", AGE_RECIPIENT, input=b"two\n"))
        write("fuzz-age-file", "not-ours", b"\x03" + run("age", "-r", other_rcpt, input=b"x"))
        write("fuzz-age-file", "armored", b"\x00" + run("age", "-a", "-r", AGE_RECIPIENT, input=b"x"))
        write("fuzz-age-keys", "identity-file", b"\x00" + ident.read_bytes())
        write("fuzz-age-keys", "identity-keygen", b"\x00" + other_id.encode())
        write("fuzz-age-keys", "recipients-file", b"\x01# backups\n" + AGE_RECIPIENT.encode() + b"\n" + other_rcpt.encode() + b"\n")


def s3():
    listing = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>backups</Name><Prefix>vaultkeeper/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken><Contents><Key>vaultkeeper/vaultkeeper-prod-20261122T142351Z-1234.snap</Key><LastModified>2026-11-22T14:23:51.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>20480</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>vaultkeeper/vaultkeeper-prod-20261123T142351Z-1300.snap.age</Key><LastModified>2026-11-23T14:23:51Z</LastModified><ETag>"abc-2"</ETag><Size>20999</Size></Contents><Contents><Key>vaultkeeper/other/file.txt</Key><Size>3</Size></Contents></ListBucketResult>"""
    write("fuzz-s3-xml", "list-page", b"\x00" + listing)
    write("fuzz-s3-xml", "list-last", b"\x00<ListBucketResult><IsTruncated>false</IsTruncated><!-- c --><Contents><Key><![CDATA[vaultkeeper/a&b]]></Key><Size>0</Size></Contents></ListBucketResult>")
    write("fuzz-s3-xml", "error", b"\x01<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>backups</BucketName><RequestId>4442587FB7D0A2F9</RequestId></Error>")
    write("fuzz-s3-xml", "upload-id", b"\x02<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>backups</Bucket><Key>vaultkeeper/x.snap</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>")
    write("fuzz-s3-xml", "entities", b"\x01<Error><Code>A&amp;&#x42;&#67;</Code><Message>&lt;&gt;&quot;&apos;</Message></Error>")


if __name__ == "__main__":
    config(); toml(); keyshares(); vault_json(); certificates(); snapshots(); age(); s3()
