import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import test from 'node:test';

const dir = new URL('../', import.meta.url);
const imported = (file) => [...readFileSync(new URL(file, dir), 'utf8').matchAll(/^(?:import|\} from|export .* from) .*'\.\/([a-z_]+\.js)';$/gm)].map((m) => m[1]);

test('index.js imports every module itself, so the browser asks for all of them in one round', () => {
  // a worker's script (maps_worker.js) is started by api.js, never imported
  const modules = readdirSync(dir).filter((f) => f.endsWith('.js') && f !== 'index.js' && !f.endsWith('_worker.js')).sort();
  const direct = new Set(imported('index.js'));
  assert.deepEqual(modules.filter((m) => !direct.has(m)), []);
  // and the check sees the imports: every module another one imports is a file here
  for (const file of modules) for (const dep of imported(file)) assert.ok(modules.includes(dep), `${file} imports ${dep}`);
});
