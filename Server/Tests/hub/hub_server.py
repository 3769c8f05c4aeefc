"""A small Hugging Face Hub for tests: repositories in the Hub's URL scheme over TLS, so that
huggingface_hub and phi4-hub can be pointed at it with HF_ENDPOINT.

  GET  /api/models/OWNER/NAME/revision/REV   {"sha", "siblings": [{"rfilename", "size", "lfs"}]}
  GET  /api/models/OWNER/NAME/tree/REV       [{"type", "path", "size", "oid", "lfs"}] (recursive)
  HEAD/GET /OWNER/NAME/resolve/REV/PATH      LFS files: 302 to https://127.0.0.1:PORT/cdn/SHA256 (another
                                             host name) with X-Repo-Commit, X-Linked-Etag,
                                             X-Linked-Size; small files: 200 with ETag (git sha1)
  HEAD/GET /OLD/NAME/resolve/…               a renamed repository: 307 to the new name (relative)
  GET  /cdn/SHA256                           the bytes; Range: bytes=N- answers 206
  GET  /_log, POST /_reset                   the requests seen (method, path, host, authorization)
  POST /_fault?sha=S&mode=truncate&after=N   the next transfer of S stops after N bytes
  POST /_fault?sha=S&mode=corrupt            the next transfer of S has one byte changed

Repositories are given as {repo: {"files": {path: local file}, "token": None | str, "gated": bool}}.
"""
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import threading
import urllib.parse


