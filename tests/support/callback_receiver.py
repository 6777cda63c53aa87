"""callback_receiver: a stand-in for the workflow's callback endpoint.

Listens on 127.0.0.1, records every POST (headers and raw body) as one JSON
line in --log, and answers --status (default 200), except that the first
--fail-first requests get --fail-status (default 500). It verifies nothing:
the tests check signatures themselves, independently of crier's code.

    python3 callback_receiver.py --port 0 --log FILE [--status 400]
        [--fail-first 2] [--fail-status 500] [--delay SECONDS]

Prints "READY <port>" on stdout once it accepts connections.
"""
import argparse
import base64
import http.server
import json
import sys
import threading
import time

MAX_BODY = 1 << 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", required=True)
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=500)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = ap.parse_args()

    lock = threading.Lock()
    state = {"count": 0}
    out = open(args.log, "a", encoding="utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY))
            with lock:
                state["count"] += 1
                n = state["count"]
                status = args.fail_status if n <= args.fail_first else args.status
                record = {
                    "n": n,
                    "path": self.path,
                    "received_at": time.time(),
                    "status": status,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body_base64": base64.b64encode(body).decode("ascii"),
                }
                out.write(json.dumps(record) + "\n")
                out.flush()
            if args.delay > 0:
                time.sleep(args.delay)
            reply = b'{"ok":true}' if status < 300 else b'{"error":"test answer"}'
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:
                pass  # the sender gave up or was killed: the request is recorded

        def log_message(self, fmt, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("READY %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
