/** Milliseconds from a clock that never goes back (budgets must not jump with the wall clock). */
export const monotonicNow = (): number => performance.now();
