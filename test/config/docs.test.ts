import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ALL_TABLES } from '../../src/config/actors.ts';
import { subcommandHelp } from '../../src/config/help.ts';
import { fileKey } from '../../src/config/option.ts';
import { CONFIGURATION_DOC, expectedConfigurationDoc } from '../../scripts/config-docs.ts';

describe('docs/configuration.md', () => {
  it('is what the option tables generate (run `npm run docs:config` after changing a table)', async () => {
    const actual = readFileSync(CONFIGURATION_DOC, 'utf8');
    assert.ok(
      actual === (await expectedConfigurationDoc()),
      'docs/configuration.md is stale: run `npm run docs:config`',
    );
  });
});

describe('option tables', () => {
  for (const table of ALL_TABLES) {
    it(`${table.section}: flags, variables and file keys are unique, and help lists every flag`, () => {
      const unique = (values: (string | undefined)[], what: string) => {
        const seen = values.filter((v) => v !== undefined);
        const dupes = seen.filter((v, i) => seen.indexOf(v) !== i);
        assert.deepEqual(dupes, [], `${what} used twice in ${table.section}`);
      };
      unique(
        table.defs.map((d) => d.flag),
        'flag',
      );
      unique(
        table.defs.map((d) => d.env),
        'environment variable',
      );
      unique(
        table.defs.map((d) => fileKey(table, d)),
        'file key',
      );
      const help = subcommandHelp(table);
      for (const def of table.defs) {
        assert.match(def.env ?? 'SWITCHYARD_', /^SWITCHYARD_[A-Z0-9_]+$/);
        assert.ok(help.includes(`--${def.flag}`), `help of ${table.section} lacks --${def.flag}`);
        assert.match(def.doc, /\.$/, `--${def.flag}: docs are sentences`);
      }
    });
  }

  it('a variable shared by two subcommands means the same in both', () => {
    const byEnv = new Map<string, string>();
    for (const def of ALL_TABLES.flatMap((t) => t.defs)) {
      if (def.env === undefined) continue;
      const meaning = `${def.type} ${def.flag}`;
      assert.equal(byEnv.get(def.env) ?? meaning, meaning, `${def.env} means two things`);
      byEnv.set(def.env, meaning);
    }
  });
});
