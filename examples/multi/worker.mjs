// A background worker (a `companion` with replicas): takes jobs from the broker one at a
// time. Its stop signal is SIGINT: it stops taking jobs, finishes the one in hand, and exits,
// well within gracefulStopMs.
const broker = process.env.BROKER_URL ?? "http://127.0.0.1:7400";
const name = `worker ${process.env.ROLLBRIDGE_INSTANCE_ID ?? "?"} of ${process.env.ROLLBRIDGE_RELEASE_ID ?? "dev"}`;
const jobMs = Number(process.env.JOB_MS ?? 2000);
let stopping = false;

process.on("SIGINT", () => {
  console.log(`${name}: stopping after the current job`);
  stopping = true;
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

while (!stopping) {
  let job = null;
  try {
    const answer = await fetch(`${broker}/jobs/next`, { method: "POST" });
    if (answer.status === 200) job = await answer.json();
  } catch {
    // The broker is not up yet (or restarting): try again shortly.
  }
  if (!job) {
    await sleep(500);
    continue;
  }
  console.log(`${name}: working on job ${job.id}`);
  await sleep(jobMs);
  console.log(`${name}: finished job ${job.id}`);
}
console.log(`${name}: exiting`);
process.exit(0);
