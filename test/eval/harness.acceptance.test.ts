/**
 * encodePair (lm-eval's _encode_pair) with the real c4-llama-7m SentencePiece tokenizer: token ids pinned.
 * test/eval/harness.test.ts checks the same rules with a tokenizer the test writes.
 */
import { DataError } from '../../lib/errors.js';
import { encodePair } from '../../lib/eval/harness.js';
import { HfTokenizer } from '../../lib/model/tokenizer.js';
import { sharedPath } from '../helpers/shared.js';

describe('encodePair with the c4-llama-7m tokenizer (lm-eval _encode_pair)', () => {
  let tok: HfTokenizer;
  beforeAll(async () => {
    tok = await HfTokenizer.fromFolder(sharedPath('models', 'c4-llama-7m'));
  });
  const answer = [854, 4011, 1908, 4061]; // "Answer:"
  const yes = [301, 276]; // "yes" after "Answer:" (not the standalone " yes" = [4003, 301, 276])

  test('a trailing space of the context moves to the continuation', () => {
    expect(tok.encode('Answer: ', { addSpecialTokens: false })).toEqual([...answer, 4003]); // a lone "▁" token
    expect(encodePair(tok, 'Answer: ', 'yes')).toEqual({ context: answer, continuation: yes });
    expect(encodePair(tok, 'Answer:', ' yes')).toEqual({ context: answer, continuation: yes });
    // Slicing after the unmoved context's 5 tokens would have lost "y".
    expect(tok.encode('Answer: yes', { addSpecialTokens: false }).slice(5)).toEqual([276]);
    // And encoding the continuation alone gives different tokens.
    expect(tok.encode(' yes', { addSpecialTokens: false })).toEqual([4003, 301, 276]);
  });

  test('a trailing newline moves too (Python rstrip)', () => {
    expect(encodePair(tok, 'Question: Is the sky blue?\n', 'Answer: yes')).toEqual({
      context: [1720, 387, 298, 4061, 1358, 266, 962, 4021, 1012, 591, 4070],
      continuation: [13, 4031, 4009, 4011, 1908, 4061, 301, 276],
    });
  });

  test('WinoGrande pair, BOS flag, empty context', () => {
    expect(encodePair(tok, 'Sarah was a much better surgeon than Maria so Maria', ' always got the easier cases.')).toEqual({
      context: [318, 289, 1284, 410, 260, 852, 1211, 1005, 365, 264, 650, 1917, 572, 463, 1917, 572],
      continuation: [1174, 1402, 266, 1082, 1010, 2843, 4024],
    });
    expect(encodePair(tok, 'The cat', ' sat on the mat.', { addBos: true })).toEqual({
      context: [1, 348, 3287],
      continuation: [2639, 325, 266, 992, 4024],
    });
    expect(encodePair(tok, 'The cat', ' sat on the mat.')).toEqual({
      context: [348, 3287],
      continuation: [2639, 325, 266, 992, 4024],
    });
    // lm-eval scores a continuation without context after the prefix token (BOS).
    expect(encodePair(tok, '', 'The cat')).toEqual({ context: [1], continuation: [348, 3287] });
  });

  test('a whitespace-only context has nothing to predict from unless BOS is added', () => {
    expect(() => encodePair(tok, '  ', 'yes')).toThrow(
      new DataError('context "  " is only whitespace: no token to predict "yes" from (use addBos)'),
    );
    expect(encodePair(tok, '  ', 'yes', { addBos: true }).context).toEqual([1]);
  });
});
