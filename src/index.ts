/**
 * jetq: durable background jobs on NATS JetStream.
 *
 * Everything exported here is the public API; nothing else is.
 * @module
 */
export { defineQueue } from "./queue/define.ts";
export type { Queue, QueueOptions, QueueNames, JobInput, JobData, RateLimit } from "./queue/define.ts";
export type { BackoffOptions, BackoffFunction, ExponentialBackoff, ResolvedBackoff } from "./queue/backoff.ts";
export { provisionQueue } from "./queue/provision.ts";
export type { ProvisionOptions, ProvisionResult } from "./queue/provision.ts";
export { Producer, PublishBatchError } from "./producer/producer.ts";
export type { ProducerOptions, PublishOptions, PublishReceipt, PublishManyOptions, PublishOutcome } from "./producer/producer.ts";
export { Schedules } from "./schedule/schedules.ts";
export type { ScheduleSpec, ScheduleInfo, ScheduleJobOptions } from "./schedule/schedules.ts";
export { Worker } from "./consumer/worker.ts";
export type { Job, Handler, Middleware, WorkerOptions, WorkerEvents, JobEvent, StopOptions, Logger } from "./consumer/worker.ts";
export { DeadLetterQueue } from "./dlq/dlq.ts";
export type { DeadLetter, ListOptions, DeadLetterFilter, ReplayAllResult } from "./dlq/dlq.ts";
export type { DeadLetterReason } from "./dlq/route.ts";
export { Jobs } from "./state/jobs.ts";
export type { WaitOptions, EventsOptions, JobStateEvent, JobGapEvent, JobsEvent } from "./state/jobs.ts";
export type { JobInfo, JobStateName, JobStateError } from "./state/record.ts";
export { listJobs } from "./state/list.ts";
export type { ListJobsOptions, ListedJob, ListedJobState, JobPage } from "./state/list.ts";
export { listWorkers } from "./fleet/list.ts";
export type { ListWorkersOptions, WorkerInfo, WorkerList, RunningJobInfo } from "./fleet/list.ts";
export {
  JetqError,
  ValidationError,
  QueueFullError,
  PermanentError,
  RetryError,
  ConfigError,
  ProvisionConflictError,
  QueueNotFoundError,
  TimeoutError,
  ConnectionError,
  PermissionError,
  JobTimeoutError,
  NotSentError,
  AuthenticationError,
  DeadLetterNotFoundError,
  JobTooLargeError,
  JobFailedError,
} from "./errors.ts";
export { connect } from "./connect.ts";
export type { ConnectOptions } from "./connect.ts";
export type { ValidationIssue } from "./errors.ts";
export { queueStats } from "./telemetry/stats.ts";
export { pauseQueue, resumeQueue, isPaused, pauseState } from "./flow/pause.ts";
export type { PauseOptions, PauseState } from "./flow/pause.ts";
export type { QueueStats } from "./telemetry/stats.ts";
export { observeQueues } from "./telemetry/observe.ts";
export type { ObserveQueuesOptions, QueueObserver } from "./telemetry/observe.ts";
export type { TelemetryOptions } from "./telemetry/otel.ts";
export { createDashboard } from "./dashboard/handler.ts";
export type { DashboardOptions, DashboardHandler } from "./dashboard/handler.ts";
