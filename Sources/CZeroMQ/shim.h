// libzmq, Debian's libzmq3-dev (pkg-config: libzmq).
#include <zmq.h>

// errno as a function: Swift cannot read the C macro portably.
static inline int czmq_errno(void) { return zmq_errno(); }
