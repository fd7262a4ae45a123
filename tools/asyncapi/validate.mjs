// Parse an AsyncAPI document with the official parser; exit non-zero on any error.
// Usage: node tools/asyncapi/validate.mjs docs/asyncapi.json [--strict]
// --strict also fails on warnings. Diagnostics go to stderr, one per line.
import { resolve } from 'node:path';
import parserModule from '@asyncapi/parser';

const { Parser, fromFile, DiagnosticSeverity } = parserModule;
const SEVERITY = ['error', 'warning', 'info', 'hint'];

const args = process.argv.slice(2);
const strict = args.includes('--strict');
const files = args.filter((a) => !a.startsWith('--'));
if (files.length !== 1) {
  console.error('usage: node validate.mjs FILE [--strict]');
  process.exit(2);
}
const file = resolve(files[0]);

const parser = new Parser();
let result;
try {
  result = await fromFile(parser, file).parse();
} catch (err) {
  console.error(`${file}: cannot parse: ${err?.message ?? err}`);
  process.exit(1);
}
const { document, diagnostics } = result;
const failAt = strict ? DiagnosticSeverity.Warning : DiagnosticSeverity.Error;
let failures = 0;
for (const d of diagnostics) {
  if (d.severity > DiagnosticSeverity.Warning) continue; // info and hints are noise here
  if (d.severity <= failAt) failures += 1;
  const line = d.range?.start?.line !== undefined ? d.range.start.line + 1 : '?';
  const where = (d.path ?? []).join('/');
  console.error(`${file}:${line}: ${SEVERITY[d.severity]} ${d.code}: ${d.message} [${where}]`);
}
if (document === undefined || failures > 0) {
  console.error(`${file}: invalid AsyncAPI document (${failures} problem(s))`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()} (${document.channels().length} channels, ${document.operations().length} operations)`);
