#!/usr/bin/python3
"""A stand-in for the Hugging Face hub on 127.0.0.1, for tests/test_hub_download.cpp.

Serves /{org}/{name}/resolve/{revision}/{file} for the files of one folder (--root) as the hub
does: X-Repo-Commit on every answer; regular files answer 200 with ETag = their git blob id; LFS
files (*.safetensors, *.bin) answer 302 to /cdn/<sha256>/<file> with X-Linked-Etag = the sha256
and X-Linked-Size; /cdn/ honours "Range: bytes=N-" (206). Missing files, repositories and
revisions are 404 with the hub's X-Error-Code.

Modes (--mode): normal; drop (the first /cdn/ download of each file stops half-way and the
connection is closed); token (401 without "Authorization: Bearer <--token>"); corrupt (/cdn/ sends
content whose sha256 is not the ETag).

Prints "<port> <pid>" on the first line of stdout. Exits after --timeout seconds, on GET
/__shutdown, or when its parent process goes away. With --log, appends one line per request.
"""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "3f1e2d4c5b6a79880123456789abcdef01234567"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--id", default="acme/tiny4")
    ap.add_argument("--mode", default="normal", choices=["normal", "drop", "token", "corrupt"])
    ap.add_argument("--token", default="hf_test_token")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--log", default="")
    args = ap.parse_args()

    files = {}
    for name in sorted(os.listdir(args.root)):
        path = os.path.join(args.root, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            files[name] = {
                "data": data,
                "sha256": hashlib.sha256(data).hexdigest(),
                "git": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                "lfs": name.endswith((".safetensors", ".bin")),
            }
    dropped = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def record(self, status):
            if args.log:
                with lock, open(args.log, "a") as f:
                    f.write("%s %s range=%s auth=%s status=%d\n" % (
                        self.command, self.path, self.headers.get("Range", "-"),
                        "yes" if self.headers.get("Authorization") else "no", status))

        def reply(self, status, headers, body=b""):
            self.record(status)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def do_HEAD(self):
            self.handle_any()

        def do_GET(self):
            self.handle_any()

        def handle_any(self):
            path = self.path.split("?", 1)[0]
            if path == "/__shutdown":
                self.reply(200, {}, b"bye")
                threading.Thread(target=server.shutdown, daemon=True).start()
                return
            if path.startswith("/cdn/"):
                return self.cdn(path)
            parts = path.lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self.reply(404, {"X-Error-Code": "EntryNotFound"}, b"not found")
            if args.mode == "token" and self.headers.get("Authorization") != "Bearer " + args.token:
                return self.reply(401, {"X-Error-Code": "GatedRepo"}, b"Invalid credentials")
            repo, rev, name = parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:])
            if repo != args.id:
                return self.reply(404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found")
            if rev not in ("main", COMMIT):
                return self.reply(404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found")
            f = files.get(name)
            if f is None:
                return self.reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, b"Entry not found")
            if f["lfs"]:
                host = "http://127.0.0.1:%d" % server.server_address[1]
                return self.reply(302, {
                    "Location": "%s/cdn/%s/%s?X-Amz-Signature=fake" % (host, f["sha256"], name),
                    "X-Repo-Commit": COMMIT,
                    "X-Linked-Etag": '"%s"' % f["sha256"],
                    "X-Linked-Size": str(len(f["data"])),
                    "ETag": '"%s"' % f["git"],
                }, b"")
            return self.reply(200, {"X-Repo-Commit": COMMIT, "ETag": '"%s"' % f["git"],
                                    "Content-Type": "application/octet-stream"}, f["data"])

        def cdn(self, path):
            parts = path.split("/")  # "", "cdn", sha, name
            f = files.get(parts[3]) if len(parts) == 4 else None
            if f is None or f["sha256"] != parts[2]:
                return self.reply(403, {}, b"AccessDenied")
            data = f["data"]
            if args.mode == "corrupt":
                data = bytearray(data)
                data[len(data) // 2] ^= 0xFF
                data = bytes(data)
            total = len(data)
            rng = self.headers.get("Range")
            start = 0
            if rng:
                if not rng.startswith("bytes=") or not rng.endswith("-"):
                    return self.reply(416, {"Content-Range": "bytes */%d" % total})
                start = int(rng[6:-1])
                if start >= total:
                    return self.reply(416, {"Content-Range": "bytes */%d" % total})
            headers = {"ETag": '"%s"' % f["sha256"], "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            if args.mode == "drop" and self.command == "GET" and not rng:
                with lock:
                    first = parts[3] not in dropped
                    dropped.add(parts[3])
                if first:  # promise everything, send half, hang up
                    self.record(200)
                    self.send_response(200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(total))
                    self.end_headers()
                    self.wfile.write(data[: total // 2])
                    self.wfile.flush()
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
            if rng:
                headers["Content-Range"] = "bytes %d-%d/%d" % (start, total - 1, total)
                return self.reply(206, headers, data[start:])
            return self.reply(200, headers, data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    parent = os.getppid()

    def watchdog():
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    print(server.server_address[1], os.getpid(), flush=True)
    server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
