// The NATS permissions each jetq role needs; chaos 7 runs with exactly these (README "Security").

/**
 * The minimal permissions of each role for one queue (README "Security" lists the same).
 * `$JS.API.INFO` is the account check the JetStream client makes when it starts.
 */
export function rolePermissions(name: string): { producer: object; worker: object; operator: object } {
  const stream = `JETQ_${name}`;
  const ledger = `JETQ_${name}_LEDGER`;
  const dlq = `JETQ_${name}_DLQ`;
  return {
    // Dead-letter operator (DeadLetterQueue / `jetq dlq`): inspect, replay (a publish to the queue), purge.
    operator: {
      publish: {
        allow: [
          "$JS.API.INFO",
          `$JS.API.STREAM.INFO.${dlq}`,
          `$JS.API.DIRECT.GET.${dlq}`,
          `$JS.API.STREAM.MSG.GET.${dlq}`,
          `$JS.API.STREAM.MSG.DELETE.${dlq}`,
          `$JS.API.STREAM.PURGE.${dlq}`,
          `jetq.q.${name}`,
        ],
      },
      subscribe: { allow: ["_INBOX.>"] },
    },
    producer: {
      publish: { allow: [`jetq.q.${name}`] },
      subscribe: { allow: ["_INBOX.>"] },
    },
    worker: {
      publish: {
        allow: [
          "$JS.API.INFO",
          // start: the queue exists, its stream's incarnation, its ledger
          `$JS.API.CONSUMER.INFO.${stream}.workers`,
          `$JS.API.STREAM.INFO.${stream}`,
          `$JS.API.STREAM.INFO.${ledger}`,
          `$JS.API.CONSUMER.MSG.NEXT.${stream}.workers`,
          `$JS.ACK.${stream}.workers.>`,
          `jetq.dlq.${name}`,
          // the outcome ledger: read a redelivered job's record, write failures, hand-backs, isolated runs
          `$JS.API.DIRECT.GET.${ledger}.>`,
          `jetq.ledger.${name}.>`,
          // the pause record: read at start and on every notice (src/flow/pause.ts)
          `$JS.API.STREAM.MSG.GET.JETQ_${name}_PAUSE`,
          // the worker list (src/fleet): announce, make the store if missing, remove itself at stop
          `jetq.workers.${name}.>`,
          "$JS.API.STREAM.INFO.JETQ-WORKERS",
          "$JS.API.STREAM.CREATE.JETQ-WORKERS",
          "$JS.API.STREAM.PURGE.JETQ-WORKERS",
          `$JS.API.DIRECT.GET.JETQ-WORKERS.jetq.workers.${name}.>`,
        ],
      },
      // `jetq.pause.<q>`: notices of pauses and resumes
      subscribe: { allow: ["_INBOX.>", `jetq.pause.${name}`] },
    },
  };
}
