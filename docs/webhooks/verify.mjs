// A closeloop webhook receiver: verifies each delivery with the official Standard Webhooks
// library and handles each webhook-id once.
//
//   npm install standardwebhooks
//   WEBHOOK_SECRET=whsec_... PORT=8000 node verify.mjs
//
// Point a campaign's [[webhooks]] url at http://127.0.0.1:8000/ (http:// only to loopback: use
// https:// for anything else).
import { createServer } from 'node:http';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

const webhook = new Webhook(process.env.WEBHOOK_SECRET); // the "whsec_..." string, as in the campaign file
const seen = new Set(); // webhook-ids handled already; keep these in your database in real life

createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let message;
    try {
      // Checks webhook-signature over id, timestamp and the raw body (verify the bytes as they
      // came, before any JSON parsing), and that webhook-timestamp is within 5 minutes of now.
      message = webhook.verify(Buffer.concat(chunks).toString('utf8'), req.headers);
    } catch (e) {
      if (!(e instanceof WebhookVerificationError)) throw e;
      console.log('refused:', e.message);
      return res.writeHead(400).end();
    }
    const id = req.headers['webhook-id'];
    if (!seen.has(id)) { // a retry of a delivery you have handled: answer 2xx, do nothing
      seen.add(id);
      console.log(id, message.type, message.data.invitation_id, message.data.response?.score ?? '');
    }
    res.writeHead(204).end(); // any 2xx within the timeout is a delivery; anything else is retried
  });
}).listen(Number(process.env.PORT ?? 8000), '127.0.0.1');
