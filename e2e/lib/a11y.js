// An accessibility audit of a page with axe-core (from the npm registry, pinned in
// package.json; nothing from a CDN). axe's source is evaluated in the page through the
// DevTools protocol rather than added as a <script>: the pages' Content-Security-Policy
// (script-src 'self') would block an inline script, and the tests assert that no CSP
// violation ever happens.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** The impacts that fail an audit: axe's "serious" and "critical". */
const FAILING_IMPACTS = ['serious', 'critical'];

let axeSource;

/** axe.min.js, read once. */
function axeScript() {
  axeSource ??= readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  return axeSource;
}

/**
 * Runs axe over the whole page as it is now and returns its serious and critical
 * violations, each `{ id, impact, help, helpUrl, nodes: [{ target, summary }] }`.
 */
export async function auditPage(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(axeScript());
  }
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map(({ id, impact, help, helpUrl, nodes }) => ({
      id, impact, help, helpUrl,
      nodes: nodes.map((node) => ({ target: node.target.join(' '), summary: node.failureSummary })),
    }));
  });
  return violations.filter((v) => FAILING_IMPACTS.includes(v.impact));
}

/** The violations as a person fixing them wants to read them: rule, help, each node and why. */
export function describeViolations(violations) {
  return violations.map((v) => [
    `${v.id} (${v.impact}): ${v.help} — ${v.helpUrl}`,
    ...v.nodes.map((n) => `    ${n.target}\n      ${(n.summary ?? '').replace(/\n/g, '\n      ')}`),
  ].join('\n')).join('\n');
}
