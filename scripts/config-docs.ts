// Writes docs/configuration.md from the option tables (src/config/*-table.ts), laid out by
// prettier exactly as `npm run format` would, so that the file stays generated and formatted.
//   tsx scripts/config-docs.ts          — write it
//   tsx scripts/config-docs.ts --check  — exit 1 when it is stale (test/config/docs.test.ts does the same)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { ALL_TABLES } from '../src/config/actors.ts';
import { renderConfigurationDoc } from '../src/config/docs.ts';
import { REPO_ROOT } from '../src/config/paths.ts';

/** Where the generated reference lives. */
export const CONFIGURATION_DOC = join(REPO_ROOT, 'docs', 'configuration.md');

/** docs/configuration.md as it should read. */
export async function expectedConfigurationDoc(): Promise<string> {
  const options = (await prettier.resolveConfig(CONFIGURATION_DOC)) ?? {};
  return prettier.format(renderConfigurationDoc(ALL_TABLES), { ...options, filepath: CONFIGURATION_DOC });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const expected = await expectedConfigurationDoc();
  if (process.argv.includes('--check')) {
    const actual = readFileSync(CONFIGURATION_DOC, 'utf8');
    if (actual !== expected) {
      console.error('docs/configuration.md is stale: run `npm run docs:config`');
      process.exit(1);
    }
  } else {
    writeFileSync(CONFIGURATION_DOC, expected);
    console.log(`wrote ${CONFIGURATION_DOC}`);
  }
}
