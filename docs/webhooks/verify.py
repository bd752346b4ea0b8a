"""A closeloop webhook receiver: verifies each delivery with the official Standard Webhooks
library and handles each webhook-id once.

    pip install standardwebhooks
    WEBHOOK_SECRET=whsec_... PORT=8000 python3 verify.py

Point a campaign's [[webhooks]] url at http://127.0.0.1:8000/ (http:// only to loopback: use
https:// for anything else).
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["WEBHOOK_SECRET"])  # the "whsec_..." string, as in the campaign file
seen = set()  # webhook-ids handled already; keep these in your database in real life


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            # Checks webhook-signature over id, timestamp and the raw body, and that
            # webhook-timestamp is within 5 minutes of now. Returns the parsed JSON.
            message = webhook.verify(body, {k.lower(): v for k, v in self.headers.items()})
        except WebhookVerificationError as e:
            self.answer(400)
            print("refused:", e, flush=True)
            return
        msg_id = self.headers["webhook-id"]
        if msg_id not in seen:  # a retry of a delivery you have handled: answer 2xx, do nothing
            seen.add(msg_id)
            data = message["data"]
            print(msg_id, message["type"], data["invitation_id"], json.dumps(data.get("response", {}).get("score")), flush=True)
        self.answer(204)  # any 2xx within the timeout is a delivery; anything else is retried

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Receiver).serve_forever()
