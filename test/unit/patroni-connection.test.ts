/**
 * The `patroni` connection kind: what it resolves to (the members to ask, the
 * basic auth header), what counts as a secret, and the mistakes validation
 * reports at the key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveConnection } from '../../src/db/connections.js';
import { RunbookValidationError } from '../../src/errors.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseRunbook } from '../../src/runbook/load.js';
import { registry } from '../../src/steps/index.js';

const runbook = (connection: string) => `version: 1
name: t
connections:
  ha:
    kind: patroni
${connection}
steps:
  - id: s
    kind: patroni
    connection: ha
    action: switchover
`;

/** Validation reads the files a runbook names: the password file must exist beside the runbook. */
const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-patroni-'));
writeFileSync(path.join(dir, 'pw'), 'secret-pw\n', { mode: 0o600 });

function issues(text: string): { path: string; message: string }[] {
  try {
    parseRunbook(text, path.join(dir, 'runbook.yaml'), { registry });
  } catch (error) {
    if (error instanceof RunbookValidationError) return error.issues.map((i) => ({ path: i.path, message: i.message }));
    throw error;
  }
  return [];
}

describe('patroni connections', () => {
  it('resolve to the members to ask, url first, and a basic auth header; the password and the header are secrets, the identity holds neither', () => {
    const resolved = resolveConnection(
      'ha',
      { kind: 'patroni', url: 'http://db1:8008/', members: ['http://db2:8008', 'http://db1:8008'], username: 'patroni', password: 's3cret' },
      { baseDir: '/tmp' },
    );
    assert.equal(resolved.kind, 'patroni');
    if (resolved.kind !== 'patroni') return;
    assert.deepEqual(resolved.urls, ['http://db1:8008', 'http://db2:8008']);
    assert.equal(resolved.authorization, `Basic ${Buffer.from('patroni:s3cret').toString('base64')}`);
    assert.deepEqual(resolved.identity, { name: 'ha', kind: 'patroni', target: 'patroni@http://db1:8008' });
    assert.deepEqual(resolved.secrets, ['s3cret', Buffer.from('patroni:s3cret').toString('base64')]);
  });

  it('a password without a username is refused, without echoing it', () => {
    assert.throws(() => resolveConnection('ha', { kind: 'patroni', url: 'http://db1:8008', password: 's3cret' }, { baseDir: '/tmp' }), {
      name: 'UsageError',
      message: 'connection "ha": a password needs a username',
    });
  });

  it('validates: a runbook with url, members, username and passwordFile is accepted', () => {
    assert.deepEqual(issues(runbook('    url: https://db1:8008\n    members: [https://db2:8008]\n    username: patroni\n    passwordFile: pw')), []);
  });

  it('a certFile without keyFile, and a url with a path, are reported at their keys', () => {
    assert.deepEqual(issues(runbook('    url: http://db1:8008/cluster\n    certFile: client.pem')), [
      // The loader reports a rule about an absent key as that key missing.
      { path: 'connections.ha.keyFile', message: 'missing required key "keyFile"' },
      { path: 'connections.ha.url', message: "expected http(s)://host:port of a member's REST API, without a path" },
    ]);
  });
});
