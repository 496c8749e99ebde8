/*
 * jetq's delivery protocol (docs/design/attempts.md) as a Promela model for SPIN.
 * model/README.md maps every process and step to the source it stands for, and lists the
 * bounds, the properties and the mutations (-DM_...) that SPIN must reject.
 *
 * One step of a worker is one atomic block: everything a worker does between two points where
 * its process can die or the server can act (a ledger write, a dead-letter publish, an ack).
 * A worker can crash between any two of its steps; it restarts at once with empty memory.
 */

/* ---- bounds (overridable with -D) ---- */
#ifndef NJ
#define NJ 2            /* jobs; job 0 is the poison job, every other job is ordinary */
#endif
#ifndef NW
#define NW 2            /* workers */
#endif
#define NS 2            /* handler slots per worker (concurrency 2) */
#define NK (NW*NS)      /* slots in all */
#ifndef MAXATT
#define MAXATT 2        /* queue maxAttempts */
#endif
#ifndef MAXCRASH
#define MAXCRASH 2      /* queue maxCrashes */
#endif
#ifndef FAILB
#define FAILB 2         /* handler failures of ordinary jobs, all jobs together */
#endif
#ifndef CRASHB
#define CRASHB 1        /* crashes of a worker not caused by the poison job (kill -9, OOM) */
#endif
#ifndef LAPSEB
#define LAPSEB 1        /* leases that lapse while their worker lives (stall, lost ack, partition) */
#endif
#ifndef STRAYB
#define STRAYB 1        /* deliveries for pull requests still open once a worker stopped pulling */
#endif
#ifndef STOPB
#define STOPB 1         /* stop() calls whose deadline hands jobs back */
#endif
#ifndef GIVEUPB
#define GIVEUPB 0       /* suspects handed back because a handler beside them hangs (the wait ran out) */
#endif

#ifndef DMAX
#define DMAX 6          /* deliveries of one job: the search stops delivering a job past this */
#endif

#define POISON 0

/* slot phases: where a delivery is in the worker (src/consumer/worker.ts) */
#define P_EMPTY   0
#define P_GOT     1   /* delivered, not classified */
#define P_ISOW    2   /* suspect waiting for the worker to empty before its isolated run */
#define P_RUNNING 4   /* handler running */
#define P_ACK     5   /* handler resolved, ack not sent */
#define P_FAILW   6   /* handler failed with attempts left, ledger write not done */
#define P_NAK     7   /* outcome recorded, nak not sent */
#define P_DLQ     8   /* dead letter not published */
#define P_TERM    9   /* dead letter confirmed, original not removed */
#define P_HBW    10   /* hand-back: ledger write not done */
#define P_FAILW2 11   /* only with M_NAK_BEFORE_WRITE: nak sent, ledger write not done */
#define P_DLQ2   12   /* only with M_TERM_FIRST: original removed, dead letter not published */

/* worker modes */
#define M_NORMAL   0
#define M_ISOWAIT  1  /* stopped pulling, waiting for its other jobs to finish */
#define M_ISORUN   2  /* running one suspect alone */
#define M_STOPPING 3  /* stop() called */

/* dead-letter reasons */
#define R_MAXATT  1
#define R_CRASHED 2

/* ---- the work stream and its consumer (max_deliver -1) ---- */
bool inq[NJ] = true;   /* still in the work-queue stream (every job is published at the start) */
bool avail[NJ] = true; /* deliverable now (new, nak'd, or its lease lapsed) */
byte dcnt[NJ];         /* the server's delivery count */
byte holder[NJ];       /* slot+1 holding the current delivery; 0: nobody alive holds it */

/* ---- the outcome ledger: one record per job, lseq is its subject sequence for CAS ---- */
byte lseq[NJ];
byte lf[NJ];           /* failures */
byte lc[NJ];           /* crashes */
byte lseen[NJ];        /* seen */
byte liso[NJ];         /* isolated (delivery number, 0 = unset) */
bool lsus[NJ];         /* suspect */
bool ldead[NJ];        /* only with FIX_DEAD_RECORD: the job is being dead-lettered */
byte ldr[NJ];          /*   for this reason */

