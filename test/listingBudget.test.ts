/** The listing budget's arithmetic (storage/listingBudget.ts): shares, order, one too big for it. */
import { describe, expect, it } from 'vitest';
import { ListingBudget } from '../storage/listingBudget.js';

describe('ListingBudget', () => {
  it('grants shares while they fit, then in the order they were asked as shares come back', async () => {
    const budget = new ListingBudget(100);
    expect(budget.tryTake(60)).toBe(true);
    expect(budget.tryTake(50)).toBe(false);
    const granted: string[] = [];
    const first = budget.take(50).then(() => granted.push('first'));
    // It would fit, but one waits before it.
    expect(budget.tryTake(10)).toBe(false);
    const second = budget.take(10).then(() => granted.push('second'));
    budget.give(60);
    await Promise.all([first, second]);
    expect(granted).toEqual(['first', 'second']);
    expect(budget.tryTake(41)).toBe(false);
    expect(budget.tryTake(40)).toBe(true);
  });

  it('lets one bigger than the whole budget go once nothing else is held, alone', async () => {
    const budget = new ListingBudget(100);
    expect(budget.tryTake(10)).toBe(true);
    let huge = false;
    const waiting = budget.take(1_000).then(() => {
      huge = true;
    });
    await Promise.resolve();
    expect(huge).toBe(false);
    budget.give(10);
    await waiting;
    expect(huge).toBe(true);
    expect(budget.tryTake(1)).toBe(false);
    budget.give(1_000);
    expect(budget.tryTake(100)).toBe(true);
  });

  it('a wait aborted leaves the line: it takes nothing, and those behind it go', async () => {
    const budget = new ListingBudget(100);
    expect(budget.tryTake(60)).toBe(true);
    const cancel = new AbortController();
    const aborted = budget.take(90, cancel.signal);
    const behind = budget.take(40);
    expect(budget.waitingCount).toBe(2);
    cancel.abort(new Error('cancelled'));
    await expect(aborted).rejects.toThrow('cancelled');
    await behind; // it fitted all along, behind the one that left
    expect(budget.waitingCount).toBe(0);
    budget.give(60);
    budget.give(40);
    expect(budget.tryTake(100)).toBe(true);
    // Aborted already: refused at once, nothing taken.
    await expect(budget.take(1, cancel.signal)).rejects.toThrow('cancelled');
  });
});
