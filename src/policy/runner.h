/* runner: a thread that runs jobs for one caller, which can stop waiting.
 *
 * The sandbox bounds every rule call from inside the VM (policy/lua_host.h);
 * the runner is the second line of defence, for a hole in the first that
 * nobody has found yet: a job that has not finished by its deadline is left
 * to the runner thread, which frees it, its state and itself whenever (if
 * ever) it returns, and the caller answers without it and goes on with a
 * new runner. Nothing is ever shared between two runners, so a stuck one
 * holds nothing any other thread waits for.
 *
 * One caller per runner; prn_call is not to be called concurrently. */
#ifndef CRIER_POLICY_RUNNER_H
#define CRIER_POLICY_RUNNER_H

typedef struct prn prn_t;

typedef struct prn_ops {
    /* On the runner thread: does job with state (both owned by the runner
     * while it runs). */
    void (*run)(void *state, void *job);
    /* Free a state or a job the runner was left with (may be NULL). */
    void (*free_state)(void *state);
    void (*free_job)(void *job);
} prn_ops_t;

#define PRN_DONE 0
#define PRN_LATE 1  /* the deadline passed: job and runner are the thread's now */
#define PRN_ERR  -1 /* the runner could not take the job: run it nowhere */

/* Starts a runner thread owning state (freed with ops->free_state when the
 * runner ends). NULL when no thread can be started (state is then freed).
 * ops must outlive every runner made with it. */
prn_t *prn_new(const prn_ops_t *ops, void *state);
/* Runs job on r and waits at most timeout_ms. PRN_DONE: job is done and
 * the caller's again. PRN_LATE: the caller must forget job and r (the
 * thread frees both). */
int prn_call(prn_t *r, void *job, unsigned timeout_ms);
/* Stops the runner and waits for its thread. */
void prn_free(prn_t *r);
/* Runners ever left behind at a deadline, and those still stuck in a job. */
long prn_abandoned_total(void);
long prn_stuck_now(void);

#endif
