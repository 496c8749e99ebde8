import { Command } from "commander";
import { Mover } from "../schedule/mover.ts";
import { loadDelayedQueue } from "./connect.ts";
import { globals, print, withNats } from "./context.ts";

/** Resolves when SIGINT or SIGTERM arrives; the handlers are removed again either way. */
function untilSignal(): { promise: Promise<NodeJS.Signals>; dispose: () => void } {
  let dispose = (): void => {};
  const promise = new Promise<NodeJS.Signals>((resolve) => {
    const on = (sig: NodeJS.Signals): void => resolve(sig);
    process.once("SIGINT", on);
    process.once("SIGTERM", on);
    dispose = () => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
    };
  });
  return { promise, dispose };
}

/** `jetq schedules …`: what runs a queue's delayed jobs without a worker. */
export function schedulesCommand(): Command {
  const cmd = new Command("schedules").description("delayed jobs of a queue: move them into the queue when due");
  cmd
    .command("run")
    .description("move the queue's delayed jobs into it when they are due, until Ctrl-C (any number may run beside workers)")
    .argument("<queue>", "queue name (provisioned with --delayed)")
    .action(async (name: string, _flags: unknown, sub: Command) => {
      const g = globals(sub);
      await withNats(
        g,
        async (nc) => {
          const queue = await loadDelayedQueue(nc, name);
          const signal = untilSignal();
          const mover = new Mover(nc, queue, { error: (err) => process.stderr.write(`jetq: ${err.message}\n`) });
          try {
            await mover.start();
            print(g.json ? JSON.stringify({ queue: name, running: true }) : `moving delayed jobs of queue "${name}" when due; press Ctrl-C to stop`);
            await Promise.race([signal.promise, nc.closed()]);
          } finally {
            signal.dispose();
            await mover.stop();
          }
        },
        true,
      );
    });
  return cmd;
}
