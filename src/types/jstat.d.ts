// jstat ships no types; only what src/calibration/conformal.ts uses.
declare module 'jstat' {
  export const jStat: {
    beta: { inv(p: number, alpha: number, beta: number): number };
  };
}
