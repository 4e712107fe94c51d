// The peer's worker: one BullMQ Worker at `concurrency`, a no-op processor (it returns the
// sum, as the task manager's default handler does). Prints "ready", then, once `tasks` jobs
// have completed, one JSON line: when the last completed and each job's time from being
// added to being completed.
//   node worker.mjs PORT TASKS CONCURRENCY
import { Worker } from 'bullmq';

const [port, tasks, concurrency] = process.argv.slice(2).map(Number);
const latencies = [];
let last = 0;
let failed = 0;
const done = new Promise((resolve) => {
  const worker = new Worker(
    'bench',
    async (job) => job.data.number1 + job.data.number2,
    { connection: { host: '127.0.0.1', port }, concurrency },
  );
  const finish = () => {
    if (latencies.length + failed === tasks) resolve(worker);
  };
  worker.on('completed', (job) => {
    latencies.push(job.finishedOn - job.timestamp);
    last = Math.max(last, job.finishedOn);
    finish();
  });
  worker.on('failed', () => {
    failed += 1;
    finish();
  });
  worker.waitUntilReady().then(() => console.log('ready'));
});
const worker = await done;
await worker.close();
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.max(0, Math.ceil(q * latencies.length) - 1)];
console.log(JSON.stringify({
  last_completed_ms: last,
  completed: latencies.length,
  failed,
  latency_ms: { p50: at(0.5), p99: at(0.99), max: at(1) },
}));
