"""xg2g.tls_check(): the certificate report as a dict, with the options of
version 2 (passphrase). The certificates come from
tests/data/tls/make-fixtures.sh, generated into a temporary directory."""
import os
import shutil
import subprocess

import pytest

import xg2g

# Inside the validity of leaf.pem / chain.pem (2024-01-01 .. 2049-12-31).
NOW = 1_800_000_000
# 2025-12-20: 12 days before the end of leaf-365d.pem (2025-01-01 .. 2026-01-01).
NEAR_END_OF_365D = 1_766_188_800


def _fixtures_script():
    base = os.environ.get("XG2G_TEST_DATA_DIR")
    if not base:
        base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    return os.path.join(base, "tls", "make-fixtures.sh")


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The test certificates' directory (a pathlib.Path)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl program is not installed")
    data = tmp_path_factory.mktemp("tls")
    done = subprocess.run(["sh", _fixtures_script(), str(data), openssl],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return data


def _codes(findings):
    return [f["code"] for f in findings]


def test_a_good_chain_and_key_give_a_valid_report_with_the_leaf_s_facts(tls):
    report = xg2g.tls_check(str(tls / "chain.pem"), str(tls / "leaf.key"), now_unix=NOW)
    assert report["valid"] is True
    assert report["errors"] == [] and report["warnings"] == []
    assert report["subject"].startswith("CN=localhost")
    assert report["sans"] == ["localhost", "xg2g.test", "127.0.0.1", "::1"]
    assert (report["not_before"], report["not_after"]) == ("2024-01-01T00:00:00Z",
                                                           "2049-12-31T23:59:59Z")
    assert (report["key_type"], report["key_bits"]) == ("RSA", 2048)


def test_paths_may_be_pathlib_objects(tls):
    report = xg2g.tls_check(tls / "chain.pem", tls / "leaf.key", now_unix=NOW)
    assert report["valid"] is True


def test_an_encrypted_key_without_a_passphrase_is_key_encrypted_naming_the_file(tls):
    key = tls / "encrypted.key"
    report = xg2g.tls_check(tls / "chain.pem", key, now_unix=NOW)
    assert report["valid"] is False
    assert _codes(report["errors"]) == ["KEY_ENCRYPTED"]
    assert report["errors"][0]["file"] == str(key)


@pytest.mark.parametrize("key", ["encrypted.key", "encrypted-pkcs1.key"])
@pytest.mark.parametrize("passphrase", ["secret", b"secret"])
def test_the_right_passphrase_decrypts_the_key_as_str_or_bytes(tls, key, passphrase):
    report = xg2g.tls_check(tls / "chain.pem", tls / key, now_unix=NOW, passphrase=passphrase)
    assert report["valid"] is True, report["errors"]
    assert (report["key_type"], report["key_bits"]) == ("RSA", 2048)


def test_a_wrong_passphrase_is_key_passphrase_wrong(tls):
    report = xg2g.tls_check(tls / "chain.pem", tls / "encrypted.key", now_unix=NOW,
                            passphrase="not the secret")
    assert report["valid"] is False
    assert _codes(report["errors"]) == ["KEY_PASSPHRASE_WRONG"]


def test_an_unsupported_key_encryption_is_reported_not_raised(tls):
    report = xg2g.tls_check(tls / "chain.pem", tls / "encrypted-scrypt.key", now_unix=NOW,
                            passphrase="secret")
    assert _codes(report["errors"]) == ["KEY_ENCRYPTION_UNSUPPORTED"]


def test_a_passphrase_is_ignored_for_an_unencrypted_key(tls):
    report = xg2g.tls_check(tls / "chain.pem", tls / "leaf.key", now_unix=NOW,
                            passphrase="secret")
    assert report["valid"] is True


def test_a_passphrase_with_a_nul_byte_is_invalid_argument(tls):
    with pytest.raises(xg2g.InvalidArgument) as err:
        xg2g.tls_check(tls / "chain.pem", tls / "encrypted.key", passphrase="sec\0ret")
    assert "passphrase" in err.value.message


def test_warning_options_reach_the_library(tls):
    cert, key = tls / "leaf-365d.pem", tls / "leaf.key"
    default = xg2g.tls_check(cert, key, now_unix=NEAR_END_OF_365D)
    assert default["valid"] is True and _codes(default["warnings"]) == ["CERT_EXPIRING"]
    assert default["days_left"] == 12
    narrow = xg2g.tls_check(cert, key, now_unix=NEAR_END_OF_365D, warn_days=5,
                            warn_fraction=0.01)
    assert narrow["valid"] is True and narrow["warnings"] == []


def test_an_expired_certificate_is_a_report_not_an_exception(tls):
    report = xg2g.tls_check(tls / "expired.pem", tls / "leaf.key", now_unix=NOW)
    assert report["valid"] is False
    assert "CERT_EXPIRED" in _codes(report["errors"])
    assert report["days_left"] < 0


def test_a_missing_file_is_file_not_found_and_a_bad_fraction_is_invalid_argument(tls):
    report = xg2g.tls_check(tls / "absent.pem", tls / "leaf.key", now_unix=NOW)
    assert _codes(report["errors"]) == ["FILE_NOT_FOUND"]
    with pytest.raises(xg2g.InvalidArgument):
        xg2g.tls_check(tls / "chain.pem", tls / "leaf.key", warn_fraction=1.5)
