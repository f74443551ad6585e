/**
 * Failpoints: a test facility, inert unless `CUTOVER_FAILPOINT` names one.
 *
 * The engine passes a named point on each side of every journal record:
 * `before:<event type>` and `after:<event type>`, with `@<step id>` for step
 * events (e.g. `after:step.committing@load`, which is between the journaled
 * transaction id and the COMMIT). When the variable names the point, the
 * process kills itself with SIGKILL: no cleanup, no finally blocks, no
 * flushing, exactly like `kill -9` at that instant. Tests use it to crash
 * runs at every boundary and prove that resume and rollback recover.
 */
export function failpoint(point: string, stepId?: string): void {
  const armed = process.env['CUTOVER_FAILPOINT'];
  if (armed === undefined || armed === '') return;
  if (armed === point || (stepId !== undefined && armed === `${point}@${stepId}`)) process.kill(process.pid, 'SIGKILL');
}
