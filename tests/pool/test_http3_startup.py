"""`--http3` start-up: one clear line and a non-zero exit where it cannot run."""

import sys

from ..server_process import TESTS_DIR, ServerProcess


def start(*args: str) -> ServerProcess:
    return ServerProcess(["--port", "0", "--app-dir", str(TESTS_DIR), *args, "apps:app"])


def test_http3_needs_a_certificate() -> None:
    server = start("--http3")
    assert server.wait_exit() != 0
    assert (
        server.stderr.strip()
        == "pounce-sync: error: --http3 needs --ssl-certfile and --ssl-keyfile"
    )


def test_http3_on_an_interpreter_without_it(tmp_path) -> None:
    """Before 3.14 the reason is the interpreter; on 3.14 a key zoomies cannot sign with."""
    import subprocess

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = start("--http3", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    assert server.wait_exit() != 0
    lines = [line for line in server.stderr.splitlines() if "error" in line]
    if sys.version_info < (3, 14):
        expected = f"--http3 needs Python 3.14 or later (this is {sys.version.split()[0]})"
    else:
        expected = "--http3 needs an ECDSA P-256 TLS key (bengal-zoomies signs with no other)"
    assert lines == [f"pounce-sync: error: {expected}"], server.stderr


def test_the_server_imports_zoomies_only_for_http3() -> None:
    """Checked in a fresh interpreter: other tests of this process may have imported it."""
    import subprocess

    code = "import sys, pounce_sync.server.run, async_pool; print('zoomies' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
