// Where the daemon's event lines go besides its memory: stdout (journald, the daemon log file,
// a terminal). A file or the journal takes every line at once; a pipe whose reader stopped
// (`rollbridge daemon | less`, paused) would otherwise queue every line in the daemon's memory
// for as long as the daemon runs. Past `maxBufferedBytes` waiting, lines are dropped and counted,
// and a notice line says how many once the reader catches up. The history (rollbridge events)
// keeps them either way.

/** Event-line bytes that may wait for a slow stdout before lines are dropped. */
export const MAX_SINK_BUFFER_BYTES = 4 * 1024 * 1024;

/** A line writer for `stream` that never lets more than `maxBufferedBytes` wait in memory. */
export function boundedLineSink(stream: NodeJS.WriteStream, maxBufferedBytes = MAX_SINK_BUFFER_BYTES): (line: string) => void {
  let dropped = 0;
  const notice = () => {
    const count = dropped;
    dropped = 0;
    stream.write(
      JSON.stringify({
        at: new Date().toISOString(),
        level: "warn",
        type: "event-lines-dropped",
        message: `${count} event line${count === 1 ? " was" : "s were"} not written here: this output was not being read (more than ${Math.round(maxBufferedBytes / 1024 / 1024)} MiB waiting); rollbridge events keeps the last 1000`,
        data: { dropped: count },
      }) + "\n",
    );
  };
  return (line) => {
    if (stream.writableLength > maxBufferedBytes) {
      if (dropped === 0) stream.once("drain", notice);
      dropped += 1;
      return;
    }
    stream.write(line + "\n");
  };
}
