/** The server-wide upload backlog budget on its own: the hysteresis between holding and release. */
import { describe, expect, it } from 'vitest';
import { UploadBacklogBudget } from '../server/uploadBacklogBudget.js';

describe('UploadBacklogBudget', () => {
  it('holds past the mark and releases only once the total is back at half of it', () => {
    const budget = new UploadBacklogBudget(1000);
    let woken = 0;
    budget.add(1001);
    expect(budget.held).toBe(true);
    budget.waitForRelease(() => woken++);
    budget.add(-101); // at the mark, not yet half of it: readers stay stopped
    expect(budget.held).toBe(true);
    expect(woken).toBe(0);
    budget.add(-400);
    expect(budget.held).toBe(false);
    expect(woken).toBe(1);
  });
});
