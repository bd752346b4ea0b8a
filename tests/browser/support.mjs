// What both browser test files need: the binary, a free port, `closeloop up --demo` until it is
// serving, and Debian's Chromium.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { chromium } from 'playwright-core';

export const bin = process.env.CLOSELOOP_BIN;
if (!bin) throw new Error('CLOSELOOP_BIN must point at the built closeloop binary');
export const artifacts = new URL('./artifacts/', import.meta.url).pathname;
mkdirSync(artifacts, { recursive: true });

export const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on('error', reject);
});

/** Starts `closeloop up --demo` on `port` with `dataDir`; resolves once it says it is up. */
export async function startDemo(dataDir, port) {
  const server = spawn(bin, ['--data-dir', dataDir, 'up', '--demo', '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let seen = '';
    server.stdout.on('data', (chunk) => { seen += chunk; if (seen.includes('closeloop is up')) resolve(); });
    server.on('exit', (code) => reject(new Error(`closeloop up exited with ${code}:\n${seen}`)));
  });
  return server;
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}