/* ---- the dead-letter stream (msg id per job: at most one entry per job) ---- */
byte dln[NJ];          /* entries for the job */
byte dlr[NJ];          /* reason of the first entry */
byte dla[NJ];          /* its recorded attempts */
byte dlc[NJ];          /* its recorded crashes */

/* ---- workers: slot k = w*NS + s ---- */
byte pc[NK];
byte sj[NK];           /* job */
byte sd[NK];           /* delivery number */
byte rseq[NK];         /* ledger sequence the next write expects */
byte rf[NK];           /* record in force: failures (attempt = rf + 1) */
byte rc[NK];           /*   crashes */
bool riso[NK];         /*   isolated was set when read (its crash not yet counted) */
bool rsus[NK];         /*   suspect */
bool isorun[NK];       /* this delivery runs (or waits to run) as an isolated run */
byte reason[NK];
byte mode[NW];

/* ---- budgets spent ---- */
byte crashes_spent, lapses_spent, strays_spent, stops_spent, fails_spent, giveups_spent;

/* ---- ghost history (what really happened; never read by the protocol) ---- */
bool completed[NJ];    /* acked after its handler resolved */
byte hfail[NJ];        /* handler failures, recorded or not */
byte recfail[NJ];      /* failure records confirmed */
byte isost[NJ];        /* isolated-start records confirmed */
byte isoout[NJ];       /* outcomes recorded by an isolated run (failure or hand-back) */
bool lapsed[NK];       /* slot's lease lapsed while its worker lived (the worker does not know) */
bool isowr[NK];        /* slot's isolated run started (its record is written) and has recorded no outcome */
bool open[NK];         /* slot is an isolated run that started and has not recorded an outcome */
byte guilt[NJ];        /* isolated runs of the job during which its process died or stalled */
byte neediso[NJ];      /* the delivery of the job whose process died or stalled before its outcome was recorded (0: none) */

byte ht, hj;         /* scratch, always reset to 0 */

#define AV(j) (inq[j] && avail[j] && dcnt[j] < DMAX)
#if NJ > 2
#define alldone (!inq[0] && !inq[1] && !inq[2])
#define SOMEAVAIL (AV(0) || AV(1) || AV(2))
#else
#define alldone (!inq[0] && !inq[1])
#define SOMEAVAIL (AV(0) || AV(1))
#endif
#define W(k) ((k) / NS)
#define OTHER(k) (((k) % NS == 0) -> (k) + 1 : (k) - 1)

/* The delivery this slot holds is the current one and nobody alive holds it any more. */
inline orphan(k) {
  if
  :: holder[sj[k]] == k + 1 -> holder[sj[k]] = 0
  :: else -> skip
  fi
}

/* A crash or stall of the process holding slot k: ghosts only. */
inline died(k) {
  if
  :: pc[k] != P_EMPTY && holder[sj[k]] == k + 1 && pc[k] != P_NAK -> neediso[sj[k]] = sd[k]
  :: else -> skip
  fi;
  if
  :: open[k] -> guilt[sj[k]]++; open[k] = 0
  :: else -> skip
  fi
}

/* Slot h loses its lease while its worker lives and runs on (a stall, or a stale nak). */
inline stolen(h) {
  if
  :: pc[h] != P_EMPTY && pc[h] != P_NAK -> neediso[sj[h]] = sd[h]
  :: else -> skip
  fi;
  lapsed[h] = 1;
#ifndef STRICT_GUILT
  if :: open[h] -> guilt[sj[h]]++; open[h] = 0 :: else -> skip fi
#else
  open[h] = 0
#endif
}

inline clearslot(k) {
  pc[k] = P_EMPTY; sj[k] = 0; sd[k] = 0; rseq[k] = 0; rf[k] = 0; rc[k] = 0;
  riso[k] = 0; rsus[k] = 0; isorun[k] = 0; reason[k] = 0; open[k] = 0; lapsed[k] = 0; isowr[k] = 0
}

