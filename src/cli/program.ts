import { Command, Option } from "commander";
import { DEFAULT_SERVER } from "./connect.ts";
import { registerDashboardCommand } from "./dashboard-command.ts";
import { dlqCommand } from "./dlq.ts";
import { eventsCommand, jobCommand } from "./job.ts";
import { jobsCommand } from "./jobs.ts";
import { workersCommand } from "./workers.ts";
import { JETQ_VERSION } from "../fleet/store.ts";
import { EXIT_HELP, UsageError } from "./exit.ts";
import { parseDuration } from "./format.ts";
import { pauseCommand, resumeCommand } from "./pause.ts";
import { provisionCommand } from "./provision.ts";
import { publishCommand } from "./publish.ts";
import { schedulesCommand } from "./schedules.ts";
import { statsCommand } from "./stats.ts";


/** The `jetq` program with every command registered; `main.ts` parses argv with it. */
export function buildProgram(): Command {
  const program = new Command("jetq")
    .description("Operate jetq queues on NATS JetStream: provision, stats, publish, jobs, workers, and dead letters.")
    .version(JETQ_VERSION)
    .addOption(new Option("-s, --server <urls>", "NATS server URL(s), comma-separated").env("NATS_URL").default(DEFAULT_SERVER))
    .addOption(new Option("--creds <file>", "NATS credentials file (JWT + seed)").env("NATS_CREDS"))
    .addOption(new Option("--user <name>", "NATS user").env("NATS_USER"))
    .addOption(new Option("--password <secret>", "NATS password").env("NATS_PASSWORD"))
    .addOption(new Option("--tls-ca <file>", "CA certificate to verify the server's TLS certificate").env("NATS_CA"))
    .addOption(new Option("--tls-cert <file>", "client certificate for mutual TLS").env("NATS_CERT"))
    .addOption(new Option("--tls-key <file>", "client key for mutual TLS").env("NATS_KEY"))
    .addOption(
      new Option("--timeout <duration>", "the most a command waits for the server: the connection and every request after it, together")
        .default(5000, "5s")
        .argParser((v) => {
          const ms = parseDuration(v, "--timeout");
          if (ms < 1) throw new UsageError("--timeout must be positive");
          return ms;
        }),
    )
    .option("--json", "machine-readable output (errors too, on stderr)")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      `
Queues are named on the command line; jetq reads everything else from the server
(stream JETQ_<queue>, consumer "workers", dead letters in JETQ_<queue>_DLQ).

Examples:
  jetq provision emails --max-attempts 8 --ack-wait 1m
  jetq publish emails '{"to":"ada@example.com"}'
  jetq stats emails --watch
  jetq dlq list emails
  jetq dlq replay emails 12
  jetq workers emails
  jetq jobs emails --state active
  jetq job reports report-42
  jetq events reports
  jetq dlq purge emails --older-than 7d --yes
  jetq pause emails --for 10m
  jetq resume emails

${EXIT_HELP}`,
    );
  program.addCommand(provisionCommand());
  program.addCommand(statsCommand());
  program.addCommand(publishCommand());
  program.addCommand(dlqCommand());
  program.addCommand(schedulesCommand());
  program.addCommand(pauseCommand());
  program.addCommand(resumeCommand());
  program.addCommand(jobsCommand());
  program.addCommand(jobCommand());
  program.addCommand(workersCommand());
  program.addCommand(eventsCommand());
  registerDashboardCommand(program);
  return program;
}
