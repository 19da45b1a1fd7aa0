// Our proxy as the daemon would run it: its own process, one release with one backend.
// Usage (after `npm run build`): node bench/run-proxy.mjs <upstreamPort> [listenPort]
import { createProxy } from "../dist/proxy/create-proxy.js";

const proxy = createProxy({ host: "127.0.0.1", port: Number(process.argv[3] ?? 0), holdTimeoutMs: 5000 });
proxy.setBackends("bench", [{ id: "app", host: "127.0.0.1", port: Number(process.argv[2]), ready: true }]);
proxy.setActive("bench");
const { port } = await proxy.listen();
console.log(`READY ${port}`);
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => proxy.close().then(() => process.exit(0)));
