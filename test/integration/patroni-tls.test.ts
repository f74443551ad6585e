/**
 * The patroni step kind against a Patroni cluster whose REST APIs speak
 * https with a private CA and ask for client certificates
 * (`restapi.verify_client: optional`: GETs without one, POST only with one),
 * behind HAProxy checking `/primary` over TLS: a switchover with the
 * connection's client certificate and basic auth, and switch-back; without
 * the certificate Patroni refuses the POST and the message says what to give;
 * a CA that did not sign the API's certificate reaches no member.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { planRunbook, registry, rollbackRun, runRunbook } from '../../src/index.js';
import { startPatroniCluster, type TestPatroniCluster } from '../../scripts/patroni.js';
import { loadRunbookText } from '../helpers/runbook.js';

describe('patroni over https with client certificates (Patroni 3, PostgreSQL 15, etcd, HAProxy)', () => {
  let cluster: TestPatroniCluster;

  before(async () => {
    cluster = await startPatroniCluster({ tls: true });
    process.env['PATRONI_TLS_PASSWORD'] = cluster.apiPassword;
  });
  after(async () => {
    await cluster?.stop();
  });

  const leader = async () => (await cluster.cluster()).members.filter((m) => m.role === 'leader').map((m) => m.name);
  const load = (tls: string) => {
    const [node1, node2] = cluster.members;
    const text = `version: 1
name: switchover over https
connections:
  ha:
    kind: patroni
    url: ${node1?.api ?? ''}
    members: [${node2?.api ?? ''}]
    username: ${cluster.apiUser}
    password: \${PATRONI_TLS_PASSWORD}
${tls}steps:
  - id: switch
    kind: patroni
    connection: ha
    action: switchover
    candidate: node2
`;
    return loadRunbookText(text);
  };
  const files = () => {
    assert.ok(cluster.tls !== undefined);
    return cluster.tls;
  };

  it('switches over with the client certificate and basic auth; rollback switches back', async () => {
    await cluster.settled('node1');
    const { caFile, certFile, keyFile } = files();
    const { runbook, dir } = load(`    caFile: ${caFile}\n    certFile: ${certFile}\n    keyFile: ${keyFile}\n`);
    assert.match(cluster.members[0]?.api ?? '', /^https:/);
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.equal(result.status, 'succeeded', JSON.stringify(result.steps[0]?.error));
    assert.deepEqual(await leader(), ['node2']);
    const back = await rollbackRun(result.runId, { registry, stateDir: dir });
    assert.equal(back.status, 'rolled-back', JSON.stringify(back.steps));
    assert.deepEqual(await leader(), ['node1']);
  });

  it('without a client certificate the plan reads (GETs need none) but Patroni refuses the POST (403); the message says what to give', async () => {
    await cluster.settled('node1');
    const { runbook, dir } = load(`    caFile: ${files().caFile}\n`);
    const planned = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(planned.status, 'planned', JSON.stringify(planned.steps[0]?.error));
    const result = await runRunbook(runbook, { registry, stateDir: dir });
    assert.notEqual(result.status, 'succeeded');
    assert.match(
      result.steps[0]?.error?.message ?? '',
      /^POST \/switchover was refused \(403, Patroni: "client certificate required"\): restapi\.verify_client wants a client certificate signed by its cafile: give the connection certFile and keyFile$/,
    );
    assert.deepEqual(await leader(), ['node1']);
  });

  it('a CA that did not sign the REST API certificate: no member answers, and the TLS failure is named', async () => {
    await cluster.settled('node1');
    // The client certificate is not a CA of the API's certificate.
    const { runbook, dir } = load(`    caFile: ${files().certFile}\n`);
    const planned = await planRunbook(runbook, { registry, stateDir: dir });
    assert.equal(planned.status, 'failed');
    assert.match(planned.steps[0]?.error?.message ?? '', /no Patroni REST API answered \(.*(certificate|verify).*\)/i);
    assert.deepEqual(await leader(), ['node1']);
  });
});
