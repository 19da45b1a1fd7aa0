// The socket-activation stand-in (systemd with Restart=always) lives in bench/socket-holder.mjs,
// one copy for the tests and the benchmarks (bench/daemon-crash.mjs runs through it too).
export { holdSocket, type SocketHolder } from "../../bench/socket-holder.mjs";
