// Checkpoints the WAL of one SQLite file on a worker thread, with a connection of its own, so
// that the copy of WAL pages into the database and the fsyncs that go with it never run on the
// event loop (plain JS: workers start without the TS loader). Messages: 'checkpoint' runs a
// PASSIVE checkpoint (it never waits for, nor blocks, a writer) and replies with its outcome.
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('wal_autocheckpoint = 0');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String(e?.message ?? e) });
  }
});
parentPort.postMessage({ ready: true });
