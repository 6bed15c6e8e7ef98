/**
 * The bench scripts' numeric options, read as the CLI reads its own numbers: in decimal only.
 * Number() took `0x10` as 16, '' as 0 and `abc` as NaN (a run of no rounds that printed nothing
 * and exited 0); each is refused here, naming the option, with exit 2 as a usage error.
 */
import { parseDecimal } from '#dist/shared/humanUnits.js';

/**
 * The number `text` of option `--name` (`script` names the script in the refusal): positive, or
 * at least 0 with `zero`; a whole number with `integer`.
 * @param {string} script
 * @param {string} name
 * @param {string | undefined} text
 * @param {{ integer?: boolean, zero?: boolean }} [how]
 * @returns {number}
 */
export function numberOption(script, name, text, { integer = false, zero = false } = {}) {
  let n = Number.NaN;
  try {
    n = parseDecimal(text ?? '');
  } catch {}
  if (!(zero ? n >= 0 : n > 0) || (integer && !Number.isSafeInteger(n))) {
    const what = `${zero ? 'a non-negative' : 'a positive'} ${integer ? 'integer' : 'number'}`;
    process.stderr.write(`${script}: --${name} must be ${what} in decimal, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}
