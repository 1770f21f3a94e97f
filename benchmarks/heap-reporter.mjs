/**
 * Preloaded into the daemon by the footprint benchmark (`node --import ./benchmarks/heap-reporter.mjs
 * dist/main.js serve …`, spawned with an IPC channel): every 10 s it sends
 * process.memoryUsage() to the parent, which cannot read the V8 heap from /proc. Costs one
 * timer and one small IPC message per 10 s; the channel is unref'd so it never keeps the
 * daemon alive.
 */
if (typeof process.send === 'function') {
  process.channel?.unref();
  const report = () => {
    const m = process.memoryUsage();
    process.send({ kind: 'mem', rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers });
  };
  setInterval(report, 10_000).unref();
  setTimeout(report, 1000).unref();
}