/* The slot's delivery is settled (answered or given up): frees the slot, ends isolation. */
inline release(k) {
  if
  :: isorun[k] && mode[W(k)] != M_STOPPING -> mode[W(k)] = M_NORMAL
  :: else -> skip
  fi;
  clearslot(k)
}

/* A ledger write failed its compare-and-set: the worker does not answer, the lease lapses. */
inline giveup(k) {
  printf("STORY slot %d: ledger write of job %d refused (CAS): not answered\n", k, sj[k]);
  orphan(k);
  release(k)
}

/* The process of worker w dies; a new one starts with nothing in memory. */
inline crash(cw) {
  printf("STORY worker %d: process dies, restarts empty\n", cw);
  ht = (cw) * NS;
  do
  :: ht < (cw) * NS + NS ->
     died(ht); orphan(ht); clearslot(ht); ht++
  :: else -> break
  od;
  mode[cw] = M_NORMAL;
  ht = 0
}

/* A compare-and-set on the job's ledger subject. */
#ifdef M_NO_CAS
#define CAS_OK(k) true
#else
#define CAS_OK(k) (lseq[sj[k]] == rseq[k])
#endif

inline lwrite(k, f, c, seen, iso, sus) {
  printf("STORY slot %d: ledger job %d <- {failures %d, crashes %d, seen %d, isolated %d, suspect %d}\n", k, sj[k], f, c, seen, iso, sus);
  lseq[sj[k]]++; rseq[k] = lseq[sj[k]];
  lf[sj[k]] = f; lc[sj[k]] = c; lseen[sj[k]] = seen; liso[sj[k]] = iso; lsus[sj[k]] = sus
}

/* nak: the job becomes deliverable again (a nak delay is only a later redelivery here) */
inline nak(k) {
  printf("STORY slot %d: nak job %d\n", k, sj[k]);
  if
  :: inq[sj[k]] && !avail[sj[k]] && holder[sj[k]] != 0 && holder[sj[k]] != k + 1 ->
     /* README F5: the server acts on a nak of an older delivery (processNak checks only that the
        message is pending): the job is taken from the worker that holds it now, as if its lease lapsed */
     printf("STORY server: stale nak takes job %d from slot %d\n", sj[k], holder[sj[k]] - 1);
     stolen(holder[sj[k]] - 1);
     avail[sj[k]] = 1; holder[sj[k]] = 0
  :: else ->
     if :: inq[sj[k]] -> avail[sj[k]] = 1; holder[sj[k]] = 0 :: else -> skip fi
  fi
}

/* ack or term: a work-queue stream deletes the message */
inline remove(k) {
  printf("STORY slot %d: ack/term job %d (removed)\n", k, sj[k]);
  inq[sj[k]] = 0; avail[sj[k]] = 0; holder[sj[k]] = 0
}

/* The dead letter: copyToDeadLetters, confirmed, msg id per job. */
inline publishdl(k) {
  /* a job is dead-lettered only for its own failures or its own crashes while alone */
  assert(hfail[sj[k]] > 0 || guilt[sj[k]] > 0);
#ifndef M_NO_MSGID
  if
  :: dln[sj[k]] == 0 ->
#endif
     dln[sj[k]]++;
     printf("STORY slot %d: dead letter job %d reason %d attempts %d crashes %d\n", k, sj[k], reason[k], rf[k] + (reason[k] == R_MAXATT -> 1 : 0), rc[k] + riso[k]);
     assert(dln[sj[k]] <= 1);
     dlr[sj[k]] = reason[k];
#ifdef FIX_DEAD_RECORD
     dla[sj[k]] = rf[k];
#else
     dla[sj[k]] = rf[k] + (reason[k] == R_MAXATT -> 1 : 0);
#endif
     dlc[sj[k]] = rc[k] + riso[k];
     /* the dead letter's story matches the history: every crash it counts is an isolated run
        of this job whose process died or stalled; from the job's current delivery, exactly
        the isolated runs that ended without an outcome, and all its recorded failures */
     assert(dlc[sj[k]] <= guilt[sj[k]]);
     assert(reason[k] != R_CRASHED || dlc[sj[k]] >= MAXCRASH);
#ifdef FIX_DEAD_RECORD
#define LASTFAIL 0      /* the last failure is in the dead record */
#else
#define LASTFAIL 1      /* the last failure is recorded nowhere but in the dead letter */
#endif
     assert(dla[sj[k]] <= recfail[sj[k]] + LASTFAIL);
     assert(!(sd[k] == dcnt[sj[k]] && holder[sj[k]] == k + 1) ||
            (dlc[sj[k]] == isost[sj[k]] - isoout[sj[k]] - isowr[k] &&
             (reason[k] != R_MAXATT || dla[sj[k]] == recfail[sj[k]] + LASTFAIL)))
#ifndef M_NO_MSGID
  :: else -> skip
  fi
#endif
}

