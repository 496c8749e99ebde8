import type { ZodType } from "zod";
import { JetqError, JobTimeoutError, ValidationError } from "../errors.ts";
import { type Job, JobImpl } from "./job.ts";
import { safeError } from "./decide.ts";

/**
 * A step around the handler. Call `next()` to run the rest of the chain (the handler last) and
 * return its value, or change it; throw to fail the attempt; return without calling `next()` to
 * settle the attempt without running the handler. Middleware runs outermost first, in the order
 * given; whatever the chain resolves to is the job's result.
 *
 * @example
 * ```ts
 * const timing: Middleware<unknown> = async (job, next) => {
 *   const t = performance.now();
 *   try {
 *     return await next();
 *   } finally {
 *     console.log(`job ${job.id} took ${performance.now() - t} ms`);
 *   }
 * };
 * ```
 */
export type Middleware<T = unknown> = (job: Job<T>, next: () => Promise<unknown>) => Promise<unknown>;

/**
 * @internal Thrown by jetq's validation step: the payload cannot be handled, whatever attempts are
 * left. Not a user-visible class: the worker turns it into a dead letter with reason `validation`.
 */
export class PayloadRejected extends Error {
  readonly error: ValidationError;
  constructor(error: ValidationError) {
    super(error.message);
    this.error = error;
  }
}

/**
 * @internal Runs `steps` around `handler` for one job. A step that calls `next()` twice gets a
 * rejection; a step that throws synchronously is a failed attempt like one that rejects.
 */
export function runChain<T>(steps: readonly Middleware<T>[], handler: (job: Job<T>) => unknown, job: Job<T>): Promise<unknown> {
  if (steps.length === 0) return call(handler, job);
  let index = -1;
  const dispatch = (i: number): Promise<unknown> => {
    if (i <= index) return Promise.reject(new JetqError("a middleware called next() more than once"));
    index = i;
    if (i === steps.length) return call(handler, job);
    const step = steps[i]!;
    return call((j: Job<T>) => step(j, () => dispatch(i + 1)), job);
  };
  return dispatch(0);
}

function call<T>(fn: (job: Job<T>) => unknown, job: Job<T>): Promise<unknown> {
  try {
    const v = fn(job);
    return v instanceof Promise ? v : Promise.resolve(v);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** @internal jetq's own outermost step: runs the rest inside the attempt's trace context. */
export const telemetryStep: Middleware<unknown> = (job, next) => {
  const span = JobImpl.running(job)?.span;
  return span ? span.run(next) : next();
};

/**
 * @internal jetq's validation step: checks the payload against the queue's schema and hands the
 * schema's output on. A schema whose parsing throws (a `transform` or `refine` that throws, an
 * async schema) rejects the payload like a failed check: it never escapes into the worker.
 */
export function validationStep(schema: ZodType): Middleware<unknown> {
  return async (job, next) => {
    let parsed;
    try {
      parsed = schema.safeParse(job.data);
    } catch (err) {
      // zod throws from safeParse for schemas with async refinements or transforms: try the async form.
      try {
        parsed = await schema.safeParseAsync(job.data);
      } catch {
        const e = safeError(err);
        throw new PayloadRejected(new ValidationError(`the schema threw while checking the payload: ${e.message}`, [], { cause: err }));
      }
    }
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: i.path, message: i.message, code: i.code }));
      const summary = issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
      throw new PayloadRejected(new ValidationError(`payload does not match the schema: ${summary}`, issues));
    }
    JobImpl.setData(job, parsed.data);
    return next();
  };
}

/**
 * @internal jetq's timeout step: at `timeoutMs` the job's signal aborts and the attempt fails with
 * {@link JobTimeoutError}. A handler that ignores its signal keeps running; the worker keeps its
 * slot until it settles (it never runs more handlers than its concurrency).
 */
export function timeoutStep(timeoutMs: number): Middleware<unknown> {
  return (job, next) => {
    const r = JobImpl.running(job);
    const inner = next();
    if (!r) return inner;
    r.chainDone = false;
    return new Promise<unknown>((resolve, reject) => {
      r.timer = setTimeout(() => {
        const e = new JobTimeoutError(`handler for job ${r.event.id} exceeded timeoutMs (${timeoutMs} ms)`);
        r.timedOut = true;
        r.abort(e);
        reject(e);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(r.timer);
        r.chainDone = true;
        r.onChainDone?.();
      };
      inner.then(
        (v) => {
          done();
          resolve(v);
        },
        (err: unknown) => {
          done();
          reject(err);
        },
      );
    });
  };
}
