// A muxftp server on in-memory storage in its own process, for benchmarks. Prints its port on
// stdout, then serves until stdin closes or SIGTERM. Reports its own CPU time on stderr at exit.
import { MuxServer } from '#dist/server/server.js';
import { MemoryStorage } from '#dist/storage/memory.js';

const server = new MuxServer({ storage: new MemoryStorage(), host: '127.0.0.1', port: 0, log: () => {} });
const { port } = await server.listen();
process.stdout.write(`${port}\n`);
const stop = async () => {
  const cpu = process.cpuUsage();
  process.stderr.write(
    `${JSON.stringify({ serverCpuUserS: cpu.user / 1e6, serverCpuSystemS: cpu.system / 1e6 })}\n`,
  );
  await server.close(0);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