/* The handler starts (at once after classify, or after the isolated-start record is confirmed). */
inline start(k) {
  /* attempt = recorded failures + 1, for a delivery that is still the job's current one; a
     delivery whose lease lapsed before it was classified may see an older count (README F3) */
#ifdef STRICT_ATTEMPT
  assert(rf[k] == recfail[sj[k]]);
#else
  assert(rf[k] <= recfail[sj[k]]);
  assert(rf[k] == recfail[sj[k]] || !(sd[k] == dcnt[sj[k]] && holder[sj[k]] == k + 1));
#endif
  assert(isorun[k] || neediso[sj[k]] == 0 || sd[k] <= neediso[sj[k]]); /* after a death: alone */
  assert(!isorun[k] || pc[OTHER(k)] != P_RUNNING); /* alone means alone */
  assert(isorun[k] || !(isorun[OTHER(k)] && pc[OTHER(k)] == P_RUNNING));
  printf("STORY slot %d: handler of job %d starts, attempt %d, alone %d\n", k, sj[k], rf[k] + 1, isorun[k]);
  pc[k] = P_RUNNING
}

#ifdef FIX_DEAD_RECORD
#define DEADCHK(k) (sd[k] > 1 && ldead[sj[k]])
#else
#define DEADCHK(k) false
#endif
#ifdef FIX_STALE
#define STALECHK(k) (sd[k] > 1 && (lseen[sj[k]] >= sd[k] || liso[sj[k]] >= sd[k]))
#else
#define STALECHK(k) false
#endif

