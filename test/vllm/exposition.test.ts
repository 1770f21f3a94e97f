import { describe, expect, test } from 'vitest';
import { ExpositionError, parseExposition, parseValue } from '../../src/vllm/exposition.js';

describe('parseValue', () => {
  test.each([
    ['0.0', 0],
    ['1.0', 1],
    ['4.953437685750739e-05', 4.953437685750739e-5],
    ['2.097152e+06', 2097152],
    ['1.1701968896e+010', 11701968896],
    ['1e+07', 1e7],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
    ['-3', -3],
    ['.5', 0.5],
  ])('%s → %d', (text, value) => expect(parseValue(text)).toBe(value));
  test('NaN is NaN; garbage is rejected', () => {
    expect(parseValue('NaN')).toBeNaN();
    for (const bad of ['', 'abc', '1,0', '0x10', '1e', 'inf ']) expect(parseValue(bad)).toBeUndefined();
  });
});

describe('parseExposition', () => {
  test('label escapes, counters with _total, histograms in any order, _created families', () => {
    const text = [
      '# HELP vllm:prompt_tokens_total Number of prefill tokens processed.',
      '# TYPE vllm:prompt_tokens_total counter',
      'vllm:prompt_tokens_total{engine="0",model_name="org/m:v1.2-a"} 123.0',
      '# HELP vllm:prompt_tokens_created Number of prefill tokens processed.',
      '# TYPE vllm:prompt_tokens_created gauge',
      'vllm:prompt_tokens_created{engine="0",model_name="org/m:v1.2-a"} 1.7537953269e+09',
      '# TYPE x histogram',
      'x_sum 3.5',
      'x_bucket{le="+Inf"} 4',
      'x_bucket{le="1.0"} 3',
      'x_count 4',
      'esc{a="quote \\" back \\\\ nl \\n end",b=""} 1 1700000000000',
    ].join('\n');
    const expo = parseExposition(text);
    const prompt = expo.get('vllm:prompt_tokens_total')!;
    expect(prompt.type).toBe('counter');
    expect(prompt.help).toBe('Number of prefill tokens processed.');
    expect(prompt.samples[0]).toEqual({ name: 'vllm:prompt_tokens_total', labels: { engine: '0', model_name: 'org/m:v1.2-a' }, value: 123 });
    expect(expo.get('vllm:prompt_tokens_created')!.samples[0]!.value).toBe(1753795326.9);
    const x = expo.get('x')!;
    expect(x.type).toBe('histogram');
    expect(x.samples.map((s) => s.name)).toEqual(['x_sum', 'x_bucket', 'x_bucket', 'x_count']);
    expect(expo.get('esc')!.samples[0]!.labels).toEqual({ a: 'quote " back \\ nl \n end', b: '' });
  });

  test('a file that starts mid-family and families without HELP or TYPE parse as untyped', () => {
    const expo = parseExposition('foo_bucket{le="1.0"} 2\nfoo_count 2\nbar 1\n');
    expect(expo.get('foo_bucket')!.type).toBe('untyped');
    expect(expo.get('bar')!.samples[0]!.value).toBe(1);
  });

  test('NaN and infinities as sample values', () => {
    const expo = parseExposition('a NaN\nb +Inf\nc -Inf\n');
    expect(expo.get('a')!.samples[0]!.value).toBeNaN();
    expect(expo.get('b')!.samples[0]!.value).toBe(Infinity);
    expect(expo.get('c')!.samples[0]!.value).toBe(-Infinity);
  });

  test.each([
    ['vllm:x{engine="0" 1', 1],
    ['ok 1\n<html>oops</html>', 2],
    ['m{a=b} 1', 1],
    ['m{a="x\\q"} 1', 1],
    ['m 1 2 3', 1],
    ['m one', 1],
    ['# TYPE m bogus', 1],
    ['m{a="1",a="2"} 1', 1],
    ['m 1\n# TYPE m gauge', 2],
  ])('malformed %j fails at line %d', (text, line) => {
    expect(() => parseExposition(text)).toThrowError(ExpositionError);
    try {
      parseExposition(text);
    } catch (e) {
      expect((e as ExpositionError).line).toBe(line);
    }
  });
});

describe('hostile expositions', () => {
  test('a duplicate sample is an error naming its line, not a sum', async () => {
    const { parseExposition } = await import('../../src/vllm/exposition.js');
    const text = '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0"} 1\nvllm:num_requests_running{engine="0"} 5\n';
    expect(() => parseExposition(text)).toThrowError(/^line 3: duplicate sample vllm:num_requests_running\{engine="0"\}/);
  });

  test('the same sample written another way is still a duplicate; samples that only look alike are not', async () => {
    const { parseExposition } = await import('../../src/vllm/exposition.js');
    const twice = (a: string, b: string) => () => parseExposition(`# TYPE m gauge\n${a} 1\n${b} 2\n`);
    const writtenTwice: Array<[string, string]> = [
      ['m{engine="0",model="x"}', 'm{model="x",engine="0"}'], // label order
      ['m{engine="0",model="x"}', 'm{engine="0", model="x"}'], // spacing
      ['m{engine="0",model="x"}', 'm{engine="0",model="x",}'], // trailing comma
      ['m', 'm{}'], // no labels, written two ways
      ['m{q="a\\"b"}', 'm{ q="a\\"b"}'], // an escaped quote, tidy and not
    ];
    for (const [a, b] of writtenTwice) {
      expect(twice(a, b), `${a} then ${b}`).toThrowError(/^line 3: duplicate sample m/);
      expect(twice(b, a), `${b} then ${a}`).toThrowError(/^line 3: duplicate sample m/);
    }
    // A value holding what looks like a second label is one label.
    const two = parseExposition('# TYPE m gauge\nm{a="1",b="2"} 1\nm{a="1\\",b=\\"2"} 2\nm{b="2",a="1\\",b=\\"2"} 3\n');
    expect(two.get('m')!.samples.map((x) => x.labels)).toEqual([{ a: '1', b: '2' }, { a: '1",b="2' }, { b: '2', a: '1",b="2' }]);
  });

  test('a big valid body is parsed without holding the event loop', async () => {
    const { parseExpositionAsync } = await import('../../src/vllm/exposition.js');
    const lines = ['# TYPE vllm:x gauge', ...Array.from({ length: 200_000 }, (_, i) => `vllm:x{i="${i}"} ${i}`)];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    let parsed = false;
    const done = parseExpositionAsync(lines.join('\n')).then((e) => ((parsed = true), e));
    const family = await done;
    clearInterval(timer);
    expect(parsed).toBe(true);
    expect(family.get('vllm:x')?.samples).toHaveLength(200_000);
    expect(ticks).toBeGreaterThan(0); // timers ran while it parsed
  });
});
