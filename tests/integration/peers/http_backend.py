"""A plain HTTP/1.1 backend for tests: answers every request with what it received.

The response body is JSON: method, target, version, headers (in order, as sent), the body
length, the server's name and the sequence number of the TCP connection the request came on
(``connection``, from 1), so tests can count backend connections. /status/NNN answers with
that status; /chunked answers with a chunked body; /close answers with a body delimited by
closing the connection; /big/N sends N bytes; /stream echoes the request body as a chunked
response piece by piece while it is still arriving; /hop answers with hop-by-hop headers;
/silent reads the request and never answers; /health answers with the status last set by
/set-health/NNN (200 at start), for health-check tests. The server's name (--name) is in the
X-Backend header, so tests can see which server answered. Prints "listening on PORT" when
ready.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are separate writes: without TCP_NODELAY the body waits for the
    # proxy's delayed ACK of the head (40 ms per response).
    disable_nagle_algorithm = True
    server_name_tag = "backend"
    connection_ids = itertools.count(1)
    connection_lock = threading.Lock()
    connection_id = 0
    #: What /health answers (changed by /set-health/NNN).
    health_status = 200

    def setup(self) -> None:
        super().setup()
        with Handler.connection_lock:
            self.connection_id = next(Handler.connection_ids)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the JSON."""

    def _stream(self) -> None:
        """Echo the body back as it arrives: proves both bodies are streamed, not buffered."""
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Backend", self.server_name_tag)
        self.end_headers()
        self.wfile.flush()
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        left = int(self.headers.get("Content-Length") or 0)
        while True:
            if chunked:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                piece = self.rfile.read(size)
                self.rfile.readline()
            else:
                if left <= 0:
                    break
                piece = self.rfile.read1(min(left, 65536))  # type: ignore[attr-defined]
                if not piece:
                    break
                left -= len(piece)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _handle(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/stream"):
            self._stream()
            return
        if path.startswith("/silent"):
            self.rfile.read()  # until the proxy gives up and closes
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        elif length:
            body = self.rfile.read(length)
        info = {"method": self.command, "target": self.path, "version": self.request_version,
                "headers": list(self.headers.items()), "body_length": len(body),
                "backend": self.server_name_tag, "connection": self.connection_id}
        payload = json.dumps(info).encode()
        status = 200
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
        if path.startswith("/set-health/"):
            Handler.health_status = int(path.split("/")[2])
        if path == "/health":
            status = Handler.health_status
        if path.startswith("/chunked"):
            self.send_response(status)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Backend", self.server_name_tag)
            self.end_headers()
            for i in range(0, len(payload), 7):
                piece = payload[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if path.startswith("/close"):
            self.send_response(status)
            self.send_header("X-Backend", self.server_name_tag)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
            return
        if path.startswith("/hop"):
            self.send_response(status)
            self.send_header("Connection", "X-Private, keep-alive")
            self.send_header("X-Private", "secret")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("Proxy-Connection", "keep-alive")
            self.send_header("Upgrade", "h2c")
            self.send_header("X-Public", "kept")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if path.startswith("/big/"):
            size = int(path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            left = size
            while left > 0:
                n = min(left, len(block))
                self.wfile.write(block[:n])
                left -= n
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", self.server_name_tag)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="backend")
    args = parser.parse_args()
    Handler.server_name_tag = args.name
    with Server(("127.0.0.1", args.port), Handler) as httpd:
        print(f"listening on {httpd.server_address[1]}", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            sys.exit(0)


if __name__ == "__main__":
    main()