/* ---- one step of slot k ---- */
inline step(k) {
  if
  /* classify (src/consumer/decide.ts classify, after Ledger.read when d > 1) */
  :: pc[k] == P_GOT ->
     if
     :: sd[k] == 1 -> rseq[k] = 0   /* no read: the happy path pays nothing */
     :: else ->
        rseq[k] = lseq[sj[k]]; rf[k] = lf[sj[k]]; rc[k] = lc[sj[k]];
        riso[k] = (liso[sj[k]] != 0); rsus[k] = lsus[sj[k]]
     fi;
     if
     /* FIX_DEAD_RECORD: a dead letter was decided (maybe confirmed) before a crash: finish it, never run */
     :: DEADCHK(k) -> reason[k] = ldr[sj[k]]; pc[k] = P_DLQ
     /* FIX_STALE: the record was written by a later delivery: this one is stale, another worker
        holds the job, and answering would act on that delivery (a nak redelivers it, an ack removes it) */
     :: !DEADCHK(k) && STALECHK(k) ->
        printf("STORY slot %d: delivery %d of job %d is stale: dropped\n", k, sd[k], sj[k]);
        release(k)
     :: !DEADCHK(k) && !STALECHK(k) && (sd[k] == 1 || (lseen[sj[k]] == sd[k] - 1 && !riso[k] && !rsus[k])) ->
        /* explained: run among others */
        if
        :: mode[W(k)] != M_NORMAL -> pc[k] = P_HBW      /* stopped pulling: hand back */
        :: else ->
           if
           :: pc[OTHER(k)] != P_EMPTY && sj[OTHER(k)] == sj[k] -> pc[k] = P_HBW  /* already running here */
           :: else ->
#ifdef M_ATTEMPT_IS_DELIVERY
              rf[k] = sd[k] - 1;
#endif
              start(k)
           fi
        fi
     :: else ->
        /* a suspect: its crash counts only if it was alone (isolated set) */
#ifdef M_CHARGE_UNEXPLAINED
        if :: !riso[k] -> rc[k]++ :: else -> skip fi;
#endif
#ifndef SPEC_HANDBACK_AS_READ
        /* decide.ts baseRecord: the counted crash and the suspicion are the record in force */
        rc[k] = rc[k] + riso[k]; riso[k] = 0; rsus[k] = 1;
#endif
#ifndef M_NO_CRASH_LIMIT
        if
        :: rc[k] + riso[k] >= MAXCRASH -> reason[k] = R_CRASHED; pc[k] = P_DLQ
        :: else ->
#endif
#ifdef M_SUSPECT_RUNS
           if
           :: mode[W(k)] == M_NORMAL -> start(k)
           :: else -> pc[k] = P_HBW
           fi
#else
           if
           :: mode[W(k)] == M_NORMAL && !(pc[OTHER(k)] != P_EMPTY && sj[OTHER(k)] == sj[k]) ->
              mode[W(k)] = M_ISOWAIT; isorun[k] = 1; pc[k] = P_ISOW
           :: else -> pc[k] = P_HBW
           fi
#endif
#ifndef M_NO_CRASH_LIMIT
        fi
#endif
     fi

  /* the isolated run starts once the worker holds nothing else (worker.ts isolate) */
#ifndef M_NO_WAIT
  :: pc[k] == P_ISOW && mode[W(k)] == M_ISOWAIT && pc[OTHER(k)] == P_EMPTY ->
#else
  :: pc[k] == P_ISOW && mode[W(k)] == M_ISOWAIT ->
#endif
     if
     :: CAS_OK(k) ->
        printf("STORY slot %d: isolated run of job %d starts\n", k, sj[k]);
        assert(rc[k] + riso[k] <= guilt[sj[k]]);  /* a crash is charged only for a death while alone */
        lwrite(k, rf[k], rc[k] + riso[k], sd[k] - 1, sd[k], 1);
        rc[k] = rc[k] + riso[k]; riso[k] = 0; rsus[k] = 1;
        isost[sj[k]]++; open[k] = 1; isowr[k] = 1;
#ifndef STRICT_GUILT
        /* README F4: the lease lapsed before the isolated run started (the process stalled while
           the job waited in it, or a stale nak took it); the next delivery charges this run */
        if :: lapsed[k] -> guilt[sj[k]]++; open[k] = 0 :: else -> skip fi;
#endif
        mode[W(k)] = M_ISORUN; start(k)
     :: else -> giveup(k)
     fi

  /* the wait ran out (worker.ts #giveUpIsolation): another handler here hangs, or is past its
     timeout ignoring its signal. The suspect is handed back (recorded, no attempt) and the worker
     pulls again; it never runs beside the other handler. The model has no time, so this may
     happen at any moment while another job is held here (budget GIVEUPB). */
  :: pc[k] == P_ISOW && mode[W(k)] == M_ISOWAIT && pc[OTHER(k)] != P_EMPTY && giveups_spent < GIVEUPB ->
     giveups_spent++;
     printf("STORY slot %d: job %d gives up waiting to run alone: handed back\n", k, sj[k]);
     mode[W(k)] = M_NORMAL; isorun[k] = 0; pc[k] = P_HBW

  /* the handler settles */
  :: pc[k] == P_RUNNING ->
     if
     :: sj[k] == POISON -> crash(W(k))                /* it takes its process down */
     :: sj[k] != POISON -> pc[k] = P_ACK; printf("STORY slot %d: handler of job %d resolved\n", k, sj[k])
     :: sj[k] != POISON && fails_spent < FAILB ->     /* threw */
        fails_spent++; hfail[sj[k]]++;
        printf("STORY slot %d: handler of job %d threw\n", k, sj[k]);
        if
        :: rf[k] + 1 < MAXATT -> pc[k] = P_FAILW
        :: else -> reason[k] = R_MAXATT; pc[k] = P_DLQ
        fi
     fi

  :: pc[k] == P_ACK ->
     if :: inq[sj[k]] -> completed[sj[k]] = 1 :: else -> skip fi;
     remove(k); release(k)

  /* failure with attempts left: record, then nak (or nak first with the mutation) */
  :: pc[k] == P_FAILW ->
#ifdef M_NAK_BEFORE_WRITE
     nak(k); pc[k] = P_FAILW2
  :: pc[k] == P_FAILW2 ->
#endif
     if
     :: CAS_OK(k) ->
        lwrite(k, rf[k] + 1, rc[k] + riso[k], sd[k], 0, 0);
        recfail[sj[k]]++;
        /* the outcome explains that delivery, or an isolated run cleared the suspicion */
        if :: neediso[sj[k]] == sd[k] || isorun[k] -> neediso[sj[k]] = 0 :: else -> skip fi;
        if :: isowr[k] -> isoout[sj[k]]++; isowr[k] = 0; open[k] = 0 :: else -> skip fi;
#ifdef M_NAK_BEFORE_WRITE
        release(k)
#else
        pc[k] = P_NAK
#endif
     :: else -> giveup(k)
     fi

  :: pc[k] == P_NAK -> nak(k); release(k)

  /* hand-back: record that this delivery used no attempt, then nak */
  :: pc[k] == P_HBW ->
#ifdef M_HANDBACK_UNRECORDED
     pc[k] = P_NAK
#else
     if
     :: CAS_OK(k) ->
        /* afterHandBack: seen d, isolated cleared, the other fields of the record in force */
        lwrite(k, rf[k], rc[k], sd[k], 0, rsus[k]);
        if :: neediso[sj[k]] == sd[k] -> neediso[sj[k]] = 0 :: else -> skip fi;
        if :: isowr[k] -> isoout[sj[k]]++; isowr[k] = 0; open[k] = 0 :: else -> skip fi;
        pc[k] = P_NAK
     :: else -> giveup(k)
     fi
#endif

  /* dead letter: publish, confirmed; then remove the original */
#ifdef FIX_DEAD_RECORD
  :: pc[k] == P_DLQ && !(ldead[sj[k]] && rseq[k] == lseq[sj[k]]) ->
     /* a compare-and-set "dead" record first: a worker that read an older record cannot dead-letter */
     if
     :: CAS_OK(k) ->
        lwrite(k, rf[k] + (reason[k] == R_MAXATT -> 1 : 0), rc[k] + riso[k], sd[k], 0, rsus[k]);
        rf[k] = rf[k] + (reason[k] == R_MAXATT -> 1 : 0); rc[k] = rc[k] + riso[k]; riso[k] = 0;
        if :: reason[k] == R_MAXATT -> recfail[sj[k]]++ :: else -> skip fi;
        if :: isowr[k] -> isoout[sj[k]]++; isowr[k] = 0; open[k] = 0 :: else -> skip fi;
        ldead[sj[k]] = 1; ldr[sj[k]] = reason[k]
     :: else -> giveup(k)
     fi
  :: pc[k] == P_DLQ && ldead[sj[k]] && rseq[k] == lseq[sj[k]] ->
#else
  :: pc[k] == P_DLQ ->
#endif
#ifdef M_TERM_FIRST
     remove(k); pc[k] = P_DLQ2
  :: pc[k] == P_DLQ2 ->
     publishdl(k); release(k)
#else
     publishdl(k); pc[k] = P_TERM
#endif

  :: pc[k] == P_TERM -> remove(k); release(k)
  fi
}

