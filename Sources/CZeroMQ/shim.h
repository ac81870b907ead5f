// libzmq, Debian's libzmq3-dev (pkg-config: libzmq).
#include <zmq.h>

// errno as a function: Swift cannot read the C macro portably.
static inline int czmq_errno(void) { return zmq_errno(); }

#include <sys/prctl.h>
// Names the calling thread (at most 15 characters), for top -H, perf and gdb.
static inline void czmq_name_thread(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

// The calling thread's timer slack in nanoseconds (Linux's default is 50 µs): how late a sleep
// may end. A load generator that sends at scheduled times sets it low.
static inline int czmq_timer_slack(unsigned long nanoseconds) { return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0); }
