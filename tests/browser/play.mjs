// Play an HLS stream in Debian's headless Chromium and report how far it got, as one JSON
// line on stdout: {"engine":..., "currentTime":..., "fatal":..., "errors":[...]}.
//
//   node play.mjs URL ENGINE SECONDS TIMEOUT_S
//
// ENGINE is hlsjs or native (the player page at URL honours ?engine=), or auto (the page's
// own choice, as a user opening the URL gets). Exit 0 when the video played more than SECONDS
// (its currentTime advanced that far) with no fatal error, 1 otherwise. "waited" lists what
// the page saw while it waited for a first segment ("no playlist", "no segment yet").
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, engine, wantArg, timeoutArg] = process.argv.slice(2);
const want = Number(wantArg || 3);
const timeoutMs = Number(timeoutArg || 60) * 1000;
const exe = ['/usr/bin/chromium', '/usr/lib/chromium/chromium'].find(existsSync);
if (!exe) {
  console.log(JSON.stringify({ fatal: 'chromium is not installed (scripts/setup.sh installs it)' }));
  process.exit(1);
}
const profile = mkdtempSync(join(tmpdir(), 'sl-hls-chromium-'));
let result = { engine, currentTime: 0, played: 0, fatal: null, errors: [] };
let context;
try {
  // a fresh profile each run (playwright's persistent context takes it as userDataDir)
  context = await chromium.launchPersistentContext(profile, {
    executablePath: exe,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push('pageerror: ' + e.message));
  await page.goto(engine === 'auto' ? url : `${url}?engine=${engine}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await page.evaluate(() => ({
      engine: window.slPlayer && window.slPlayer.engine,
      canNative: window.slPlayer && window.slPlayer.canNative,
      fatal: window.slPlayer && window.slPlayer.fatal,
      errors: (window.slPlayer && window.slPlayer.errors) || [],
      waited: (window.slPlayer && window.slPlayer.waited) || [],
      currentTime: document.getElementById('video').currentTime,
      // seconds actually played (a live stream starts near its edge, not at 0)
      played: (() => {
        const r = document.getElementById('video').played;
        let t = 0;
        for (let i = 0; i < r.length; i++) t += r.end(i) - r.start(i);
        return t;
      })(),
      readyState: document.getElementById('video').readyState,
    }));
    result = { ...s, logs: logs.slice(-10) };
    if (s.fatal || s.played > want || Date.now() > deadline) break;
    await page.waitForTimeout(250);
  }
} catch (e) {
  result.fatal = 'driver: ' + e.message;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(!result.fatal && result.played > want ? 0 : 1);