/* a free slot of worker w takes a deliverable job */
inline deliver(w, s, j) {
  ht = w * NS + s;
  dcnt[j]++; avail[j] = 0; holder[j] = ht + 1;
  printf("STORY slot %d: job %d delivered, d=%d\n", ht, j, dcnt[j]);
  pc[ht] = P_GOT; sj[ht] = j; sd[ht] = dcnt[j];
  ht = 0
}

inline pull(w) {
  if
  :: AV(0) -> hj = 0
  :: AV(1) -> hj = 1
#if NJ > 2
  :: AV(2) -> hj = 2
#endif
  fi;
  if
  :: pc[w * NS] == P_EMPTY -> deliver(w, 0, hj)
  :: else -> deliver(w, 1, hj)
  fi;
  hj = 0
}

#define FREE(w) (pc[(w) * NS] == P_EMPTY || pc[(w) * NS + 1] == P_EMPTY)

proctype worker(byte w) {
end:
  do
  /* the pull loop asks only for free slots; after it stopped pulling, a request still open may deliver one more */
  :: atomic { FREE(w) && SOMEAVAIL && mode[w] == M_NORMAL -> pull(w) }
  :: atomic { FREE(w) && SOMEAVAIL && mode[w] != M_NORMAL && strays_spent < STRAYB -> strays_spent++; pull(w) }
  :: atomic { step(w * NS) }
  :: atomic { step(w * NS + 1) }
  /* the process dies (not because of its jobs) */
  :: atomic { !alldone && crashes_spent < CRASHB -> crashes_spent++; crash(w) }
  /* stop(): stop pulling, let running jobs finish... */
  :: atomic { !alldone && mode[w] != M_STOPPING && stops_spent < STOPB ->
       stops_spent++; mode[w] = M_STOPPING; printf("STORY worker %d: stop()\n", w) }
  /* ...until the deadline: hand back what has not settled (its handler is aborted) */
  :: atomic { mode[w] == M_STOPPING &&
       (pc[w * NS] == P_ISOW || pc[w * NS] == P_RUNNING || pc[w * NS + 1] == P_ISOW || pc[w * NS + 1] == P_RUNNING) ->
       ht = w * NS;
       do
       :: ht < w * NS + NS ->
          if :: pc[ht] == P_ISOW || pc[ht] == P_RUNNING -> pc[ht] = P_HBW :: else -> skip fi;
          ht++
       :: else -> break
       od;
       ht = 0 }
  /* stopped with nothing held: a new worker starts */
  :: atomic { mode[w] == M_STOPPING && pc[w * NS] == P_EMPTY && pc[w * NS + 1] == P_EMPTY -> mode[w] = M_NORMAL }
  od
}

