/** Entry point of a load-generator worker thread: runs its plan, posts progress and the result. */
import { parentPort, workerData } from 'node:worker_threads';
import { runLoad, type WorkerPlan } from './load.js';

const { plan, counter } = workerData as { plan: WorkerPlan; counter: SharedArrayBuffer };
const port = parentPort!;
runLoad(plan, new Int32Array(counter), (progress) => port.postMessage({ type: 'progress', progress })).then(
  (result) => port.postMessage({ type: 'result', result }),
  (error: unknown) => port.postMessage({ type: 'failed', message: String((error as Error)?.stack ?? error) }),
);
