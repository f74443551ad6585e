/** Worker-thread entry of the fuzz test: runs the property under the memory cap the test set. */
import { parentPort, workerData } from 'node:worker_threads';
import { fuzzValidation } from './fuzz-runbooks.js';

parentPort?.postMessage(fuzzValidation(workerData as Parameters<typeof fuzzValidation>[0]));
