// The peer's producer: `producers` concurrent loops, each adding one job per call until
// `tasks` jobs are queued. Prints one JSON line: when it started and how long adds took.
//   node producer.mjs PORT TASKS PRODUCERS
import { Queue } from 'bullmq';

const [port, tasks, producers] = process.argv.slice(2).map(Number);
const queue = new Queue('bench', { connection: { host: '127.0.0.1', port } });
await queue.waitUntilReady();

let next = 0;
const latencies = [];
const started = Date.now();
async function produce() {
  while (next < tasks) {
    next += 1;
    const begun = performance.now();
    await queue.add('noop', { number1: next, number2: 1 });
    latencies.push(performance.now() - begun);
  }
}
await Promise.all(Array.from({ length: producers }, produce));
const finished = Date.now();
await queue.close();
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.max(0, Math.ceil(q * latencies.length) - 1)];
console.log(JSON.stringify({
  started_ms: started,
  finished_ms: finished,
  added: latencies.length,
  add_latency_ms: { p50: at(0.5), p99: at(0.99), max: at(1) },
}));
