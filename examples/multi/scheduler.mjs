// The scheduler (a `singleton`): queues a job every INTERVAL_MS. Two schedulers would queue
// every job twice, so Rollbridge never runs two at once: the old one stops before the new one
// starts.
const broker = process.env.BROKER_URL ?? "http://127.0.0.1:7400";
const intervalMs = Number(process.env.INTERVAL_MS ?? 10000);
const release = process.env.ROLLBRIDGE_RELEASE_ID ?? "dev";

const timer = setInterval(async () => {
  try {
    const answer = await fetch(`${broker}/jobs`, { method: "POST", body: JSON.stringify({ scheduledBy: release }) });
    console.log(`scheduler ${release}: queued job ${(await answer.json()).id}`);
  } catch (error) {
    console.log(`scheduler ${release}: broker unreachable (${error.message})`);
  }
}, intervalMs);

process.on("SIGTERM", () => {
  clearInterval(timer);
  process.exit(0);
});
console.log(`scheduler ${release}: queueing a job every ${intervalMs} ms`);
