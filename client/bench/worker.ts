/** Entry point of a load-generator worker thread: runs its plan, posts progress and the result. */
import { parentPort, workerData } from 'node:worker_threads';
import { type RunClock, runLoad, type WorkerPlan } from './load.js';

const { plan, counter } = workerData as { plan: WorkerPlan; counter: SharedArrayBuffer };
const port = parentPort!;
let start: (clock: RunClock) => void = () => {};
const started = new Promise<RunClock>((resolve) => {
  start = resolve;
});
runLoad(
  plan,
  new Int32Array(counter),
  started,
  (progress) => port.postMessage({ type: 'progress', progress }),
  (reportNow) => {
    // The coordinator gives the start once every worker is ready, and asks for the figures so far
    // when the run is interrupted.
    port.on('message', (message: { type?: string; clock?: RunClock }) => {
      if (message.type === 'start') {
        start(message.clock!);
        // Listening must not keep the thread alive once its run is done (until the start it must:
        // an `--op connect` worker has nothing else open while it waits).
        port.unref();
      } else if (message.type === 'report') reportNow();
    });
  },
).then(
  (result) => port.postMessage({ type: 'result', result }),
  (error: unknown) => port.postMessage({ type: 'failed', message: String((error as Error)?.stack ?? error) }),
);
