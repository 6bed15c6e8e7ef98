/** Entry point of a load-generator worker thread: runs its plan, posts progress and the result. */
import { parentPort, workerData } from 'node:worker_threads';
import { runLoad, type WorkerPlan } from './load.js';

const { plan, counter } = workerData as { plan: WorkerPlan; counter: SharedArrayBuffer };
const port = parentPort!;
runLoad(
  plan,
  new Int32Array(counter),
  (progress) => port.postMessage({ type: 'progress', progress }),
  (reportNow) => {
    // The coordinator asks for the figures so far when the run is interrupted.
    port.on('message', (message: { type?: string }) => {
      if (message.type === 'report') reportNow();
    });
    // Listening must not keep the thread alive once its run is done.
    port.unref();
  },
).then(
  (result) => port.postMessage({ type: 'result', result }),
  (error: unknown) => port.postMessage({ type: 'failed', message: String((error as Error)?.stack ?? error) }),
);
