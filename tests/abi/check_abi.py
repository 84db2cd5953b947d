#!/usr/bin/env python3
"""ABI checks of libxg2g.so: SONAME, exported symbols, header declarations.

Usage: check_abi.py LIBRARY VERSION_SCRIPT CAPI_TEST_DIR HEADER...
(the plain-C tests, every *.c file in CAPI_TEST_DIR, must together call every
exported function)
Fails (exit 1) with one line per problem.
"""
import glob
import os
import re
import subprocess
import sys


def readelf_dynamic(lib):
    out = subprocess.run(["readelf", "-dW", lib], check=True, capture_output=True, text=True).stdout
    soname = re.findall(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    return (soname[0] if soname else None), needed


def dynamic_symbols(lib):
    """(defined, undefined) function/object symbol names of the dynamic table."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", lib], check=True, capture_output=True,
                         text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 8 or not parts[0].rstrip(":").isdigit():
            continue
        kind, bind, ndx, name = parts[3], parts[4], parts[6], parts[7]
        name = name.split("@")[0]
        if not name or kind in ("SECTION", "FILE"):
            continue
        if ndx == "UND":
            undefined.add(name)
        elif bind in ("GLOBAL", "WEAK"):
            defined.add(name)
    return defined, undefined


def map_globals(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    names = set()
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, flags=re.S):
        names.update(n.strip() for n in block.split(";") if n.strip())
    return names


def header_functions(paths):
    names = set()
    for path in paths:
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        names.update(re.findall(r"XG2G_API\([^)]*\)\s*(xg2g_\w+)\s*\(", text))
    return names


def called_functions(capi_test_dir):
    """(names called by the plain-C tests, the test files read)."""
    sources = sorted(glob.glob(os.path.join(capi_test_dir, "*.c")))
    called = set()
    for path in sources:
        text = open(path, encoding="utf-8").read()
        # A name in a comment is not a call.
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        text = re.sub(r"^\s*//[^\n]*", "", text, flags=re.M)
        called.update(re.findall(r"\b(xg2g_\w+)\s*\(", text))
    return called, sources


def main(argv):
    lib, version_script, capi_test_dir, headers = argv[1], argv[2], argv[3], argv[4:]
    problems = []

    soname, needed = readelf_dynamic(lib)
    if soname != "libxg2g.so.0":
        problems.append(f"SONAME is {soname!r}, expected 'libxg2g.so.0'")
    for dep in needed:
        if re.match(r"lib(crypto|ssl)\.so", dep):
            problems.append(f"links the system {dep}; BoringSSL must be private and static")

    defined, undefined = dynamic_symbols(lib)
    exported = {s for s in defined if not s.startswith("XG2G_")}  # version node names
    listed = map_globals(version_script)
    declared = header_functions(headers)

    for name in sorted(exported):
        if not name.startswith("xg2g_"):
            problems.append(f"exported symbol without the xg2g_ prefix: {name}")
    for name in sorted(exported - listed):
        problems.append(f"exported but not in the version script: {name}")
    for name in sorted(listed - exported):
        problems.append(f"in the version script but not exported: {name}")
    for name in sorted(declared - listed):
        problems.append(f"declared in a header but not in the version script: {name}")
    for name in sorted(listed - declared):
        problems.append(f"in the version script but not declared in a header: {name}")
    called, sources = called_functions(capi_test_dir)
    if not sources:
        problems.append(f"no plain-C tests (*.c) in {capi_test_dir}")
    for name in sorted(listed - called):
        problems.append(f"never called by a plain-C test in {capi_test_dir}: {name}")
    # Anything the private BoringSSL defines or hooks must resolve inside the
    # library: an undefined (even weak) reference would bind to the process's
    # OpenSSL or to whatever else happens to export the name.
    crypto_imports = sorted(s for s in undefined
                            if re.match(r"(EVP|X509|PEM|RSA|EC_KEY|BIO|RAND|SHA256|OPENSSL|CRYPTO|"
                                        r"BN|ERR|ASN1|sdallocx)_?", s))
    for name in crypto_imports:
        problems.append(f"imports a crypto symbol from outside: {name}")

    for p in problems:
        print("ABI: " + p)
    print(f"{len(exported)} exported symbols, {len(declared)} declared functions, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