/* The server: a lease lapses after ack_wait when nobody alive answers, or (bounded) while its
   worker lives but stalls, loses its ack, or is cut off. */
#define LAPSABLE(j) (NJ > (j) && inq[j] && !avail[j] && (holder[j] == 0 || lapses_spent < LAPSEB))
inline lapse(j) {
  if
  :: holder[j] != 0 ->
     printf("STORY server: lease of job %d (slot %d) lapses while its worker lives\n", j, holder[j] - 1);
     lapses_spent++; died(holder[j] - 1);
     lapsed[holder[j] - 1] = 1
  :: else -> skip
  fi;
  holder[j] = 0; avail[j] = 1
}

active proctype server() {
end:
  do
  :: atomic { LAPSABLE(0) -> lapse(0) }
  :: atomic { LAPSABLE(1) -> lapse(1) }
#if NJ > 2
  :: atomic { LAPSABLE(2) -> lapse(2) }
#endif
  od
}

#ifndef LIVENESS
/* Every job ends acked after its handler resolved, or in the dead letters: never neither. */
active proctype ends() {
  timeout ->
  ht = 0;
  do
  :: ht < NJ -> assert((!inq[ht] && (completed[ht] || dln[ht] == 1)) || dcnt[ht] >= DMAX); ht++
  :: else -> break
  od
}
#else
ltl live { <> alldone }
#endif

init {
  atomic {
    run worker(0);
    run worker(1);
#if NW > 2
    run worker(2);
#endif
  }
}
