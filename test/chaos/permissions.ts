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

/**
 * The permissions a role needs on top of its base list for a queue feature (README "Security",
 * the "in addition" rows), and the lister's list. Chaos 7b runs each with base + extra and drops
 * one extra entry at a time (the base lists are proven minimal on their own).
 */
export interface ExtraRole {
  /** The role whose list comes first (`undefined`: none; the extra list is the whole list). */
  base: "worker" | "producer" | "operator" | undefined;
  /** Other rows' entries this role also needs, after the base list; shown needed by their own rows, not dropped here. */
  inherited?: string[];
  /** The entries this row adds; chaos 7b drops each in turn. */
  publish: string[];
  subscribe: string[];
}

/** The extra roles for one queue; priority levels for `priorities: 2` (level 0 only). */
export function extraPermissions(name: string): {
  prioProducer: ExtraRole;
  prioWorker: ExtraRole;
  prioOperator: ExtraRole;
  groupWorker: ExtraRole;
  schedWorker: ExtraRole;
  schedPrioWorker: ExtraRole;
  lister: ExtraRole;
  cliLister: ExtraRole;
} {
  const stream = `JETQ_${name}`;
  const lister = [
    "$JS.API.INFO",
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    // delayed jobs (a queue with scheduling)
    `$JS.API.STREAM.INFO.${stream}_HELD`,
    `$JS.API.DIRECT.GET.${stream}_HELD`,
    // the worker list: an ordered consumer on the store (src/fleet/list.ts)
    // nats-server 2.9 (the one tested); newer servers may be asked on CREATE.JETQ-WORKERS.> (README)
    "$JS.API.CONSUMER.CREATE.JETQ-WORKERS",
    "$JS.API.CONSUMER.INFO.JETQ-WORKERS.>",
    "$JS.API.CONSUMER.MSG.NEXT.JETQ-WORKERS.>",
    "$JS.API.CONSUMER.DELETE.JETQ-WORKERS.>",
  ];
  const prioWorker = [`$JS.API.CONSUMER.INFO.${stream}.workers-p0`, `$JS.API.CONSUMER.MSG.NEXT.${stream}.workers-p0`, `$JS.ACK.${stream}.workers-p0.>`];
  const schedWorker = [
    // the mover: delayed jobs into the queue
    `jetq.q.${name}`,
    `$JS.API.CONSUMER.INFO.${stream}_HELD.mover`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}_HELD.mover`,
    `$JS.ACK.${stream}_HELD.mover.>`,
    // the clock probe (its publish is the base list's jetq.ledger.<q>.>)
    `$JS.API.STREAM.MSG.GET.${stream}_LEDGER`,
    // the ticker: an ordered consumer watching the schedules (src/schedule/ticker.ts); it is created
    // on CREATE.<stream>.<name>.<filter> (one filter subject: nats-server 2.9 and later), and on a
    // reconnect checks its consumer (INFO) and, when gone, deletes it and makes a new one
    `$JS.API.STREAM.INFO.${stream}_SCHED`,
    `$JS.API.CONSUMER.CREATE.${stream}_SCHED.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}_SCHED.>`,
    `$JS.API.CONSUMER.INFO.${stream}_SCHED.>`,
    `$JS.API.CONSUMER.DELETE.${stream}_SCHED.>`,
    // the tick records
    `jetq.sched.${name}.>`,
  ];
  return {
    // with `priorities: N`, each level l from 0 to N - 2 (the last level is the plain consumer)
    prioProducer: { base: "producer", publish: [`jetq.q.${name}.p.0`], subscribe: [] },
    // replaying a dead letter of level 0 publishes it back to its level
    prioOperator: { base: "operator", publish: [`jetq.q.${name}.p.0`], subscribe: [] },
    prioWorker: { base: "worker", publish: prioWorker, subscribe: [] },
    // with `group: { concurrency, rateLimit }`
    groupWorker: {
      base: "worker",
      publish: [
        `$JS.API.STREAM.INFO.${stream}_GROUPS`,
        `jetq.groups.${name}.*`,
        `$JS.API.STREAM.MSG.DELETE.${stream}_GROUPS`,
        `$JS.API.STREAM.INFO.${stream}_GRATE`,
        `jetq.grate.${name}.*`,
        `$JS.API.STREAM.MSG.GET.${stream}_GRATE`,
        // the group waiting count: a marker per handed-back job, removed at its start
        `jetq.gwait.${name}.*`,
        `$JS.API.STREAM.PURGE.${stream}_GWAIT`,
      ],
      subscribe: [],
    },
    // with `scheduling: true` (a worker, or `jetq schedules run`): moves delayed jobs, fires schedules
    schedWorker: { base: "worker", publish: schedWorker, subscribe: [] },
    // with `priorities: 2` too: delayed and schedule jobs of level 0 go to its subject
    schedPrioWorker: { base: "worker", inherited: [...prioWorker, ...schedWorker], publish: [`jetq.q.${name}.p.0`], subscribe: [] },
    // listJobs (waiting, active, delayed) and listWorkers
    lister: { base: undefined, publish: lister, subscribe: ["_INBOX.>"] },
    // `jetq jobs` / `jetq workers` also open the queue as the CLI does (src/cli/connect.ts loadQueue)
    cliLister: { base: undefined, inherited: lister, publish: [`$JS.API.CONSUMER.INFO.${stream}.workers`], subscribe: ["_INBOX.>"] },
  };
}
