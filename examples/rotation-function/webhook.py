#!/usr/bin/env python3
"""A webhook rotator for Tumbler: an HTTPS endpoint that runs rotate.py's
lambda_handler for each step Tumbler POSTs, after checking the request is
Tumbler's:

- X-Tumbler-Signature is `v1=` + hex HMAC-SHA256(secret, "<timestamp>.<delivery>.<body>");
- X-Tumbler-Timestamp is within five minutes of now;
- X-Tumbler-Delivery was not seen before (a replay is refused).

It answers 200 when the step is done, 401 for a request it refuses, 500
with the error when the step failed.

    python3 webhook.py --port 9443 --cert server.pem --key server.key \\
        --secret-file signing-secret --target /srv/passwords
    tumbler server ... --webhook-rotator 'demo=https://127.0.0.1:9443/ secret-file=signing-secret ca=ca.pem'

Its Secrets Manager calls go to SECRETS_MANAGER_ENDPOINT with the standard
AWS credential chain (set AWS_CA_BUNDLE to Tumbler's ca.pem).
"""

import argparse
import hashlib
import hmac
import http.server
import json
import logging
import os
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rotate  # noqa: E402

MAX_SKEW = 300


class Seen:
    """Delivery ids of the last MAX_SKEW seconds (older ones fail the clock check)."""

    def __init__(self):
        self.ids = {}
        self.lock = threading.Lock()

    def first_time(self, delivery, now):
        with self.lock:
            for d, t in list(self.ids.items()):
                if now - t > 2 * MAX_SKEW:
                    del self.ids[d]
            if delivery in self.ids:
                return False
            self.ids[delivery] = now
            return True


def make_handler(secret, seen):
    class Handler(http.server.BaseHTTPRequestHandler):
        def refuse(self, status, why):
            body = why.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            timestamp = self.headers.get("X-Tumbler-Timestamp", "")
            delivery = self.headers.get("X-Tumbler-Delivery", "")
            signature = self.headers.get("X-Tumbler-Signature", "")
            expected = "v1=" + hmac.new(
                secret, timestamp.encode() + b"." + delivery.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(signature.encode(), expected.encode()):
                return self.refuse(401, "bad or missing signature")
            now = time.time()
            if not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_SKEW:
                return self.refuse(401, "stale timestamp")
            if not seen.first_time(delivery, now):
                return self.refuse(401, "replayed delivery")
            try:
                rotate.lambda_handler(json.loads(body), None)
            except Exception as e:
                return self.refuse(500, "%s: %s" % (type(e).__name__, e))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):
            logging.info("%s " + fmt, self.address_string(), *args)

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", help="PEM certificate (without it: plain HTTP, for loopback benchmarks)")
    p.add_argument("--key")
    p.add_argument("--secret-file", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--fail-step-file")
    a = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    os.environ["ROTATION_TARGET_FILE"] = a.target
    if a.fail_step_file:
        os.environ["ROTATION_FAIL_STEP_FILE"] = a.fail_step_file
    with open(a.secret_file, "rb") as f:
        secret = f.read().rstrip(b"\r\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(secret, Seen()))
    scheme = "http"
    if a.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(a.cert, a.key)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print("webhook: listening on %s://127.0.0.1:%d/" % (scheme, server.server_address[1]), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
