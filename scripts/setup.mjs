#!/usr/bin/env node
// Set-up that the README's two commands and CI run first. Plain Node, no dependencies, so it
// works on a fresh clone: installs npm dependencies when missing or stale, builds the bundled
// models when absent, and installs nats-server from Debian when it is missing (as root), or
// stops with the exact command to run; util-linux's setpriv too (`up` gives its children a
// parent-death signal with it), which Debian always has. Idempotent and quick when everything is
// in place.
//
//   node scripts/setup.mjs [--quiet] [--no-nats] [--browser]
//
// --browser (also implied by CI=true) installs Debian's chromium for the web page's browser test,
// and the Vulkan loader (libvulkan1) that the WebGPU tests need to run on chromium's SwiftShader.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const STAMP = join(ROOT, 'node_modules', '.switchyard-deps-stamp');
const NATS_CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];
const MIN_NODE = [20, 19];

const quiet = process.argv.includes('--quiet');
const skipNats = process.argv.includes('--no-nats');
const withBrowser = process.argv.includes('--browser') || process.env.CI === 'true';

function log(message) {
  if (!quiet) console.log(`[setup] ${message}`);
}

function fail(message) {
  console.error(`[setup] ${message}`);
  process.exit(1);
}

function run(command, args, what) {
  log(`${what}: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, {
    cwd: ROOT,
    stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit',
  });
  if (result.error) fail(`${what} failed to start: ${result.error.message}`);
  if (result.status !== 0) fail(`${what} failed (exit ${result.status}). Fix the error above and run again.`);
}

function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
    fail(`Node.js >= ${MIN_NODE.join('.')} is required, this is ${process.versions.node}.`);
  }
}

function depsFingerprint() {
  const hash = createHash('sha256');
  for (const file of ['package.json', 'package-lock.json', '.npmrc']) {
    const path = join(ROOT, file);
    if (existsSync(path)) hash.update(readFileSync(path));
  }
  return hash.digest('hex');
}

function ensureDependencies() {
  const fingerprint = depsFingerprint();
  if (existsSync(STAMP) && readFileSync(STAMP, 'utf8') === fingerprint) return;
  const modules = join(ROOT, 'node_modules');
  if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) {
    // npm ci would empty the folder the link points at (another checkout's, e.g. a git worktree's).
    fail(
      `node_modules is a symlink to ${realpathSync(modules)} and the dependencies changed: ` +
        'replace the link with a real folder (rm node_modules) and run again',
    );
  }
  const hasLock = existsSync(join(ROOT, 'package-lock.json'));
  run('npm', [hasLock ? 'ci' : 'install', '--no-audit', '--no-fund'], 'installing npm dependencies');
  writeFileSync(STAMP, fingerprint);
}

/** Builds the bundled models, or checks in well under a second that they are up to date. */
function ensureModels() {
  run(process.execPath, ['--import', 'tsx', 'models/build.ts', '--all'], 'building the bundled models');
}

/** Where nats-server is, or undefined. Debian puts it in /usr/sbin, which a user's PATH may lack. */
export function findNatsServer() {
  if (process.env.NATS_SERVER_BIN && existsSync(process.env.NATS_SERVER_BIN))
    return process.env.NATS_SERVER_BIN;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  return NATS_CANDIDATES.find((path) => existsSync(path));
}

/** True when this process may install Debian packages itself. */
function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The apt-get command a user runs to install `pkg`. */
function aptCommand(pkg) {
  return `apt-get update && apt-get install -y ${pkg}`;
}

/** Installs a Debian package with apt-get (as root); stops with the command to run if that fails. */
function aptInstall(pkg, why) {
  log(`${pkg} is missing; installing it from Debian (${why})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', pkg],
  ]) {
    const result = spawnSync('apt-get', args, {
      stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit',
      env,
    });
    if (result.status !== 0) fail(`'apt-get ${args.join(' ')}' failed. Run it by hand: ${aptCommand(pkg)}`);
  }
}

function ensureNatsServer() {
  if (findNatsServer()) return;
  if (!isRoot()) {
    fail(
      `nats-server is not installed. Install it (Debian/Ubuntu) with:\n  sudo sh -c '${aptCommand('nats-server')}'`,
    );
  }
  aptInstall('nats-server', 'the message bus every test and `up` start');
  if (!findNatsServer())
    fail(`nats-server still not found after installing; run: ${aptCommand('nats-server')}`);
}

// setpriv (util-linux, essential in Debian, so nearly always there): `up` starts every child with
// `setpriv --pdeathsig KILL` so that nothing outlives a SIGKILLed `up`. Without it `up` still runs
// (and warns), so a missing one is installed as root and only reported otherwise.
const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];

function findSetpriv() {
  const onPath = (process.env.PATH ?? '')
    .split(':')
    .filter(Boolean)
    .map((dir) => join(dir, 'setpriv'));
  return [...onPath, ...SETPRIV_CANDIDATES].find((path) => existsSync(path));
}

function ensureSetpriv() {
  if (findSetpriv()) return;
  if (!isRoot()) {
    console.error(
      `[setup] setpriv is missing: if \`up\` is killed with SIGKILL its nats-server will outlive it. Install it with:\n  sudo sh -c '${aptCommand('util-linux')}'`,
    );
    return;
  }
  aptInstall('util-linux', "setpriv, for the parent-death signal of `up`'s children");
  if (!findSetpriv()) fail(`setpriv still not found after installing; run: ${aptCommand('util-linux')}`);
}

// Chromium, for the web page's browser test (test/bridge/browser.test.ts): only with --browser
// (npm test) or under CI, since `npm start` must not install a browser. Without root it prints
// the command and goes on: the browser test then skips and says why.
const CHROMIUM_PATH = '/usr/bin/chromium';

function ensureChromium() {
  if (existsSync(process.env.CHROMIUM_BIN ?? CHROMIUM_PATH)) return;
  if (!isRoot()) {
    console.error(
      `[setup] Chromium is not installed, so the browser test will be skipped. Install it with:\n  sudo sh -c '${aptCommand('chromium')}'`,
    );
    return;
  }
  aptInstall('chromium', 'for the browser test');
  if (!existsSync(CHROMIUM_PATH))
    fail(`chromium still not found at ${CHROMIUM_PATH} after installing; run: ${aptCommand('chromium')}`);
}

// The Vulkan loader, for the WebGPU tests on SwiftShader (chromium's software Vulkan driver):
// Dawn, inside onnxruntime, opens libvulkan.so.1, which chromium's package does not install.
const VULKAN_LOADER_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib'];

function ensureVulkanLoader() {
  if (VULKAN_LOADER_DIRS.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return;
  if (!isRoot()) {
    console.error(
      `[setup] The Vulkan loader is not installed, so the WebGPU tests will be skipped. Install it with:\n  sudo sh -c '${aptCommand('libvulkan1')}'`,
    );
    return;
  }
  aptInstall('libvulkan1', 'the Vulkan loader, for the WebGPU tests');
}

checkNode();
ensureDependencies();
ensureModels();
if (!skipNats) ensureNatsServer();
ensureSetpriv();
if (withBrowser) {
  ensureChromium();
  ensureVulkanLoader();
}
log('ready');
