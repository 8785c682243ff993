import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequestError } from '../errors.ts';
import { parseSelector } from '../rules/selector.ts';
import { parseSelectorParam } from './metric-request.ts';

describe('parseSelectorParam', () => {
  it('answers what parseSelector reads, the same frozen selector for the same text', () => {
    const first = parseSelectorParam({ labelSelector: 'app=web,tier in (a,b)' }, 'labelSelector');
    assert.deepEqual(first, parseSelector('app=web,tier in (a,b)'));
    assert.ok(Object.isFrozen(first));
    assert.equal(parseSelectorParam({ labelSelector: 'app=web,tier in (a,b)' }, 'labelSelector'), first);
    assert.notEqual(parseSelectorParam({ labelSelector: 'app=api' }, 'labelSelector'), first);
    assert.deepEqual(parseSelectorParam({}, 'labelSelector'), []);
    assert.deepEqual(parseSelectorParam({ metricLabelSelector: ['verb=GET', 'verb=PUT'] }, 'metricLabelSelector'), parseSelector('verb=GET'));
  });

  it('refuses a bad selector every time it is asked, naming the parameter', () => {
    for (let i = 0; i < 2; i++) {
      assert.throws(
        () => parseSelectorParam({ metricLabelSelector: 'verb in (GET' }, 'metricLabelSelector'),
        (err: unknown) => err instanceof BadRequestError && /invalid metricLabelSelector/.test(err.message),
      );
    }
  });
});
