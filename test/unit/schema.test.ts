/** The published JSON Schema comes from the same zod schema that validates runbooks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registry, runbookJsonSchema } from '../../src/index.js';

describe('runbook JSON Schema', () => {
  const schema = runbookJsonSchema(registry) as {
    required: string[];
    additionalProperties: boolean;
    properties: { steps: { items: { oneOf?: { properties: { kind: { const: string } }; additionalProperties: boolean }[] } } };
  };

  it('has one strict variant per registered step kind', () => {
    const variants = schema.properties.steps.items.oneOf ?? [];
    assert.deepEqual(variants.map((v) => v.properties.kind.const).sort(), Object.keys(registry).sort());
    for (const variant of variants) assert.equal(variant.additionalProperties, false);
  });

  it('rejects unknown top-level keys and requires version, name and steps', () => {
    assert.equal(schema.additionalProperties, false);
    for (const key of ['version', 'name', 'steps']) assert.ok(schema.required.includes(key), key);
  });
});
