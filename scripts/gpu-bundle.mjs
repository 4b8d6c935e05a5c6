#!/usr/bin/env node
// Packs `bench:gpu` for a machine with an NVIDIA GPU and its driver but no Node.js and no network:
//   dist/gpu-bench/
//     run.sh                      one command: unpacks, finds the Vulkan driver, runs the bench
//     node.xz                     this machine's Node binary, compressed
//     app/bench.mjs               bench/gpu.ts and the engine code it uses, bundled (no node_modules)
//     bin/napi-v6/linux/x64/      onnxruntime-node's binding, libonnxruntime.so.1.xz beside it
//     lib/libvulkan.so.1          the Vulkan loader from Debian's libvulkan1 (used only when the
//                                 machine has none)
//     models/tiny-gpt2-ctx2048/   the prebuilt 2048-context model (the 512 contexts run on it too:
//                                 the same weights, a longer position table)
// and checks that the whole is under the 64 MiB a device call may carry.
//
//   npm run bench:gpu:bundle      (builds the 2048 model first)
//   node scripts/gpu-bundle.mjs [--out DIR]
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: { out: { type: 'string', default: join(ROOT, 'dist', 'gpu-bench') } },
});
const OUT = args.out;
/** What one device call may carry in all, less room for the repository's own files. */
const LIMIT_BYTES = 60 * 1024 * 1024;
const MODEL = join(ROOT, 'models', 'tiny-gpt2-ctx2048');
const VULKAN_LOADER_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib'];

function fail(message) {
  console.error(`gpu-bundle: ${message}`);
  process.exit(1);
}

function xz(src, dst) {
  const r = spawnSync('sh', ['-c', 'xz -T0 -6 -c "$1" > "$2"', 'xz', src, dst], { stdio: 'inherit' });
  if (r.status !== 0) fail(`xz failed on ${src} (apt-get install xz-utils)`);
}

function sizeOf(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, name) => n + sizeOf(join(path, name)), 0);
}

if (process.platform !== 'linux' || process.arch !== 'x64')
  fail('the bundle is for linux x64; build it on one');
if (!existsSync(join(MODEL, 'manifest.json')))
  fail(`${MODEL} is not built: tsx models/build.ts --context 2048 --out ${MODEL}`);
const loader = VULKAN_LOADER_DIRS.map((d) => join(d, 'libvulkan.so.1')).find((p) => existsSync(p));
if (loader === undefined) fail('the Vulkan loader is not installed: apt-get install libvulkan1');

rmSync(OUT, { recursive: true, force: true });
const bindingDir = join(OUT, 'bin', 'napi-v6', 'linux', 'x64');
for (const dir of [join(OUT, 'app'), bindingDir, join(OUT, 'lib'), join(OUT, 'models')])
  mkdirSync(dir, { recursive: true });

// 1. The bench, bundled. onnxruntime-node loads its binding with a computed require relative to
//    its own file; in the bundle that is app/, so the binding goes to bin/ beside it.
const require = createRequire(import.meta.url);
let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  fail('esbuild (installed with tsx) is missing: npm ci');
}
await esbuild.build({
  entryPoints: [join(ROOT, 'bench', 'gpu.ts')],
  outfile: join(OUT, 'app', 'bench.mjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
  // The binding stays a run-time require of ../bin/napi-v6/<platform>/<arch>/ (copied there below).
  external: ['*.node'],
  banner: {
    js: "import { createRequire as __syCreateRequire } from 'node:module'; const require = __syCreateRequire(import.meta.url);",
  },
});

// 2. onnxruntime's native parts; the big library compressed.
const ortDir = join(
  dirname(require.resolve('onnxruntime-node/package.json')),
  'bin',
  'napi-v6',
  'linux',
  'x64',
);
cpSync(join(ortDir, 'onnxruntime_binding.node'), join(bindingDir, 'onnxruntime_binding.node'));
xz(join(ortDir, 'libonnxruntime.so.1'), join(bindingDir, 'libonnxruntime.so.1.xz'));

// 3. Node itself, compressed; the Vulkan loader as Debian ships it.
xz(realpathSync(process.execPath), join(OUT, 'node.xz'));
cpSync(realpathSync(loader), join(OUT, 'lib', 'libvulkan.so.1'));

// 4. The prebuilt model: only what the engine reads (no tokenizer: the bench feeds token ids).
const modelOut = join(OUT, 'models', 'tiny-gpt2-ctx2048');
mkdirSync(join(modelOut, 'onnx'), { recursive: true });
for (const file of [
  'manifest.json',
  'config.json',
  'generation_config.json',
  'onnx/decoder_model_merged.onnx',
]) {
  cpSync(join(MODEL, file), join(modelOut, file));
}

// 5. The one command.
writeFileSync(
  join(OUT, 'run.sh'),
  `#!/bin/sh
# bench:gpu on a machine without Node.js or network: bash run.sh [bench options, e.g. --profile full]
set -eu
cd "$(dirname "$0")"
unxz_to() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
[ -x bin/node ] || { unxz_to node.xz bin/node; chmod +x bin/node; }
ORT=bin/napi-v6/linux/x64/libonnxruntime.so.1
[ -f "$ORT" ] || unxz_to "$ORT.xz" "$ORT"
# The machine's Vulkan loader if it has one, else the carried one.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\\.so\\.1 '; then
  export LD_LIBRARY_PATH="$PWD/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# NVIDIA's Vulkan driver manifest: the usual places, then a mounted driver folder.
if [ -z "\${VK_ICD_FILENAMES:-}\${VK_DRIVER_FILES:-}" ]; then
  for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \\
           /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then export VK_ICD_FILENAMES="$f" VK_DRIVER_FILES="$f"; break; fi
  done
fi
export XDG_RUNTIME_DIR="\${XDG_RUNTIME_DIR:-/tmp}"
echo "run.sh: node $(bin/node --version), Vulkan driver \${VK_ICD_FILENAMES:-<loader default>}, loader \${LD_LIBRARY_PATH:-system}" >&2
exec bin/node app/bench.mjs --model models/tiny-gpt2-ctx2048 --model-2048 models/tiny-gpt2-ctx2048 "$@"
`,
);
chmodSync(join(OUT, 'run.sh'), 0o755);

const total = sizeOf(OUT);
for (const entry of ['node.xz', 'app', 'bin', 'lib', 'models']) {
  console.log(`${String((sizeOf(join(OUT, entry)) / 1048576).toFixed(1)).padStart(6)} MiB  ${entry}`);
}
console.log(
  `${(total / 1048576).toFixed(1).padStart(6)} MiB  ${relative(ROOT, OUT) || OUT} in all (limit ${LIMIT_BYTES / 1048576} MiB)`,
);
if (total > LIMIT_BYTES)
  fail(`the bundle is ${(total / 1048576).toFixed(1)} MiB, over ${LIMIT_BYTES / 1048576} MiB`);