def make_certificates(folder):
    """A CA and a server certificate for localhost and 127.0.0.1 (openssl); returns (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (os.path.join(folder, n) for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = os.path.join(folder, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=phi4 test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class Hub:
    def __init__(self, repos, folder, commit="0123456789abcdef0123456789abcdef01234567", renamed=None):
        self.commit = commit
        self.renamed = dict(renamed or {})  # old name → repository: resolve answers 307 to the new name
        self.repos = {}
        self.blobs = {}
        for repo, spec in repos.items():
            files = {}
            for path, local in spec["files"].items():
                data = open(local, "rb").read()
                sha = hashlib.sha256(data).hexdigest()
                lfs = path.endswith((".gguf", ".safetensors"))
                files[path] = {"size": len(data), "sha256": sha, "lfs": lfs, "local": local,
                               "gitsha": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
                self.blobs[sha] = local
            self.repos[repo] = {"files": files, "token": spec.get("token"), "gated": spec.get("gated", False)}
        self.log = []
        self.faults = {}
        self.lock = threading.Lock()
        self.ca, cert, key = make_certificates(folder)
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.endpoint = f"https://localhost:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()

    def requests(self):
        with self.lock:
            return list(self.log)

    def reset(self):
        with self.lock:
            self.log.clear()

    def fault(self, sha, mode, after=0):
        with self.lock:
            self.faults[sha] = (mode, after)

    def _handler(hub):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                if not any(k.lower() == "content-length" for k, _ in headers):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD" and body:
                    self.wfile.write(body)

            def _auth(self, repo):
                spec = hub.repos[repo]
                if spec["token"] is None:
                    return None
                got = self.headers.get("Authorization")
                if got is None:
                    return 401
                if got != "Bearer " + spec["token"] or spec["gated"]:
                    return 403
                return None

            def _record(self):
                with hub.lock:
                    hub.log.append({"method": self.command, "path": self.path, "host": self.headers.get("Host", ""),
                                    "authorization": self.headers.get("Authorization"), "range": self.headers.get("Range")})

            def do_POST(self):
                u = urllib.parse.urlparse(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                if u.path == "/_reset":
                    hub.reset()
                elif u.path == "/_fault":
                    hub.fault(q["sha"], q["mode"], int(q.get("after", 0)))
                self._send(200, b"{}")

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                path = urllib.parse.unquote(u.path)
                if path == "/_log":
                    return self._send(200, json.dumps(hub.requests()).encode())
                self._record()
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo = parts[2] + "/" + parts[3]
                    repo = hub.renamed.get(repo, repo)
                    if repo not in hub.repos:
                        return self._send(404, b'{"error": "Repository not found"}')
                    denied = self._auth(repo)
                    if denied:
                        return self._send(denied, b'{"error": "denied"}')
                    files = sorted(hub.repos[repo]["files"].items())
                    if parts[4] == "revision":  # model_info: the commit and the files
                        siblings = [{"rfilename": p, "size": f["size"], **({"lfs": {"sha256": f["sha256"], "size": f["size"]}} if f["lfs"] else {})}
                                    for p, f in files]
                        body = {"id": repo, "sha": hub.commit, "siblings": siblings}
                    else:  # the recursive tree: folders and files
                        folders = sorted({"/".join(p.split("/")[:i]) for p, _ in files for i in range(1, p.count("/") + 1)})
                        body = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in folders]
                        body += [{"type": "file", "oid": f["gitsha"], "size": f["size"], "path": p,
                                  **({"lfs": {"oid": f["sha256"], "size": f["size"], "pointerSize": 130}} if f["lfs"] else {})}
                                 for p, f in files]
                    return self._send(200, json.dumps(body).encode(), [("Content-Type", "application/json")])
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo = parts[0] + "/" + parts[1]
                    rel = "/".join(parts[4:])
                    if repo in hub.renamed:  # a relative redirect on the Hub's own host, no file metadata
                        return self._send(307, b"", [("Location", "/" + hub.renamed[repo] + "/" + "/".join(parts[2:]))])
                    if repo not in hub.repos or rel not in hub.repos[repo]["files"]:
                        return self._send(404, b"", [("X-Error-Code", "EntryNotFound")])
                    denied = self._auth(repo)
                    if denied:
                        return self._send(denied, b"")
                    f = hub.repos[repo]["files"][rel]
                    if f["lfs"]:
                        return self._send(302, b"", [("Location", f"https://127.0.0.1:{hub.port}/cdn/{f['sha256']}"),
                                                      ("X-Repo-Commit", hub.commit), ("X-Linked-Etag", '"%s"' % f["sha256"]),
                                                      ("X-Linked-Size", str(f["size"])), ("ETag", '"%s"' % f["gitsha"])])
                    data = open(f["local"], "rb").read()
                    return self._send(200, data, [("X-Repo-Commit", hub.commit), ("ETag", '"%s"' % f["gitsha"])])
                if len(parts) == 2 and parts[0] == "cdn" and parts[1] in hub.blobs:
                    return self._cdn(parts[1])
                return self._send(404, b"")

            def _cdn(self, sha):
                data = open(hub.blobs[sha], "rb").read()
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                with hub.lock:
                    fault = hub.faults.pop(sha, None)
                body = data[start:]
                if fault and fault[0] == "corrupt" and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                headers = [("Content-Length", str(len(body))), ("ETag", '"%s"' % sha), ("Accept-Ranges", "bytes")]
                if start > 0:
                    headers.append(("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"))
                self.send_response(206 if start > 0 else 200)
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault and fault[0] == "truncate":
                    self.wfile.write(body[:fault[1]])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                view = memoryview(body)
                for i in range(0, len(body), 1 << 20):
                    self.wfile.write(view[i:i + (1 << 20)])

        return Handler


class ConnectProxy:
    """An HTTP CONNECT proxy (what HTTPS_PROXY names): tunnels TLS to the target, logging each target."""

    def __init__(self):
        import socketserver
        import socket
        proxy = self
        self.targets = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                line = data.split(b"\r\n", 1)[0].decode()
                method, target, _ = line.split(" ", 2)
                if method != "CONNECT":
                    self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    return
                proxy.targets.append(target)
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                self.request.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")

                def pipe(a, b):
                    try:
                        while True:
                            chunk = a.recv(1 << 16)
                            if not chunk:
                                break
                            b.sendall(chunk)
                    except OSError:
                        pass
                    finally:
                        for s in (a, b):
                            try:
                                s.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass

                t = threading.Thread(target=pipe, args=(upstream, self.request), daemon=True)
                t.start()
                pipe(self.request, upstream)
                t.join()
                upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
