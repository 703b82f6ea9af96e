#ifndef PAYWATCH_CSYSTEMD_SHIM_H
#define PAYWATCH_CSYSTEMD_SHIM_H

/* libsystemd for paywatch: the service manager's notify protocol and the journal's native
 * protocol. Only non-variadic functions are used (sd_journal_sendv takes an iovec array). */

#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#endif
