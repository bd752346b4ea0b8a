"""A webhook receiver for the tests: verifies every delivery with the official Standard Webhooks
library (PyPI `standardwebhooks`) and answers as its path says.

    python3 receiver.py            # prints the port it listens on (127.0.0.1), then serves

Paths: /chat/… (200 without a signature: Slack's and Teams' incoming webhooks are unsigned),
/ok (204), /fail-twice (500 to the first two attempts of each webhook-id, then 204),
/always-500, /slow (answers after 3 s), /redirect (302 to /ok, which must not be followed).
GET /received lists every request as JSON: path, webhook-id, whether the signature verified,
and the payload.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = os.environ["WEBHOOK_SECRET"]
received = []
attempts = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/received":
            self.send_response(404)
            self.end_headers()
            return
        with lock:
            body = json.dumps(received).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        data = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = Webhook(SECRET).verify(data, headers)
            verified = True
        except WebhookVerificationError as e:
            payload, verified = {"error": str(e)}, False
        msg_id = headers.get("webhook-id", "")
        with lock:
            attempts[(self.path, msg_id)] = attempts.get((self.path, msg_id), 0) + 1
            attempt = attempts[(self.path, msg_id)]
            received.append({"path": self.path, "id": msg_id, "verified": verified, "payload": payload, "attempt": attempt, "at": time.time()})
        if self.path.startswith("/chat/"):
            payload, verified = json.loads(data or b"null"), True
            with lock:
                received[-1]["payload"], received[-1]["verified"] = payload, True
        if self.path == "/slow":
            time.sleep(3)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("location", "/ok")
        elif self.path == "/always-500" or (self.path == "/fail-twice" and attempt <= 2):
            self.send_response(500)
        elif not verified:
            self.send_response(401)
        else:
            self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
